"""Sound level from a microphone (I2S MEMS mic or an analogue mic on an ADC).

Each read() fills one reused sample buffer (int16, `frame` samples) and returns its
level in dB: sound_db (unweighted, Z) and, with weighting "A", sound_dba. Samples are
never kept or sent. The level is dBFS + cal_db: cal_db maps full scale to dB SPL
(INMP441: -26 dBFS at 94 dB SPL, so cal_db = 120).

The per-sample work is integer arithmetic (agent/sensors/aweight.py): the DC offset an
ADC or a mic's bias leaves is removed, the energy summed, and the A-weighting filter run
in fixed point, as machine code where the port has the viper emitter. Only the two
logarithms per frame are floats. Above fs/4 the bilinear warping of the filter makes it
an approximation (tests sweep it against IEC 61672's class-2 tolerances).
"""
import math
from array import array

from agent.sensors import aweight
from agent.sensors.fault import STUCK, SensorFault


def level_db(sum_sq, n, cal_db):
    """dB from a sum of squared int16 samples: 20 log10(rms / 32768) + cal_db; floor at 0."""
    if n == 0 or sum_sq <= 0:
        return 0.0
    ms = sum_sq / n / (32768.0 * 32768.0)
    v = 10 * math.log10(ms) + cal_db
    return v if v > 0 else 0.0


class SoundLevel:
    def __init__(self, source, frame=1024, weighting="A", cal_db=120.0, native=True):
        if not 0 < frame <= aweight.MAX_FRAME:
            raise ValueError("sound frame %r: 1..%d samples" % (frame, aweight.MAX_FRAME))
        self.source = source
        self.cal_db = cal_db
        self.weighting = weighting
        self._native = native
        self._buf = array("h", bytes(2 * frame))
        self._energy = None  # built at start(): the rate is the bus's, known once it is open
        self.READINGS = ("sound_db", "sound_dba") if weighting == "A" else ("sound_db",)

    def start(self, now_ms):
        if self._energy is None:
            self._energy = aweight.Energy(self.source.rate_hz, self._native)
        self._energy.reset()

    def read(self, now_ms):
        if self._energy is None:
            self.start(now_ms)
        buf = self._buf
        n = self.source.readinto(buf)
        if not n:
            return None
        en = self._energy
        mean, sz, sa = en.frame(buf, n)
        if sz == 0:
            raise SensorFault(STUCK, "all %d samples equal: microphone absent or muted" % n)
        out = {"sound_db": round(level_db(sz, n, self.cal_db), 1)}
        if self.weighting == "A":
            out["sound_dba"] = round(level_db(sa * en.norm, n, self.cal_db), 1)
        return out
