"""Signals of the street as bus-like sources: PIR edges, microphone samples, BLE adverts.

Each is a pure function of (street seed, time): reading the same interval twice gives
the same answer, whatever the order of reads.
"""
import math

from agent.emulators.prng import Prng, mix32


class PirEdges:
    """Rising edges of a PIR output. The output stays high for hold_s seconds after the last
    movement in view, so an edge is a movement after hold_s quiet seconds: a person who keeps
    moving in front of it holds it high (one edge); two people a second apart give one edge.
    Bus side: take_count()."""

    def __init__(self, street, hold_s=2):
        self.street = street
        self.hold_s = hold_s
        self._last_s = None

    def take_count(self):
        now_s = self.street.now_ms // 1000
        last = self._last_s
        self._last_s = now_s
        if last is None or now_s <= last:
            return 0
        people = self.street.people
        n = 0
        for s in range(max(last + 1, now_s - 600), now_s + 1):  # an unread counter keeps 10 min
            if people.moving(s):
                quiet = True
                for q in range(s - self.hold_s, s):
                    if people.moving(q):
                        quiet = False
                        break
                if quiet:
                    n += 1
        return n


class AudioSource:
    """Traffic-like noise at the street's level (cal_db maps full scale to dB SPL).

    Bus side: readinto(array('h')) -> samples, rate_hz. Half the power is low-passed
    rumble, half broadband hiss; the frame is scaled to the street's level.
    """

    def __init__(self, street, rate_hz=16000, cal_db=120.0):
        self.street = street
        self.rate_hz = rate_hz
        self.cal_db = cal_db
        self._count = 0

    def readinto(self, buf):
        n = len(buf)
        now = self.street.now_ms
        rng = Prng(mix32(self.street.seed, 200, now, self._count))
        self._count += 1
        y = 0.0
        sq = 0.0
        for i in range(n):
            w = rng.uniform() - 0.5
            y = 0.97 * y + 0.5 * w
            v = y + w
            buf[i] = int(v * 4096)
            sq += buf[i] * buf[i]
        rms = math.sqrt(sq / n) if n else 0.0
        target = 32768.0 * math.pow(10.0, (self.street.traffic_db(now) - self.cal_db) / 20.0)
        k = target / rms if rms else 0.0
        for i in range(n):
            v = int(buf[i] * k)
            buf[i] = 32767 if v > 32767 else (-32768 if v < -32768 else v)
        return n


class BleAdverts:
    """Advertisements heard: the phones of the street's people while in range (each from its
    current rotating address) and a few fixed beacons. Bus side: start(), drain(fn). A drain
    hands each address heard since the last one to fn once (as a scanner with duplicate
    filtering does) and returns the number of advertisements (one per device per second)."""

    def __init__(self, street, beacons=3, horizon_s=30):
        self.street = street
        self.horizon_s = horizon_s
        self._beacons = [bytes((0xC0 | i, 0x11, 0x22, 0x33, 0x44, 0x55)) for i in range(beacons)]
        self._addr = bytearray(6)
        self._last_s = None

    def start(self):
        self._last_s = self.street.now_ms // 1000

    def _emit(self, fn, addr):
        # One reused buffer, as the MicroPython IRQ backing does: sinks must not keep it.
        for i in range(6):
            self._addr[i] = addr[i]
        fn(self._addr)

    def drain(self, fn):
        now_s = self.street.now_ms // 1000
        last = self._last_s if self._last_s is not None else now_s
        self._last_s = now_s
        n = 0
        seen = {}
        for s in range(max(last + 1, now_s - self.horizon_s), now_s + 1):
            for b in self._beacons:
                seen[b] = True
                n += 1
            for p in self.street.people.phones(s):
                seen[p.address(s)] = True
                n += 1
        for addr in seen:
            self._emit(fn, addr)
        return n
