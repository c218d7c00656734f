"""Sound energy of an int16 frame in fixed-point integers: plain (Z) and A-weighted.

A-weighting (IEC 61672 poles 20.6, 107.7, 737.9, 12194 Hz) is the analogue filter mapped by
the bilinear transform into six first-order sections: four high-pass s/(s+w) (20.6 twice,
107.7, 737.9) and two low-pass w/(s+w) (12194 twice). Each section runs unnormalised, so one
16-bit coefficient per section suffices and the gains fold into one float at the end:

    high-pass  y = (x - x1) + y1 - E*y1      E = 2w/(2fs+w)       (the pole at 1 - E)
    low-pass   y = (x + x1) - A*y1           A = (w-2fs)/(2fs+w)

Samples enter scaled by 2^SHIFT (sub-LSB precision for quiet streets). Products are taken as
mulq(C, v) = (C*(v >> 13) >> 3) + (C*(v & 8191) >> 16), so no intermediate passes 2^31: the
same integers come out of CPython, the WebAssembly port, a 64-bit unix port and a 32-bit
board. Where the port has the viper emitter (unix, rp2, ESP32) the loops run as machine code
compiled on the board from the source below; elsewhere the same arithmetic runs as Python.
Energies come back as three partial sums per 16 samples (y = a*4096 + b: a*a, a*b, b*b), each
below 2^31, recombined exactly in Python's big integers.
"""
import gc
import math
from array import array

F1 = 20.598997
F2 = 107.65265
F3 = 737.86223
F4 = 12194.217
KINDS = ("hp", "hp", "hp", "hp", "lp", "lp")  # the cascade's order: high-passes first
SHIFT = 4  # samples enter as x * 16
Q = 16  # coefficients are C / 65536
CHUNK = 16  # samples per partial energy sum (keeps every partial below 2^31)
CLIP = 32767


def coefficients(fs):
    """The six section coefficients (ints) at sample rate fs, in KINDS order."""
    k = 2.0 * fs
    out = []
    for kind, f in zip(KINDS, (F1, F1, F2, F3, F4, F4)):
        w = 2 * math.pi * f
        c = 2 * w / (k + w) if kind == "hp" else (w - k) / (k + w)
        out.append(int(round(c * (1 << Q))))
    return out


def response(coefs, f, fs):
    """|H(e^jw)| of the unnormalised fixed-point cascade at frequency f (float, exact coefs)."""
    w = 2 * math.pi * f / fs
    c, s = math.cos(w), -math.sin(w)
    mag = 1.0
    for kind, q in zip(KINDS, coefs):
        # numerator 1 -/+ z^-1, denominator 1 - p z^-1 with p = 1 - E (hp) or -A (lp)
        sign = -1.0 if kind == "hp" else 1.0
        p = 1.0 - q / 65536.0 if kind == "hp" else -q / 65536.0
        nr, ni = 1 + sign * c, sign * s
        dr, di = 1 - p * c, -p * s
        mag *= math.sqrt((nr * nr + ni * ni) / (dr * dr + di * di))
    return mag


def _mulq(c, v):
    return ((c * (v >> 13)) >> 3) + ((c * (v & 8191)) >> 16)


def z_energy_py(buf, n, mean):
    """Sum of (x - mean)^2 over buf[:n], each difference clipped to +-CLIP."""
    s = 0
    for i in range(n):
        d = buf[i] - mean
        if d > CLIP:
            d = CLIP
        elif d < -CLIP:
            d = -CLIP
        s += d * d
    return s


def a_energy_py(buf, n, mean, co, st):
    """Sum of the cascade's output squared (units of 2^-2*SHIFT LSB^2, unnormalised); st: the
    12 state words (previous input, previous output per section), carried across frames."""
    e0, e1, e2, e3, a4, a5 = co
    s = 0
    for i in range(n):
        d = buf[i] - mean
        if d > CLIP:
            d = CLIP
        elif d < -CLIP:
            d = -CLIP
        x = d << SHIFT
        y = (x - st[0]) + st[1] - _mulq(e0, st[1])
        st[0] = x
        st[1] = y
        x = y
        y = (x - st[2]) + st[3] - _mulq(e1, st[3])
        st[2] = x
        st[3] = y
        x = y
        y = (x - st[4]) + st[5] - _mulq(e2, st[5])
        st[4] = x
        st[5] = y
        x = y
        y = (x - st[6]) + st[7] - _mulq(e3, st[7])
        st[6] = x
        st[7] = y
        x = y
        y = (x + st[8]) - _mulq(a4, st[9])
        st[8] = x
        st[9] = y
        x = y
        y = (x + st[10]) - _mulq(a5, st[11])
        st[10] = x
        st[11] = y
        s += y * y
    return s


OFF = 0x20000000  # ctx words are stored + OFF: a 64-bit viper load of a 32-bit word does not sign-extend
# The same loops as viper machine code: agent/sensors/aweight_viper.py (source compiled on the board).

_viper = []  # [] not tried yet; [None] no viper here; [(frame_sum, frame_parts)]
VIPER_ERROR = []  # why not, when not (for benches and tests)
MAX_FRAME = 8192  # the partial sums stay below 2^31 up to this many samples per call


def viper_kernels():
    """(frame_sum, frame_parts) compiled for this port's viper emitter, or None where there is none."""
    if not _viper:
        ns = {}
        try:
            from agent.sensors.aweight_viper import VIPER_SRC

            gc.collect()  # the compiler needs a few KB at once, briefly
            exec(VIPER_SRC, ns)
            VIPER_SRC = None
            _forget("agent.sensors.aweight_viper")  # the source text is not needed again (a .mpy holds it in the heap)
            _viper.append((ns["frame_sum"], ns["frame_parts"]))
        except Exception as e:  # CPython (no micropython module), WebAssembly (no native emitter)
            _viper.append(None)
            VIPER_ERROR.append(repr(e))
    return _viper[0]


def _forget(name):
    import sys

    sys.modules.pop(name, None)
    pkg = sys.modules.get("agent.sensors")
    if pkg is not None and hasattr(pkg, "aweight_viper"):
        delattr(pkg, "aweight_viper")


def _limbs(out, i):
    return out[i] * OFF + out[i + 1]


class Energy:
    """Per-frame energies of one microphone, frame(buf, n) (the A-weighting filter keeps its
    state across frames). native=False: the Python loops even where viper is at hand."""

    def __init__(self, fs, native=True):
        co = coefficients(fs)
        self.norm = 1.0 / ((1 << (2 * SHIFT)) * response(co, 1000.0, fs) ** 2)  # a() -> LSB^2, 0 dB at 1 kHz
        self._vip = viper_kernels() if native else None
        self.native = self._vip is not None
        self._co = co
        self._ctx = array("i", [OFF] * 20)
        for i, c in enumerate(co):
            self._ctx[2 + i] = c + OFF
        self._out = array("i", [0] * 12)
        self._st = [0] * 12
        self.reset()

    def reset(self):
        for i in range(12):
            self._st[i] = 0
            self._ctx[8 + i] = OFF

    def frame(self, buf, n):
        """(mean, plain energy, A-weighted energy) of buf[:n]: the mean is the frame's DC offset
        (floor, an integer subtracted exactly); the energies are sums of squares after it, the
        A-weighted one in units of 2^-2*SHIFT (multiply by self.norm for int16 LSB^2)."""
        if self._vip is None:
            s = 0
            for i in range(n):
                s += buf[i]
            mean = s // n
            return mean, z_energy_py(buf, n, mean), a_energy_py(buf, n, mean, self._co, self._st)
        ctx, out = self._ctx, self._out
        mean = self._vip[0](buf, n) // n
        ctx[0] = n + OFF
        ctx[1] = mean + OFF
        self._vip[1](buf, ctx, out)
        a = (_limbs(out, 0) << 24) + (_limbs(out, 2) << 13) + _limbs(out, 4)
        z = (_limbs(out, 6) << 16) + (_limbs(out, 8) << 9) + _limbs(out, 10)
        return mean, z, a


viper_kernels()  # at import, early in start-up: the compiler's few KB are found before TLS takes its buffers
