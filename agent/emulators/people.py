"""The people of the scripted street: who passes the sensors when, and what their phones send.

Real people, not one trigger each: most walk past once; some come back and pass again later
in the hour; some stop and linger for minutes (arriving and leaving each move in front of the
motion sensor; while they wait they move only if `fidget_s` says so); about `phone_share` of
them carry a phone that advertises over Bluetooth while it is in range, from a random private
address that it changes every `rotation_s` seconds (a share `fast_share` rotate every
`fast_rotation_s` instead, to show what happens when a phone breaks the manifest's assumption).

Everything is a pure function of (seed, time): a person is drawn from the hash of the second
they arrive, so reading any interval in any order gives the same street. Arrivals are kept per
block of BLOCK_S seconds as one bit a second (people are drawn again when needed), so the
emulator's memory does not follow the hour; a query looks back over the blocks whose people can
still be around.
"""
from agent.emulators.prng import Prng, mix32

BLOCK_S = 600
HEARD_S = 20  # a phone walking past is in Bluetooth range for about this long
REPEAT_GAP_S = (150, 450)  # someone passing again comes back after 2.5 to 7.5 minutes


def _collect():
    # On MicroPython, drawing a block of people makes garbage (32-bit hashes are long ints
    # there); collect it before it makes the heap grow. CPython needs nothing.
    import sys

    if sys.implementation.name == "micropython":
        import gc

        gc.collect()


_BITMAP = (BLOCK_S + 7) // 8


def _bit(bits, i):
    return bits[i >> 3] >> (i & 7) & 1


def _keep(cache, key, value, most):
    """cache[key] = value, dropping the oldest (lowest) keys beyond `most` entries."""
    cache[key] = value
    while len(cache) > most:
        del cache[min(cache)]


def _mark(people, lo, hi, motion, heard):
    """Set the motion bits of [lo, hi] and list the phones heard in it, for these people."""
    for p in people:
        for t in p.motions():
            if lo <= t <= hi:
                i = t - lo
                motion[i >> 3] |= 1 << (i & 7)
        for a, z in p.heard():
            if a <= hi and z >= lo:
                heard.append((a, z, p.pid, p.phone))  # not the Person: a tuple is a third of its heap


class Person:
    """One person at the street. Times are Unix seconds.

    passes: seconds at which they walk past the sensors (each one a motion and an interval
    in Bluetooth range); stay: (start, end) of one long stop in front of the sensors, or None;
    fidget_s: while staying, they move every fidget_s seconds (0: they stand still);
    phone: None or (key, rotation_s, phase): the phone's address changes at
    (t + phase) // rotation_s."""

    def __init__(self, pid, passes=(), stay=None, fidget_s=0, phone=None):
        self.pid = pid
        self.passes = list(passes)
        self.stay = stay
        self.fidget_s = fidget_s
        self.phone = phone

    def motions(self):
        """Seconds at which this person moves in front of the motion sensor."""
        out = list(self.passes)
        if self.stay is not None:
            a, b = self.stay
            out.append(a)
            if self.fidget_s:
                t = a + self.fidget_s
                while t < b:
                    out.append(t)
                    t += self.fidget_s
            out.append(b)
        return out

    def heard(self):
        """[(start, end)] intervals (inclusive seconds) in which their phone is in range."""
        if self.phone is None:
            return []
        out = [(t, t + HEARD_S) for t in self.passes]
        if self.stay is not None:
            out.append(self.stay)
        return out

    def span(self):
        """(first, last) second this person is anywhere near the sensors."""
        ts = self.motions()
        for a, b in self.heard():
            ts.append(a)
            ts.append(b)
        return min(ts), max(ts)

    def address(self, t):
        """The phone's Bluetooth address at second t (6 bytes, a random private address)."""
        return address(self.phone, t)


class Phone:
    """A phone in range (what Crowd.phones gives): its owner's pid and its address at t."""

    def __init__(self, pid, phone):
        self.pid = pid
        self.phone = phone

    def address(self, t):
        return address(self.phone, t)


def address(phone, t):
    """The Bluetooth address at second t of phone = (key, rotation_s, phase): 6 bytes, random private."""
    key, rotation_s, phase = phone
    h1 = mix32(key, 102, (t + phase) // rotation_s)
    h2 = mix32(h1, 103)
    return bytes((h1 & 0xFF, h1 >> 8 & 0xFF, h1 >> 16 & 0xFF, h1 >> 24, h2 & 0xFF, (h2 >> 8 & 0x3F) | 0x40))


class Crowd:
    """The people of a street. rate(t_ms) -> expected arrivals per second (at most 1)."""

    def __init__(self, seed, rate, repeat_share=0.15, linger_share=0.05, linger_s=(120, 900),
                 fidget_s=0, phone_share=0.6, rotation_s=900, fast_share=0.0, fast_rotation_s=300):
        self.seed = seed
        self.rate = rate
        self.repeat_share = repeat_share
        self.linger_share = linger_share
        self.linger_s = linger_s
        self.fidget_s = fidget_s
        self.phone_share = phone_share
        self.rotation_s = rotation_s
        self.fast_share = fast_share
        self.fast_rotation_s = fast_rotation_s
        self.extra = []  # people added by hand (tests: the one person who differs)
        # how many blocks back a person can arrive and still be around (kept small: every
        # block of arrivals costs a hash per second to draw)
        self._lookback = (max(2 * REPEAT_GAP_S[1], linger_s[1]) + HEARD_S) // BLOCK_S + 1
        # Caches, bounded whatever the hour (at rush hour a block holds about 200 arrivals): who
        # arrives is one bit per second of a block; a Person is drawn again from their second
        # when a block's index is built. Both are pure functions of (seed, time).
        self._arrivals = {}  # block -> bytearray bitmap of the seconds someone arrives in
        self._index = {}  # block -> (motion bitmap, [(start, end, pid, phone) heard in it])

    def arrives(self, s):
        """True if someone arrives at second s."""
        return _bit(self._block(s // BLOCK_S), s % BLOCK_S)

    def person(self, s):
        """The person arriving at second s (call only when arrives(s)).

        One hash of (seed, s), then a small PRNG for their traits: on MicroPython 32-bit hashes
        are long ints, so fewer hashes mean far less garbage."""
        pid = mix32(self.seed, 110, s)
        rng = Prng(pid)
        passes = [s]
        stay = None
        kind = rng.uniform()
        if kind < self.linger_share:
            lo, hi = self.linger_s
            stay = (s, s + lo + int(rng.uniform() * (hi - lo)))
            passes = []
        elif kind < self.linger_share + self.repeat_share:
            t = s
            for i in range(1 + int(rng.uniform() * 2)):  # one or two more passes
                t += REPEAT_GAP_S[0] + int(rng.uniform() * (REPEAT_GAP_S[1] - REPEAT_GAP_S[0]))
                passes.append(t)
        phone = None
        if rng.uniform() < self.phone_share:
            rot = self.fast_rotation_s if rng.uniform() < self.fast_share else self.rotation_s
            phone = (pid, rot, int(rng.uniform() * rot))
        return Person(pid, passes, stay, self.fidget_s, phone)

    def drop_caches(self):
        """Forget the cached blocks (drawn again on demand, identically): a heap measurement of
        the agent then does not count the emulated crowd, which follows the hour."""
        self._arrivals = {}
        self._index = {}

    def add(self, person):
        """Put one more person in the street (their phone key is their pid)."""
        self.extra.append(person)
        self._index = {}

    def _block(self, block):
        # One PRNG per block draws whether someone arrives in each of its seconds.
        got = self._arrivals.get(block)
        if got is None:
            rng = Prng(mix32(self.seed, 100, block))
            got = bytearray(_BITMAP)
            t = block * BLOCK_S
            for i in range(BLOCK_S):
                if rng.uniform() < self.rate((t + i) * 1000):
                    got[i >> 3] |= 1 << (i & 7)
            _keep(self._arrivals, block, got, self._lookback + 2)
        return got

    def arriving(self, block):
        """The people who arrive during one block (drawn afresh: nothing is kept per person)."""
        return list(self._each(block))

    def _each(self, block):
        bits = self._block(block)
        t = block * BLOCK_S
        for i in range(BLOCK_S):
            if _bit(bits, i):
                yield self.person(t + i)

    def index(self, block):
        """(motion bitmap of the block's seconds, [(start, end, pid, phone) heard]) within one block."""
        got = self._index.get(block)
        if got is not None:
            return got
        _collect()
        lo, hi = block * BLOCK_S, (block + 1) * BLOCK_S - 1
        motion = bytearray(_BITMAP)
        heard = []
        for b in range(block - self._lookback, block + 1):  # one person at a time: a rush hour is hundreds
            _mark(self._each(b), lo, hi, motion, heard)
        _mark(self.extra, lo, hi, motion, heard)
        _keep(self._index, block, (motion, heard), 2)
        return motion, heard

    def moving(self, s):
        """True if someone moves in front of the motion sensor at second s."""
        return _bit(self.index(s // BLOCK_S)[0], s % BLOCK_S)

    def phones(self, s):
        """The phones in range at second s (Phone: .pid, .address(t))."""
        return [Phone(pid, phone) for a, b, pid, phone in self.index(s // BLOCK_S)[1] if a <= s <= b]

    def truth(self, t0, t1):
        """Ground truth of [t0, t1): (passes: walks past plus long stops, distinct phones heard)."""
        passes = 0
        phones = {}
        for block in range(t0 // BLOCK_S - self._lookback, (t1 - 1) // BLOCK_S + 1):
            for p in self.arriving(block):
                passes += self._passes_in(p, t0, t1)
        for p in self.extra:
            passes += self._passes_in(p, t0, t1)
        for s in range(t0, t1):
            for p in self.phones(s):
                phones[p.pid] = True
        return passes, len(phones)

    @staticmethod
    def _passes_in(p, t0, t1):
        n = 0
        for t in p.passes:
            if t0 <= t < t1:
                n += 1
        if p.stay is not None and t0 <= p.stay[0] < t1:
            n += 1
        return n
