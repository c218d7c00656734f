"""Decibels in exact integer arithmetic: energy averages (LAeq) identical on every runtime.

A sound level L dB stands for an energy proportional to 10^(L/10). The equivalent continuous
level over a window, LAeq, is the level of the mean energy: 10*log10(mean(10^(L_i/10))), which
is what noise authorities publish; the arithmetic mean of dB values understates loud events.
Levels here are integers in tenths of a dB; 10^(t/100) is a table of 100 integers scaled by
10^12 (computed once with 50-digit decimals, below) times a power of ten, so sums are exact
big integers and the result is the same on CPython and on a single-precision ESP32.
"""

SCALE = 10 ** 12
MAX_TENTHS = 3000  # 300 dB: far above anything a microphone reports
# round(10^(k/100) * 10^12) for k = 0..99
_POW = (
    1000000000000, 1023292992281, 1047128548051, 1071519305238, 1096478196143, 1122018454302,
    1148153621497, 1174897554940, 1202264434617, 1230268770812, 1258925411794, 1288249551693,
    1318256738556, 1348962882592, 1380384264603, 1412537544623, 1445439770746, 1479108388168,
    1513561248436, 1548816618912, 1584893192461, 1621810097359, 1659586907438, 1698243652462,
    1737800828749, 1778279410039, 1819700858610, 1862087136663, 1905460717963, 1949844599758,
    1995262314969, 2041737944670, 2089296130854, 2137962089502, 2187761623950, 2238721138568,
    2290867652768, 2344228815320, 2398832919019, 2454708915685, 2511886431510, 2570395782769,
    2630267991895, 2691534803927, 2754228703338, 2818382931264, 2884031503127, 2951209226666,
    3019951720402, 3090295432514, 3162277660168, 3235936569296, 3311311214826, 3388441561392,
    3467368504525, 3548133892336, 3630780547701, 3715352290972, 3801893963206, 3890451449943,
    3981071705535, 4073802778041, 4168693834703, 4265795188016, 4365158322402, 4466835921510,
    4570881896149, 4677351412872, 4786300923226, 4897788193684, 5011872336273, 5128613839914,
    5248074602498, 5370317963703, 5495408738576, 5623413251903, 5754399373372, 5888436553556,
    6025595860744, 6165950018615, 6309573444802, 6456542290347, 6606934480076, 6760829753920,
    6918309709189, 7079457843841, 7244359600750, 7413102413009, 7585775750292, 7762471166287,
    7943282347243, 8128305161641, 8317637711027, 8511380382024, 8709635899561, 8912509381337,
    9120108393559, 9332543007970, 9549925860214, 9772372209558,
)


def energy(tenths):
    """Energy of a level of `tenths` tenths of a dB (>= 0), in units of 10^-12 of 0 dB's energy."""
    if tenths <= 0:
        return SCALE
    if tenths > MAX_TENTHS:
        tenths = MAX_TENTHS
    q, r = divmod(tenths, 100)
    return _POW[r] * 10 ** q


def level(total, n):
    """The level in tenths of a dB whose energy is total / n, rounded to the nearest tenth
    (the nearer of the two neighbours in energy ratio, i.e. on the dB scale)."""
    lo, hi = 0, MAX_TENTHS
    while lo < hi:  # the largest t with energy(t) * n <= total
        mid = (lo + hi + 1) // 2
        if energy(mid) * n <= total:
            lo = mid
        else:
            hi = mid - 1
    if lo < MAX_TENTHS:
        # total/n lies in [e(lo), e(lo+1)): round up past the geometric midpoint.
        a = energy(lo)
        b = energy(lo + 1)
        if total * total >= a * b * n * n:
            lo += 1
    return lo
