"""A release path that trusts no driver (issue 21): person-level audit with misbehaving drivers.

The neighbouring hours of tests/test_privacy_person_audit.py (the same street with and without
one person, through the real sensor path and a real MetricSet), read by two faulty drivers:

- a PIR driver that reports every counted event as 50 edges in one reading (a bouncing
  contact, an edge counter that is never cleared, a new driver that forgot its refractory time);
- a Bluetooth driver that hands the same identifier to the sink 50 times within one scan, each
  time in a different buffer (a fresh bytes, bytearray, or a view into a larger buffer: the same
  identifier at many memory addresses, as a driver that copies instead of reusing its buffer
  would).

MetricSet clamps each count reading to the manifest's per_reading (1: the PIR driver counts at
most one event per read) before the window accumulates it, and counts the cut in the health
counter `clamp`; one identifier sets one bit whatever buffer it comes in. So the person still
adds at most the declared bound (2 events, 5 addresses), the measured privacy loss stays
within the declared epsilon, the audit still flags a mechanism with half the noise, and it
flags the same faulty driver when the clamp is taken away. Levels as in the person audit: a
correct mechanism fails this file with probability below 1e-6.
"""
import os

from agent.board import open_sensors
from agent.emulators.street import Street
from agent.runtime.metrics import MetricSet
from street_hour import HOUR, T0, Recorder, people_board, replay
from test_privacy_person_audit import DECLARED, EPS, HalfNoise, audit, lingering, repeated_passes

EDGES = 50


class BouncingPIR:
    """The real PIR driver, except that every event it counts comes out as 50 edges."""

    def __init__(self, inner):
        self.inner = inner
        self.READINGS = inner.READINGS

    def start(self, now_ms):
        self.inner.start(now_ms)

    def read(self, now_ms):
        r = self.inner.read(now_ms)
        return {"motion_events": EDGES * r["motion_events"]}


class RepeatingScanner:
    """The real scanner, except that every address it hears is handed on 50 times, each in a
    different buffer."""

    def __init__(self, inner):
        self.inner = inner

    def start(self):
        self.inner.start()

    def drain(self, fn):
        def many(addr):
            raw = bytes(addr)
            for i in range(EDGES):
                kind = i % 3
                if kind == 0:
                    fn(bytes(raw))
                elif kind == 1:
                    fn(bytearray(raw))
                else:
                    big = bytearray(i) + bytearray(raw) + bytearray(3)
                    fn(memoryview(big)[i:i + len(raw)])
        return self.inner.drain(many)


def board():
    return people_board(footfall={"epsilon": EPS["footfall"]}, presence={"epsilon": EPS["presence"]})


def zeros(n):
    return bytes(n)  # a fixed salt, so two windows fed the same identifiers hold the same bitmap


def faulty_hour(b, street):
    """One hour of the street through the faulty drivers. -> (live, recorded): `live` is the
    MetricSet the drivers fed, every repeat in its own buffer; `recorded` holds what the
    person audit replays (count readings as reported, each identifier once). Both use a
    fixed salt so their windows can be compared bit for bit."""
    live = MetricSet(b, zeros)
    recorded = Recorder(b, zeros)

    def sink(metric, ident):
        live.identifier(metric, ident)
        recorded.identifier(metric, ident)

    sensors = open_sensors(b, T0 * 1000, identifier_sink=sink, street=street)
    pir = sensors.sensor("motion")
    pir.driver = BouncingPIR(pir.driver)
    ble = sensors.sensor("ble").driver
    ble.scanner = RepeatingScanner(ble.scanner)
    for now_s in range(T0, T0 + HOUR):
        for metric, value in sensors.metric_values(sensors.poll(now_s * 1000)):
            live.feed(metric, value)
            recorded.feed(metric, value)
    return live, recorded


def faulty_hours(b, person, seed=21):
    """(recorded hour without the person, with them): the same street otherwise."""
    base = Street(seed, rate_per_h=30)
    plus = Street(seed, rate_per_h=30)
    plus.people.add(person)
    return faulty_hour(b, base)[1].fed, faulty_hour(b, plus)[1].fed


class Unclamped:
    """The policy without its per-reading clamp and window cap: what the path did before."""

    def __init__(self, policy):
        self._p = policy

    def __getattr__(self, name):
        return getattr(self._p, name)

    def per_reading(self):
        return None

    def worst_case(self):
        return None


def test_the_faulty_drivers_misbehave_and_the_window_holds_only_what_is_declared():
    b = board()
    street = Street(21, rate_per_h=30)
    street.people.add(repeated_passes())
    live, recorded = faulty_hour(b, street)
    big = [v for m, v in recorded.fed if m == "footfall"]
    assert big and all(v == EDGES for v in big)  # every event came as 50 edges in one reading
    assert b.dp["footfall"].per_reading() == 1  # the manifest's per_reading for this driver
    acc = live.personal["footfall"][1]
    assert acc.n == len(big) and acc.clamped == len(big)
    # 50 sightings per address per scan, in three kinds of buffer, set the very bits that one
    # sighting each sets: replaying each identifier once (what the audit does) is the same window
    again = replay(b, recorded.fed, zeros)
    assert live.personal["presence"][1]._map == again.personal["presence"][1]._map
    assert again.personal["footfall"][1].n == acc.n
    live.rng = os.urandom  # real noise for the release (all-zero bits would never end the sampler)
    live.close(_Grant(), T0 + HOUR, T0 + HOUR)
    assert live.clamped == len(big)  # what Agent.health publishes as h["clamp"]


def test_one_person_through_faulty_drivers_adds_at_most_the_declared_bounds():
    b = board()
    for person, foot, addrs in ((repeated_passes(), 2, 2), (lingering(), 2, 5)):
        without, with_ = faulty_hours(b, person)
        d_foot = replay(b, with_, zeros).personal["footfall"][1].n - replay(b, without, zeros).personal["footfall"][1].n
        d_addr = len([1 for m, v in with_ if m == "presence"]) - len([1 for m, v in without if m == "presence"])
        assert (d_foot, d_addr) == (foot, addrs), (person.pid, d_foot, d_addr)
        assert foot <= b.dp["footfall"].sensitivity() and addrs <= b.dp["presence"].sensitivity()


def test_faulty_drivers_cost_at_most_the_declared_epsilon():
    b = board()
    for make in (repeated_passes, lingering):
        eps, ev = audit(b, *faulty_hours(b, make()))
        print("faulty drivers, %s: empirical epsilon >= %.3f (declared %.2f)" % (make.__name__, eps, DECLARED))
        assert eps <= DECLARED, "%s: empirical epsilon >= %.3f > declared %.2f (event %s)" % (
            make.__name__, eps, DECLARED, ev)


def test_the_audit_still_flags_half_the_noise_and_a_missing_clamp():
    b = board()
    fed = faulty_hours(b, lingering())
    half = board()
    for name in half.dp:
        half.dp[name] = HalfNoise(half.dp[name])
    eps, ev = audit(half, *fed)
    print("faulty drivers, half the noise: empirical epsilon >= %.3f (declared %.2f)" % (eps, DECLARED))
    assert eps > DECLARED, "half-noise mechanism not flagged: empirical epsilon >= %.3f (event %s)" % (eps, ev)
    bare = board()
    bare.dp["footfall"] = Unclamped(bare.dp["footfall"])
    eps, ev = audit(bare, *fed)
    print("faulty drivers, no clamp: empirical epsilon >= %.3f (declared %.2f)" % (eps, DECLARED))
    assert eps > DECLARED, "the unclamped path not flagged: empirical epsilon >= %.3f (event %s)" % (eps, ev)


# -- helpers ----------------------------------------------------------------------------------

class _Grant:
    def charge(self, requests, now):
        return {}
