"""PIR edge counts, sound level (A-weighting), BLE presence: drivers against emulated signals."""
import math
from array import array

import sound_reference
from support import raises

from agent.emulators.signals import AudioSource, BleAdverts, PirEdges
from agent.emulators.street import Street
from agent.hal.emulated import EmulatedBle, EmulatedPin, EmulatedSamples
from agent.core import decibel
from agent.sensors import aweight, sound
from agent.sensors.fault import SensorFault
from agent.sensors.pir import PIR
from agent.sensors.presence import BlePresence

T0 = 1764230400000  # 08:00 UTC


def test_pir_counts_the_streets_movements():
    # The PIR output stays high 2 s after a movement: an edge is a movement after 2 quiet seconds.
    street = Street(11)
    street.set_now(T0)
    drv = PIR(EmulatedPin(PirEdges(street)))
    drv.start(T0)
    total = 0
    for s in range(1, 121):
        street.set_now(T0 + s * 1000)
        total += drv.read(T0 + s * 1000)["motion_events"]
    moving = street.people.moving
    expected = 0
    for s in range(T0 // 1000 + 1, T0 // 1000 + 121):
        if moving(s) and not moving(s - 1) and not moving(s - 2):
            expected += 1
    assert total == expected and total > 10  # rush hour: a pedestrian every few seconds


def test_pir_refractory_counts_one_event_per_refractory_time():
    class Pin:
        def __init__(self):
            self.n = 0

        def take_count(self):
            n, self.n = self.n, 0
            return n

    pin = Pin()
    drv = PIR(pin, refractory_s=5)
    drv.start(0)
    counted = 0
    for s in range(1, 61):  # someone setting it off three times a second for a minute
        pin.n = 3
        counted += drv.read(s * 1000)["motion_events"]
    assert counted == 12  # at most one event per 5 s: ceil(60 / 5)
    pin.n = 3
    assert PIR(pin).read(0)["motion_events"] == 3  # refractory 0: every edge


def test_pir_counts_do_not_depend_on_read_rhythm():
    a, b = Street(11), Street(11)
    pa, pb = PirEdges(a), PirEdges(b)
    a.set_now(T0)
    b.set_now(T0)
    pa.take_count()
    pb.take_count()
    a.set_now(T0 + 60000)
    n_once = pa.take_count()
    n_steps = 0
    for s in range(1, 61):
        b.set_now(T0 + s * 1000)
        n_steps += pb.take_count()
    assert n_once == n_steps


class Tone:
    """A sine source for the sound driver: amplitude in int16 full-scale units."""

    def __init__(self, f, amp, rate_hz=16000):
        self.f, self.amp, self.rate_hz, self.t = f, amp, rate_hz, 0

    def readinto(self, buf):
        for i in range(len(buf)):
            buf[i] = int(self.amp * math.sin(2 * math.pi * self.f * self.t / self.rate_hz))
            self.t += 1
        return len(buf)


def test_a_weighting_response():
    """The fixed-point cascade's own response (its rounded coefficients), 0 dB at 1 kHz.
    tests/test_sound_weighting.py sweeps every standard frequency against IEC 61672 class 2."""
    co = aweight.coefficients(48000)
    g = aweight.response(co, 1000, 48000)
    db = lambda f: 20 * math.log10(aweight.response(co, f, 48000) / g)  # noqa: E731
    assert abs(db(1000)) < 1e-9
    # IEC 61672 A-weighting: -19.1 dB at 100 Hz, -8.6 at 250 Hz, +1.2 at 2 kHz, -2.5 at 8 kHz.
    assert abs(db(100) + 19.1) < 0.2
    assert abs(db(250) + 8.6) < 0.2
    assert abs(db(2000) - 1.2) < 0.2
    assert abs(db(8000) + 2.5) < 1.5  # bilinear warping near fs/4
    co16 = aweight.coefficients(16000)
    assert abs(20 * math.log10(aweight.response(co16, 100, 16000) / aweight.response(co16, 1000, 16000)) + 19.1) < 0.3


def test_machine_code_and_python_give_the_same_integers():
    """Where the port has viper (unix, rp2, ESP32) the kernels run as machine code; the Python
    loops elsewhere. Same integers from both, frame after frame (the filter state carries)."""
    street = Street(5)
    street.set_now(T0)
    src = AudioSource(street)
    buf = array("h", bytes(2 * 700))
    fast, slow = aweight.Energy(16000), aweight.Energy(16000, native=False)
    assert not slow.native
    for k in range(3):
        src.readinto(buf)
        buf[k] = -32768  # the extremes are clipped the same way
        buf[k + 1] = 32767
        n = 700 - 37 * k
        assert fast.frame(buf, n) == slow.frame(buf, n)
    print("viper" if fast.native else "no viper on this port")


def test_laeq_matches_the_float_reference_on_the_street():
    """LAeq (the released statistic) from the fixed-point driver within 0.1 dB of the float
    driver it replaced, over the emulated street's day: quiet night, rush hour, evening."""
    for hour in (3, 8, 13, 18, 22):
        t = T0 + (hour - 8) * 3600000
        levels = []
        for drv_cls in (sound.SoundLevel, sound_reference.SoundLevel):
            street = Street(7)
            street.set_now(t)
            drv = drv_cls(EmulatedSamples(AudioSource(street)), frame=512)
            drv.start(t)
            total = 0
            for k in range(6):
                street.set_now(t + 1000 * k)
                total += decibel.energy(int(round(drv.read(t + 1000 * k)["sound_dba"] * 10)))
            levels.append(decibel.level(total, 6))
        assert abs(levels[0] - levels[1]) <= 1, (hour, levels)  # tenths of a dB


def test_sound_level_of_a_tone():
    # A full-scale sine is -3.01 dBFS: with cal_db 120 that is 116.99 dB.
    drv = sound.SoundLevel(Tone(1000, 32767), frame=1600, cal_db=120.0)
    drv.start(0)
    drv.read(0)  # let the filter settle
    r = drv.read(0)
    assert abs(r["sound_db"] - 117.0) <= 0.1
    assert abs(r["sound_dba"] - 117.0) <= 0.2
    low = sound.SoundLevel(Tone(100, 3276), frame=1600, cal_db=120.0)
    low.start(0)
    low.read(0)
    r = low.read(0)
    assert abs(r["sound_db"] - 97.0) <= 0.1
    assert abs(r["sound_dba"] - (97.0 - 19.1)) <= 0.5


def test_sound_buffer_is_reused():
    drv = sound.SoundLevel(Tone(440, 1000), frame=256, weighting="Z")
    buf = drv._buf
    drv.read(0)
    drv.read(0)
    assert drv._buf is buf and drv.READINGS == ("sound_db",)
    assert "sound_dba" not in drv.read(0)


def test_sound_follows_street_and_detects_dead_mic():
    street = Street(2)
    street.set_now(T0)
    mic = EmulatedSamples(AudioSource(street))
    drv = sound.SoundLevel(mic, frame=512)
    drv.start(T0)
    r = drv.read(T0)
    assert abs(r["sound_db"] - street.traffic_db(T0)) <= 0.5
    assert r["sound_dba"] < r["sound_db"]  # traffic rumble is mostly low frequency
    mic.unplug()
    assert raises(SensorFault, drv.read, T0).kind == "stuck"


def test_ble_presence_feeds_identifiers_to_the_sink_only():
    street = Street(4)
    street.set_now(T0)
    seen = {}

    def sink(reading, addr):
        assert reading == "ble_devices" and len(addr) == 6
        seen[bytes(addr)] = seen.get(bytes(addr), 0) + 1  # a test may keep them; drivers may not

    drv = BlePresence(EmulatedBle(BleAdverts(street)), sink)
    drv.start(T0)
    street.set_now(T0 + 30000)
    r = drv.read(T0 + 30000)
    assert list(r) == ["ble_adverts"] and r["ble_adverts"] >= sum(seen.values())
    assert max(seen.values()) == 1  # each address once per drain, as a scanner's duplicate filter does
    assert len(seen) > 3  # three beacons and some phones
    assert not [v for v in r.values() if isinstance(v, (bytes, bytearray))]


def test_ble_addresses_rotate():
    street = Street(4)
    t = 1764230400
    people = [street.people.person(s) for s in range(t, t + 600) if street.people.arrives(s)]
    phones = [p for p in people if p.phone is not None]
    assert len(phones) > 10
    addrs = [p.address(t + 1000) for p in phones]
    assert len(set(addrs)) == len(addrs)
    assert min(x[5] >> 6 for x in addrs) == 1 and max(x[5] >> 6 for x in addrs) == 1  # resolvable private
    for p in phones:
        key, rotation, phase = p.phone
        assert rotation == 900 and 0 <= phase < 900
        first = -(-(t + phase) // rotation) * rotation - phase  # next rotation of this phone
        assert first >= t
        assert p.address(first - 1) != p.address(first) and p.address(first) == p.address(first + rotation - 1)
