"""Sensirion SCD40/SCD41 CO2 sensor on I2C (address 0x62), periodic measurement.

Every 16-bit word on the wire is followed by its CRC-8 (poly 0x31, init 0xFF; the
datasheet's example: crc8(BE EF) = 0x92). Readings: co2_ppm (0..40000),
temperature_c (-10..60), humidity_pct (0..100).
"""
from agent.sensors.fault import CHECKSUM, TIMEOUT, SensorFault, check_range

START_PERIODIC = 0x21B1
READ_MEASUREMENT = 0xEC05
STOP_PERIODIC = 0x3F86
DATA_READY = 0xE4B8


def crc8(data):
    """Sensirion CRC-8 over bytes: polynomial 0x31, init 0xFF, no reflection, no final xor."""
    crc = 0xFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = ((crc << 1) ^ 0x31) & 0xFF if crc & 0x80 else (crc << 1) & 0xFF
    return crc


def words(buf):
    """Split a reply of 3-byte groups into words, checking each CRC (pure)."""
    if len(buf) % 3:
        raise SensorFault(CHECKSUM, "reply of %d bytes is not whole words" % len(buf))
    out = []
    for i in range(0, len(buf), 3):
        if crc8(buf[i : i + 2]) != buf[i + 2]:
            raise SensorFault(CHECKSUM, "CRC mismatch in word %d" % (i // 3))
        out.append((buf[i] << 8) | buf[i + 1])
    return out


def pack_words(ws):
    """Words -> bytes with a CRC after each (what the chip sends)."""
    out = bytearray()
    for w in ws:
        pair = bytes(((w >> 8) & 0xFF, w & 0xFF))
        out.extend(pair)
        out.append(crc8(pair))
    return bytes(out)


def convert(co2, t_raw, rh_raw):
    """Raw words -> (co2 ppm, centi-°C, centi-%RH) with the datasheet's formulas, in integers."""
    return co2, -4500 + (17500 * t_raw) // 65535, (10000 * rh_raw) // 65535


class SCD4x:
    READINGS = ("co2_ppm", "temperature_c", "humidity_pct")

    def __init__(self, bus, address=0x62, timeout_ms=15000):
        self.bus = bus
        self.address = address
        self.timeout_ms = timeout_ms
        self._last_ok = None

    def _cmd(self, code):
        self.bus.writeto(self.address, bytes((code >> 8, code & 0xFF)))

    def _query(self, code, nwords):
        self._cmd(code)
        self.bus.delay_ms(1)
        return words(self.bus.readfrom(self.address, 3 * nwords))

    def start(self, now_ms):
        """Stop (in case it already runs), then start periodic measurement (one per 5 s)."""
        self._cmd(STOP_PERIODIC)
        self.bus.delay_ms(500)
        self._cmd(START_PERIODIC)
        self._last_ok = now_ms

    def read(self, now_ms):
        if self._last_ok is None:
            self.start(now_ms)
        if not self._query(DATA_READY, 1)[0] & 0x07FF:
            if now_ms - self._last_ok > self.timeout_ms:
                raise SensorFault(TIMEOUT, "no measurement for %d ms" % (now_ms - self._last_ok))
            return None
        co2, t, rh = convert(*self._query(READ_MEASUREMENT, 3))
        self._last_ok = now_ms
        return {
            "co2_ppm": check_range("co2_ppm", co2, 0, 40000),
            "temperature_c": check_range("temperature_c", t / 100, -10, 60),
            "humidity_pct": check_range("humidity_pct", rh / 100, 0, 100),
        }
