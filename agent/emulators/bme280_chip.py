"""A BME280 as its registers: chip id, calibration NVM, ctrl/status, forced-mode data.

The raw ADC values are found by searching the datasheet compensation for the street's
values, so a correct driver reads back the street to within the chip's resolution.
Faults: chip_id (another chip answers), stuck (conversions give the 'not measured' values),
busy (status never clears), override (force a physical value, e.g. out of range).
"""
from agent.sensors import bme280_math as m

# The trimming values of the datasheet's example (T, P) and typical humidity values.
DEFAULT_CAL = {
    "T1": 27504, "T2": 26435, "T3": -1000, "P1": 36477, "P2": -10685, "P3": 3024, "P4": 2855,
    "P5": 140, "P6": -7, "P7": 15500, "P8": -14600, "P9": 6000,
    "H1": 75, "H2": 362, "H3": 0, "H4": 313, "H5": 50, "H6": 30,
}  # fmt: skip


def encode_calibration(c):
    """dict of dig_* -> (26 bytes at 0x88, 7 bytes at 0xE1): the inverse of parse_calibration."""
    tp = bytearray(26)
    names = ("T1", "T2", "T3", "P1", "P2", "P3", "P4", "P5", "P6", "P7", "P8", "P9")
    for i, n in enumerate(names):
        v = c[n] & 0xFFFF
        tp[2 * i] = v & 0xFF
        tp[2 * i + 1] = v >> 8
    tp[25] = c["H1"]
    h = bytearray(7)
    h2 = c["H2"] & 0xFFFF
    h[0], h[1], h[2] = h2 & 0xFF, h2 >> 8, c["H3"]
    h4, h5 = c["H4"] & 0xFFF, c["H5"] & 0xFFF
    h[3] = h4 >> 4
    h[4] = (h4 & 0x0F) | ((h5 & 0x0F) << 4)
    h[5] = h5 >> 4
    h[6] = c["H6"] & 0xFF
    return bytes(tp), bytes(h)


def _search(f, target, lo, hi, increasing):
    """Smallest x in [lo, hi) with f(x) >= target (or <= if decreasing): binary search."""
    while lo < hi:
        mid = (lo + hi) // 2
        v = f(mid)
        if (v < target) if increasing else (v > target):
            lo = mid + 1
        else:
            hi = mid
    return lo


class Bme280Chip:
    def __init__(self, street, cal=None):
        self.street = street
        self.cal = cal or DEFAULT_CAL
        self.chip_id = 0x60
        self.stuck = False
        self.busy = False
        self.override = {}
        self.reset()

    def reset(self):
        """Power-on state: sleep mode, data registers at their 'not measured' values."""
        self.regs = bytearray(256)
        tp, h = encode_calibration(self.cal)
        self.regs[0x88 : 0x88 + 26] = tp
        self.regs[0xE1 : 0xE1 + 7] = h
        self.regs[0xF7:0xFF] = b"\x80\x00\x00\x80\x00\x00\x80\x00"
        self._measuring = 0

    def raw_for(self, t_c, p_pa, h_pct):
        """Raw (adc_P, adc_T, adc_H) that compensate to the given values."""
        c = self.cal
        adc_t = _search(lambda a: m.temperature_centi_c(m.t_fine(c, a)), int(t_c * 100), 0, 1 << 20, True)
        tf = m.t_fine(c, adc_t)
        adc_p = _search(lambda a: m.pressure_q24_8(c, tf, a), int(p_pa * 256), 0, 1 << 20, False)
        adc_h = _search(lambda a: m.humidity_q22_10(c, tf, a), int(h_pct * 1024), 0, 1 << 16, True)
        return adc_p, adc_t, adc_h

    def _measure(self):
        r = self.regs
        osrs_h = r[0xF2] & 7
        ctrl = r[0xF4]
        s, now = self.street, self.street.now_ms
        t = self.override.get("temperature_c", s.temperature_c(now))
        p = self.override.get("pressure_pa", s.pressure_pa(now))
        h = self.override.get("humidity_pct", s.humidity_pct(now))
        adc_p, adc_t, adc_h = self.raw_for(t, p, h)
        if not ctrl >> 5:
            adc_t = m.SKIPPED_20
        if not (ctrl >> 2) & 7:
            adc_p = m.SKIPPED_20
        if not osrs_h:
            adc_h = m.SKIPPED_16
        r[0xF7], r[0xF8], r[0xF9] = adc_p >> 12, (adc_p >> 4) & 0xFF, (adc_p & 0xF) << 4
        r[0xFA], r[0xFB], r[0xFC] = adc_t >> 12, (adc_t >> 4) & 0xFF, (adc_t & 0xF) << 4
        r[0xFD], r[0xFE] = adc_h >> 8, adc_h & 0xFF
        r[0xF4] = ctrl & 0xFC  # back to sleep mode

    def read_mem(self, reg, n):
        out = bytearray(n)
        for i in range(n):
            a = reg + i
            if a == 0xD0:
                out[i] = self.chip_id
            elif a == 0xF3:
                busy = self.busy or self._measuring > 0
                if self._measuring > 0:
                    self._measuring -= 1
                    if not self._measuring:
                        if self.stuck:  # a hung conversion: the 'not measured' values
                            self.regs[0xF7:0xFF] = b"\x80\x00\x00\x80\x00\x00\x80\x00"
                        else:
                            self._measure()
                out[i] = 0x08 if busy else 0
            else:
                out[i] = self.regs[a & 0xFF]
        return bytes(out)

    def write_mem(self, reg, data):
        for i in range(len(data)):
            a = reg + i
            if a == 0xE0 and data[i] == 0xB6:
                self.reset()
            elif a in (0xF2, 0xF4, 0xF5):
                self.regs[a] = data[i]
                if a == 0xF4 and data[i] & 3 in (1, 2):
                    self._measuring = 1  # one status poll reports "measuring"
