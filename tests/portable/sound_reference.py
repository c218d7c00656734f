"""The float sound driver civicmote shipped before the fixed-point one (agent/sensors/sound.py
before issue 22), kept as the reference its replacement is measured against: LAeq within
0.1 dB on the emulated street (tests), and the CPU anchor of bench/bench_sound.py.

Sound level from a microphone (I2S MEMS mic or an analogue mic on an ADC).

Each read() fills one reused sample buffer (int16, `frame` samples) and returns its
level in dB: sound_db (unweighted, Z) and, with weighting "A", sound_dba. Samples are
never kept or sent. The level is dBFS + cal_db: cal_db maps full scale to dB SPL
(INMP441: -26 dBFS at 94 dB SPL, so cal_db = 120).

A-weighting (IEC 61672 poles 20.6, 107.7, 737.9, 12194 Hz) is the analogue filter
mapped by the bilinear transform into six first-order sections, each well conditioned
in single precision (ESP32 floats), normalised to 0 dB at 1 kHz. Above fs/4 the
bilinear warping makes it an approximation (tests bound the error).
"""
import math
from array import array

from agent.sensors.fault import STUCK, SensorFault
from agent.sensors.sound import level_db  # unchanged: one source

F1 = 20.598997
F2 = 107.65265
F3 = 737.86223
F4 = 12194.217


def _section(kind, f, fs):
    """First-order section (b0, b1, a1) of s/(s+w) ("hp") or w/(s+w) ("lp") at rate fs."""
    w = 2 * math.pi * f
    k = 2.0 * fs
    d = k + w
    a1 = (w - k) / d
    if kind == "hp":
        return (k / d, -k / d, a1)
    return (w / d, w / d, a1)


def a_weighting_sections(fs):
    """The six sections of the A-weighting filter at sample rate fs, gain 1 at 1 kHz."""
    secs = [_section(k, f, fs) for k, f in (("hp", F1), ("hp", F1), ("hp", F2), ("hp", F3), ("lp", F4), ("lp", F4))]
    g = 1.0 / response(secs, 1000.0, fs)
    b0, b1, a1 = secs[0]
    secs[0] = (b0 * g, b1 * g, a1)
    return secs


def response(secs, f, fs):
    """|H(e^jw)| of a cascade of first-order sections at frequency f (pure, for tests)."""
    w = 2 * math.pi * f / fs
    c, s = math.cos(w), -math.sin(w)
    mag = 1.0
    for b0, b1, a1 in secs:
        nr, ni = b0 + b1 * c, b1 * s
        dr, di = 1 + a1 * c, a1 * s
        mag *= math.sqrt((nr * nr + ni * ni) / (dr * dr + di * di))
    return mag


class SoundLevel:
    def __init__(self, source, frame=1024, weighting="A", cal_db=120.0):
        self.source = source
        self.cal_db = cal_db
        self.weighting = weighting
        self._buf = array("h", bytes(2 * frame))
        self._secs = None  # built at start(): the rate is the bus's, known once it is open
        self._state = [0.0] * 12
        self.READINGS = ("sound_db", "sound_dba") if weighting == "A" else ("sound_db",)

    def start(self, now_ms):
        if self.weighting == "A" and self._secs is None:
            self._secs = a_weighting_sections(self.source.rate_hz)
        for i in range(12):
            self._state[i] = 0.0

    def read(self, now_ms):
        if self.weighting == "A" and self._secs is None:
            self.start(now_ms)
        buf = self._buf
        n = self.source.readinto(buf)
        if not n:
            return None
        sz = 0
        mean = 0
        for i in range(n):
            mean += buf[i]
        mean = mean / n  # drop the DC offset an ADC or a mic's bias leaves
        for i in range(n):
            x = buf[i] - mean
            sz += x * x
        if sz == 0:
            raise SensorFault(STUCK, "all %d samples equal: microphone absent or muted" % n)
        out = {"sound_db": round(level_db(sz, n, self.cal_db), 1)}
        if self._secs is not None:
            out["sound_dba"] = round(level_db(self._filter(buf, n, mean), n, self.cal_db), 1)
        return out

    def _filter(self, buf, n, mean):
        """Run the cascade over the buffer (state carried across frames); sum of squares."""
        st = self._state
        secs = self._secs
        sa = 0.0
        for i in range(n):
            x = buf[i] - mean
            j = 0
            for b0, b1, a1 in secs:
                # Direct form I: st[j] = previous input, st[j+1] = previous output.
                y = b0 * x + b1 * st[j] - a1 * st[j + 1]
                st[j] = x
                st[j + 1] = y
                x = y
                j += 2
            sa += x * x
        return sa
