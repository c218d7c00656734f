"""Plantower PMS5003 particulate sensor on a 9600-baud UART (active mode).

Frame: 42 4D LENH LENL (=28) then 13 big-endian words, then a 16-bit check code that is
the sum of the 30 bytes before it. Words 4..6 are PM1.0/PM2.5/PM10 "atmospheric
environment" concentrations in µg/m³. Readings: pm1_0_ugm3, pm2_5_ugm3, pm10_ugm3.
"""
from agent.sensors.fault import CHECKSUM, TIMEOUT, SensorFault, check_range
from agent.sensors.frames import FrameStream

FRAME_LEN = 32


def sleep_command():
    return b"\x42\x4d\xe4\x00\x00\x01\x73"


def wake_command():
    return b"\x42\x4d\xe4\x00\x01\x01\x74"


def decode(buf, i=0):
    """(kind, value, next_i): "data" with (pm1, pm2_5, pm10), "checksum", or "more"."""
    n = len(buf)
    while True:
        while i < n - 1 and not (buf[i] == 0x42 and buf[i + 1] == 0x4D):
            i += 1
        if n - i < FRAME_LEN:
            return "more", None, i
        if buf[i + 2] != 0 or buf[i + 3] != 28:
            i += 1
            continue
        check = (buf[i + 30] << 8) | buf[i + 31]
        if sum(buf[i : i + 30]) & 0xFFFF != check:
            return "checksum", None, i + 1
        j = i + 4 + 2 * 3
        vals = ((buf[j] << 8) | buf[j + 1], (buf[j + 2] << 8) | buf[j + 3], (buf[j + 4] << 8) | buf[j + 5])
        return "data", vals, i + FRAME_LEN


class PMS5003:
    READINGS = ("pm1_0_ugm3", "pm2_5_ugm3", "pm10_ugm3")

    def __init__(self, uart, timeout_ms=5000):
        self.uart = uart
        self.timeout_ms = timeout_ms
        self._frames = FrameStream(decode, FRAME_LEN)
        self._last_ok = None
        self.soft_faults = {}

    def start(self, now_ms):
        self._frames.reset()
        self.uart.write(wake_command())
        self._last_ok = now_ms

    def take_soft_faults(self):
        f = self.soft_faults
        self.soft_faults = {}
        return f

    def read(self, now_ms):
        if self._last_ok is None:
            self.start(now_ms)
        frame, bad = self._frames.drain(self.uart)
        if bad:
            self.soft_faults[CHECKSUM] = self.soft_faults.get(CHECKSUM, 0) + bad
        if frame is None:
            if bad:
                raise SensorFault(CHECKSUM, "%d corrupt frame(s), no valid one" % bad)
            if now_ms - self._last_ok > self.timeout_ms:
                raise SensorFault(TIMEOUT, "no frame for %d ms" % (now_ms - self._last_ok))
            return None
        self._last_ok = now_ms
        return {
            "pm1_0_ugm3": check_range("pm1_0_ugm3", frame[0], 0, 1000),
            "pm2_5_ugm3": check_range("pm2_5_ugm3", frame[1], 0, 1000),
            "pm10_ugm3": check_range("pm10_ugm3", frame[2], 0, 1000),
        }
