"""The fixed-point A-weighting, swept over IEC 61672-1's standard frequencies as a meter is
tested: a sine at each one-third-octave frequency through the real driver
(agent/sensors/sound.py, the integer arithmetic the boards run), A-level minus Z-level against
the standard's A-weighting, within the class-2 acceptance limits."""
import math
from array import array

import pytest

from agent.sensors import sound

# IEC 61672-1 class-2 acceptance limits (dB) by nominal frequency: (+upper, -lower); None: no
# lower limit. The standard frequencies are exact base-ten: 1000 * 10^(k/10).
CLASS2 = {10: (5.5, None), 12.5: (5.5, None), 16: (5.5, None), 20: (3.5, 3.5), 25: (3.5, 3.5),
          31.5: (3.5, 3.5), 40: (2.5, 2.5), 50: (2.5, 2.5), 63: (2.0, 2.0), 80: (2.0, 2.0),
          100: (1.9, 1.9), 125: (1.9, 1.9), 160: (1.9, 1.9), 200: (1.9, 1.9), 250: (1.9, 1.9),
          315: (1.9, 1.9), 400: (1.9, 1.9), 500: (1.9, 1.9), 630: (1.9, 1.9), 800: (1.9, 1.9),
          1000: (1.0, 1.0), 1250: (1.9, 1.9), 1600: (2.6, 2.6), 2000: (2.6, 2.6), 2500: (3.1, 3.1),
          3150: (3.1, 3.1), 4000: (3.6, 3.6), 5000: (4.1, 4.1), 6300: (5.1, 5.1), 8000: (5.6, 5.6),
          10000: (5.6, None), 12500: (6.0, None), 16000: (6.0, None), 20000: (6.0, None)}


def exact(nominal):
    k = round(10 * math.log10(nominal / 1000.0))
    return 1000.0 * 10 ** (k / 10.0)


def a_weight_db(f):
    """IEC 61672-1's A-weighting, from its pole frequencies, normalised at 1 kHz."""
    f1, f2, f3, f4 = 20.598997, 107.65265, 737.86223, 12194.217

    def ra(x):
        x2 = x * x
        return f4 * f4 * x2 * x2 / ((x2 + f1 * f1) * math.sqrt((x2 + f2 * f2) * (x2 + f3 * f3)) * (x2 + f4 * f4))
    return 20 * math.log10(ra(f) / ra(1000.0))


class Tone:
    def __init__(self, f, amp, fs):
        self.f, self.amp, self.rate_hz, self.t = f, amp, fs, 0

    def readinto(self, buf):
        w = 2 * math.pi * self.f / self.rate_hz
        for i in range(len(buf)):
            buf[i] = int(round(self.amp * math.sin(w * self.t)))
            self.t += 1
        return len(buf)


def measured_weighting(f, fs):
    """dB(A) minus dB(Z) of a steady sine at f through the driver, after the filter settles.
    The frame holds whole periods where it can, so the Z level is the sine's own."""
    periods = math.ceil(2048 * f / fs)
    frame = min(8192, int(round(periods * fs / f)))
    drv = sound.SoundLevel(Tone(f, 20000, fs), frame=frame, cal_db=200.0)
    drv.start(0)
    for _ in range(3):
        drv.read(0)
    a = z = 0.0
    for _ in range(2):
        r = drv.read(0)
        a += r["sound_dba"]
        z += r["sound_db"]
    return (a - z) / 2


# Up to where the sweep holds: at 48 kHz every standard frequency; at 16 kHz (the profiles'
# I2S rate) up to 5 kHz. The bilinear transform (the float driver's design, kept so LAeq stays
# within 0.1 dB of it) folds the 12194 Hz poles onto Nyquist: at 6.3 kHz the response is
# 5.8 dB low, 0.7 dB outside class 2 (docs/sensors.md, "Sound").
TOP = {16000: 5000, 48000: 20000}


@pytest.mark.parametrize("fs", (16000, 48000))
def test_a_weighting_within_class_2_at_every_standard_frequency(fs):
    checked = 0
    for nominal, (up, down) in sorted(CLASS2.items()):
        f = exact(nominal)
        if nominal > TOP[fs]:
            continue
        dev = measured_weighting(f, fs) - a_weight_db(f)
        assert dev <= up and (down is None or dev >= -down), "%s Hz at fs %d: %+.2f dB off" % (nominal, fs, dev)
        checked += 1
    assert checked == (28 if fs == 16000 else 34)


def test_at_16_khz_the_response_falls_off_above_5_khz():
    """What the sweep leaves out at 16 kHz, measured: 6.3 kHz comes out between 5 and 7 dB low."""
    dev = measured_weighting(exact(6300), 16000) - a_weight_db(exact(6300))
    assert -7.0 < dev < -5.1
