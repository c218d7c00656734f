"""A personal metric's window state: contributions clamped on the way in, so that one person's
effect on what gets noised is at most what the manifest declares.

Only the clamped integer aggregate is kept (count, sum, bucket counts); readings themselves
are not stored. `open_window(policy, rng)` gives the right accumulator for a policy.
"""
from agent.core.window import bucket_of


def clamp(value, lo, hi):
    """Round a reading to an integer in the metric's unit and clamp it to [lo, hi]."""
    if isinstance(value, bool):
        value = int(value)
    elif not isinstance(value, int):
        value = int(round(value))
    if value < lo:
        return lo
    if value > hi:
        return hi
    return value


def events(value):
    """The number of events in one reading of a count, as an int >= 0."""
    if isinstance(value, bool):
        return int(value)
    v = value if isinstance(value, int) else int(round(value))
    return v if v > 0 else 0


class Contributions:
    """Clamped aggregate of a count, sum, mean or histogram metric over one window.

    add(value): one reading. For a count, value is the number of events in the reading
    (default 1, negative counts as 0), cut to the policy's per_reading (the driver's most per
    read: more is a driver fault, counted in `clamped`), and the window's total stops at the
    policy's worst case (max_events, and one event per refractory time).
    For a sum or mean, clamped to [lo, hi]. For a histogram, the value falls in exactly one
    bucket: bucket i holds edges[i-1] <= v < edges[i]. How many readings or events one person
    can touch is the policy's per_person bound (agent.privacy.policy).
    """

    def __init__(self, policy):
        self.policy = policy
        self.n = 0
        self.total = 0
        self.counts = [0] * (len(policy.buckets) + 1) if policy.buckets else None
        self.clamped = 0  # readings cut to per_reading in this window (a driver fault)
        if policy.mechanism == "count":
            self._per_reading = policy.per_reading()
            self._cap = policy.worst_case()

    def add(self, value=1):
        p = self.policy
        if p.mechanism == "count":
            e = events(value)
            if self._per_reading is not None and e > self._per_reading:
                e = self._per_reading
                self.clamped += 1
            n = self.n + e
            cap = self._cap
            self.n = cap if cap is not None and n > cap else n
        elif p.mechanism == "histogram":
            self.counts[bucket_of(p.buckets, value)] += 1
            self.n += 1
        else:
            self.total += clamp(value, p.lo, p.hi)
            self.n += 1

    def wipe(self):
        self.n = 0
        self.total = 0
        self.clamped = 0
        if self.counts is not None:
            for i in range(len(self.counts)):
                self.counts[i] = 0


def open_window(policy, rng):
    """A fresh accumulator for one window of `policy`'s metric (rng salts a distinct counter)."""
    if policy.mechanism == "distinct":
        from agent.privacy.distinct import DistinctCounter

        return DistinctCounter(policy.bits, rng)
    return Contributions(policy)
