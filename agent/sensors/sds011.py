"""Nova Fitness SDS011 particulate sensor on a 9600-baud UART.

Frames (Nova "Laser Dust Sensor Control Protocol" V1.3):
  data   AA C0 P25L P25H P10L P10H ID1 ID2 CS AB        CS = sum(bytes 2..7) & 0xFF
  reply  AA C5 CMD b3 b4 b5 ID1 ID2 CS AB
  command (host -> sensor, 19 bytes) AA B4 CMD d3..d14 ID1 ID2 CS AB, CS = sum(bytes 2..16)
Readings: pm2_5_ugm3, pm10_ugm3 (µg/m³, 0..999.9).
decode() is pure; SDS011 wraps it with the UART reads and the duty cycle.
"""
from agent.sensors.fault import CHECKSUM, TIMEOUT, SensorFault, check_range
from agent.sensors.frames import FrameStream

FRAME_LEN = 10

HEAD = 0xAA
TAIL = 0xAB
CMD_SLEEP_WORK = 0x06
CMD_QUERY = 0x04


def command(cmd, data=b"", device_id=0xFFFF):
    """A 19-byte host command frame; data fills bytes 3.. (zero padded to 12 bytes)."""
    f = bytearray(19)
    f[0] = HEAD
    f[1] = 0xB4
    f[2] = cmd
    for k in range(len(data)):
        f[3 + k] = data[k]
    f[15] = device_id >> 8
    f[16] = device_id & 0xFF
    f[17] = sum(f[2:17]) & 0xFF
    f[18] = TAIL
    return bytes(f)


def sleep_command(device_id=0xFFFF):
    return command(CMD_SLEEP_WORK, b"\x01\x00", device_id)


def work_command(device_id=0xFFFF):
    return command(CMD_SLEEP_WORK, b"\x01\x01", device_id)


def decode(buf, i=0):
    """Look for one frame in buf from index i.

    Returns (kind, value, next_i): kind "data" (value = (pm2_5_tenths, pm10_tenths)),
    "reply" (value = bytes 2..5), "checksum" (a framed but corrupt frame, skipped),
    "more" (need more bytes; next_i is where the next call should start). Garbage
    before a header is skipped silently: that is what resynchronising means.
    """
    n = len(buf)
    while True:
        while i < n and buf[i] != HEAD:
            i += 1
        if n - i < FRAME_LEN:
            return "more", None, i
        kind = buf[i + 1]
        if (kind != 0xC0 and kind != 0xC5) or buf[i + 9] != TAIL:
            i += 1  # a stray 0xAA inside garbage: keep scanning
            continue
        if sum(buf[i + 2 : i + 8]) & 0xFF != buf[i + 8]:
            return "checksum", None, i + 1
        if kind == 0xC0:
            return "data", (buf[i + 2] | (buf[i + 3] << 8), buf[i + 4] | (buf[i + 5] << 8)), i + FRAME_LEN
        return "reply", bytes(buf[i + 2 : i + 6]), i + FRAME_LEN


class SDS011:
    READINGS = ("pm2_5_ugm3", "pm10_ugm3")

    def __init__(self, uart, timeout_ms=5000, work_ms=0, period_ms=0, warmup_ms=20000):
        """work_ms/period_ms > 0 duty-cycle the fan and laser (e.g. 30 s of every 300 s)."""
        self.uart = uart
        self.timeout_ms = timeout_ms
        self.work_ms = work_ms
        self.period_ms = period_ms
        self.warmup_ms = warmup_ms if work_ms else 0
        self._frames = FrameStream(decode, FRAME_LEN)
        self.soft_faults = {}
        self._last_ok = None
        self._awake_since = None
        self._next_wake = None

    def start(self, now_ms):
        self._frames.reset()
        self.uart.write(work_command())
        self._awake_since = now_ms
        self._last_ok = now_ms

    def take_soft_faults(self):
        f = self.soft_faults
        self.soft_faults = {}
        return f

    def _drain(self):
        return self._frames.drain(self.uart)

    def read(self, now_ms):
        """Latest frame's readings, None while asleep or between frames."""
        if self._awake_since is None:
            if self._next_wake is not None and now_ms < self._next_wake:
                self._drain()  # discard anything the sleeping sensor sent
                return None
            self.start(now_ms)
        frame, bad = self._drain()
        if bad:
            self.soft_faults[CHECKSUM] = self.soft_faults.get(CHECKSUM, 0) + bad
        if frame is None:
            if bad:
                raise SensorFault(CHECKSUM, "%d corrupt frame(s), no valid one" % bad)
            if now_ms - self._last_ok > self.timeout_ms:
                raise SensorFault(TIMEOUT, "no frame for %d ms" % (now_ms - self._last_ok))
            return None
        self._last_ok = now_ms
        if now_ms - self._awake_since < self.warmup_ms:
            return None  # the fan needs time to settle after waking
        if self.work_ms and now_ms - self._awake_since >= self.work_ms:
            self.uart.write(sleep_command())
            self._awake_since = None
            self._next_wake = now_ms + self.period_ms - self.work_ms
        return {
            "pm2_5_ugm3": check_range("pm2_5_ugm3", frame[0] / 10, 0, 999.9),
            "pm10_ugm3": check_range("pm10_ugm3", frame[1] / 10, 0, 999.9),
        }
