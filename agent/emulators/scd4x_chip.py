"""An SCD40/SCD41 as its I2C command set: periodic measurement every 5 s, CRC on words.

Faults: corrupt_crc (the next n replies carry a wrong CRC), override (force values).
"""
from agent.sensors.scd4x import DATA_READY, READ_MEASUREMENT, START_PERIODIC, STOP_PERIODIC, pack_words

PERIOD_MS = 5000


class Scd4xChip:
    def __init__(self, street):
        self.street = street
        self.corrupt_crc = 0
        self.override = {}
        self.reset()

    def reset(self):
        self.started_ms = None  # idle after power-on
        self._read_index = -1
        self._reply = b""

    def _index(self):
        """Number of the latest finished measurement (-1 if none yet)."""
        if self.started_ms is None:
            return -1
        return (self.street.now_ms - self.started_ms) // PERIOD_MS - 1

    def write(self, data):
        if len(data) < 2:
            raise OSError(5)
        cmd = (data[0] << 8) | data[1]
        if cmd == START_PERIODIC:
            if self.started_ms is not None:
                raise OSError(5)  # the chip NACKs commands it cannot take in periodic mode
            self.started_ms = self.street.now_ms
            self._read_index = -1
        elif cmd == STOP_PERIODIC:
            self.started_ms = None
        elif cmd == DATA_READY:
            ready = self._index() > self._read_index
            self._reply = pack_words((0x8006 if ready else 0x8000,))
        elif cmd == READ_MEASUREMENT:
            if self.started_ms is None:
                raise OSError(5)
            self._read_index = self._index()
            s, t = self.street, self.street.now_ms
            co2 = int(self.override.get("co2_ppm", s.co2_ppm(t)))
            tc = self.override.get("temperature_c", s.temperature_c(t) + 1.5)  # self-heating
            rh = self.override.get("humidity_pct", s.humidity_pct(t) - 3.0)
            t_raw = int((tc + 45.0) * 65535 / 175.0 + 0.5)
            h_raw = int(rh * 65535 / 100.0 + 0.5)
            self._reply = pack_words((co2 & 0xFFFF, max(0, min(65535, t_raw)), max(0, min(65535, h_raw))))
        else:
            raise OSError(5)

    def read(self, n):
        r = self._reply[:n]
        if self.corrupt_crc and r:
            self.corrupt_crc -= 1
            r = r[:2] + bytes((r[2] ^ 0xFF,)) + r[3:]
        return r
