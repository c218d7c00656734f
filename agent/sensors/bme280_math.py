"""BME280 calibration parsing and the datasheet's integer compensation (pure).

Formulas: Bosch BME280 datasheet, section 4.2.3 (32-bit temperature and humidity,
64-bit pressure) and appendix 8.2 (32-bit pressure). Python integers are unbounded,
so C's fixed widths are reproduced with explicit masks where the datasheet relies on them.
"""

SKIPPED_20 = 0x80000  # raw value of a 20-bit channel that was not measured
SKIPPED_16 = 0x8000  # raw humidity when not measured


def _u16(b, i):
    return b[i] | (b[i + 1] << 8)


def _s16(b, i):
    v = b[i] | (b[i + 1] << 8)
    return v - 0x10000 if v & 0x8000 else v


def _s12(v):
    return v - 0x1000 if v & 0x800 else v


def _s8(v):
    return v - 0x100 if v & 0x80 else v


def _tdiv(a, b):
    """C integer division (truncates toward zero)."""
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b >= 0) else -q


def parse_calibration(tp, h):
    """tp: 26 bytes from 0x88..0xA1; h: 7 bytes from 0xE1..0xE7 -> dict of dig_* values."""
    if len(tp) != 26 or len(h) != 7:
        raise ValueError("calibration blocks must be 26 and 7 bytes")
    c = {"T1": _u16(tp, 0), "T2": _s16(tp, 2), "T3": _s16(tp, 4), "P1": _u16(tp, 6)}
    for i in range(2, 10):
        c["P%d" % i] = _s16(tp, 6 + 2 * (i - 1))
    c["H1"] = tp[25]
    c["H2"] = _s16(h, 0)
    c["H3"] = h[2]
    c["H4"] = _s12((h[3] << 4) | (h[4] & 0x0F))
    c["H5"] = _s12((h[5] << 4) | (h[4] >> 4))
    c["H6"] = _s8(h[6])
    return c


def parse_raw(block):
    """8 bytes from 0xF7..0xFE -> (adc_P, adc_T, adc_H)."""
    adc_p = (block[0] << 12) | (block[1] << 4) | (block[2] >> 4)
    adc_t = (block[3] << 12) | (block[4] << 4) | (block[5] >> 4)
    adc_h = (block[6] << 8) | block[7]
    return adc_p, adc_t, adc_h


def t_fine(c, adc_t):
    """The fine temperature shared by all three compensations."""
    var1 = (((adc_t >> 3) - (c["T1"] << 1)) * c["T2"]) >> 11
    d = (adc_t >> 4) - c["T1"]
    var2 = (((d * d) >> 12) * c["T3"]) >> 14
    return var1 + var2


def temperature_centi_c(tf):
    """Temperature in 0.01 °C from t_fine (5123 = 51.23 °C)."""
    return (tf * 5 + 128) >> 8


def pressure_q24_8(c, tf, adc_p):
    """Pressure in Pa as Q24.8 (64-bit formula): 24674867 = 96386.2 Pa. 0 if undefined."""
    var1 = tf - 128000
    var2 = var1 * var1 * c["P6"]
    var2 = var2 + ((var1 * c["P5"]) << 17)
    var2 = var2 + (c["P4"] << 35)
    var1 = ((var1 * var1 * c["P3"]) >> 8) + ((var1 * c["P2"]) << 12)
    var1 = (((1 << 47) + var1) * c["P1"]) >> 33
    if var1 == 0:
        return 0
    p = 1048576 - adc_p
    p = _tdiv(((p << 31) - var2) * 3125, var1)
    var1 = (c["P9"] * (p >> 13) * (p >> 13)) >> 25
    var2 = (c["P8"] * p) >> 19
    return ((p + var1 + var2) >> 8) + (c["P7"] << 4)


def pressure_pa_32(c, tf, adc_p):
    """Pressure in whole Pa with the datasheet's 32-bit formula (appendix 8.2)."""
    m = 0xFFFFFFFF
    var1 = (tf >> 1) - 64000
    var2 = (((var1 >> 2) * (var1 >> 2)) >> 11) * c["P6"]
    var2 = var2 + ((var1 * c["P5"]) << 1)
    var2 = (var2 >> 2) + (c["P4"] << 16)
    var1 = (((c["P3"] * (((var1 >> 2) * (var1 >> 2)) >> 13)) >> 3) + ((c["P2"] * var1) >> 1)) >> 18
    var1 = ((32768 + var1) * c["P1"]) >> 15
    if var1 == 0:
        return 0
    p = (((1048576 - adc_p) - (var2 >> 12)) * 3125) & m
    if p < 0x80000000:
        p = ((p << 1) & m) // (var1 & m)
    else:
        p = (p // (var1 & m)) * 2
    var1 = (c["P9"] * ((((p >> 3) * (p >> 3)) & m) >> 13)) >> 12
    var2 = ((p >> 2) * c["P8"]) >> 13
    return (p + ((var1 + var2 + c["P7"]) >> 4)) & m


def humidity_q22_10(c, tf, adc_h):
    """Relative humidity in %RH as Q22.10 (47445 = 46.333 %RH)."""
    v = tf - 76800
    v = ((((adc_h << 14) - (c["H4"] << 20) - (c["H5"] * v)) + 16384) >> 15) * (
        ((((((v * c["H6"]) >> 10) * (((v * c["H3"]) >> 11) + 32768)) >> 10) + 2097152) * c["H2"] + 8192) >> 14
    )
    v = v - (((((v >> 15) * (v >> 15)) >> 7) * c["H1"]) >> 4)
    if v < 0:
        v = 0
    if v > 419430400:
        v = 419430400
    return v >> 12


def compensate(c, adc_p, adc_t, adc_h):
    """-> (centi_c, pressure_q24_8, humidity_q22_10) from raw ADC values."""
    tf = t_fine(c, adc_t)
    return temperature_centi_c(tf), pressure_q24_8(c, tf, adc_p), humidity_q22_10(c, tf, adc_h)
