"""Streaming statistics of one metric over one window (pure).

Samples are integers in the metric's fixed-point unit (for example 2153 for 21.53 degC at
a resolution of 0.01). Everything is exact integer arithmetic, so a window gives the same
result on CPython, on a double-precision MicroPython and on an ESP32 whose floats are
single precision; the only rounding happens once, when a statistic is released.

Memory is constant whatever the number of samples: a count, two power sums, min, max and
one counter per histogram bucket. Welford's update exists to keep a float variance stable;
with exact integers the same quantities (mean = S1/n, M2 = S2 - S1^2/n) carry no rounding
error at all, so we keep the sums and form M2 exactly when asked.
"""
from agent.core import decibel



def bucket_of(edges, value):
    """Index of the histogram bucket holding value: bucket i holds edges[i-1] <= value < edges[i];
    0 below edges[0], len(edges) at or above the last edge (a bisection; MicroPython has no bisect)."""
    lo, hi = 0, len(edges)
    while lo < hi:
        mid = (lo + hi) // 2
        if value < edges[mid]:
            hi = mid
        else:
            lo = mid + 1
    return lo


def to_fixed(value, scale):
    """value (int or float, in the metric's unit) -> int in units of 1/scale, rounded half away from zero."""
    if isinstance(value, int):
        return value * scale
    v = value * scale
    return int(v + 0.5) if v >= 0 else -int(-v + 0.5)


def quantize(value, resolution):
    """value (int or float, in the metric's unit) -> int count of `resolution` steps, rounded.

    resolution is a rational (num, den): (1, 10) means 0.1, so 21.53 -> 215 and 21.55 -> 216.
    """
    num, den = resolution
    if isinstance(value, int):
        return div_round(value * den, num)
    v = value * den / num
    return int(v + 0.5) if v >= 0 else -int(-v + 0.5)


def div_round(num, den):
    """num/den rounded to the nearest integer, halves away from zero (den > 0)."""
    if num >= 0:
        return (2 * num + den) // (2 * den)
    return -((-2 * num + den) // (2 * den))


def isqrt(n):
    """floor(sqrt(n)) for an int n >= 0 (MicroPython has no math.isqrt)."""
    if n < 0:
        raise ValueError("isqrt of a negative number")
    if n < 2:
        return n
    x = n
    y = (x + 1) // 2
    while y < x:
        x = y
        y = (x + n // x) // 2
    return x


class Window:
    """Count, sum, min, max, mean, variance and an optional fixed-bucket histogram.

    edges: increasing fixed-point bucket boundaries; bucket i holds edges[i-1] <= x < edges[i],
    with one bucket below edges[0] and one at or above edges[-1] (len(edges) + 1 buckets).
    leq: also keep the energy sum of samples that are sound levels in tenths of a dB, for the
    equivalent continuous level (agent.core.decibel).
    """

    def __init__(self, edges=None, leq=False):
        self.leq = leq
        if edges:
            for i in range(1, len(edges)):
                if edges[i] <= edges[i - 1]:
                    raise ValueError("histogram edges must increase")
            self.edges = tuple(edges)
        else:
            self.edges = None
        self.reset()

    def reset(self):
        self.n = 0
        self.s1 = 0
        self.s2 = 0
        self.lo = None
        self.hi = None
        self.buckets = [0] * (len(self.edges) + 1) if self.edges else None
        self.energy = 0

    def add(self, x):
        """Add one fixed-point integer sample."""
        if self.n:
            if x < self.lo:
                self.lo = x
            elif x > self.hi:
                self.hi = x
        else:
            self.lo = self.hi = x
        self.n += 1
        self.s1 += x
        self.s2 += x * x
        if self.edges is not None:
            self.buckets[bucket_of(self.edges, x)] += 1
        if self.leq:
            self.energy += decibel.energy(x)

    def merge(self, other):
        """Fold another window of the same shape into this one (for sub-windows)."""
        if other.edges != self.edges:
            raise ValueError("cannot merge windows with different histogram edges")
        if not other.n:
            return
        if not self.n or other.lo < self.lo:
            self.lo = other.lo
        if not self.n or other.hi > self.hi:
            self.hi = other.hi
        self.n += other.n
        self.s1 += other.s1
        self.s2 += other.s2
        self.energy += other.energy
        if self.buckets is not None:
            for i in range(len(self.buckets)):
                self.buckets[i] += other.buckets[i]

    def mean(self):
        """Mean, rounded to the fixed-point unit; None when empty."""
        return div_round(self.s1, self.n) if self.n else None

    def m2(self):
        """Exact sum of squared deviations times n: n*S2 - S1^2 (an int >= 0)."""
        return self.n * self.s2 - self.s1 * self.s1

    def variance(self):
        """Sample variance (n - 1 denominator) in unit^2, rounded; None for fewer than 2 samples."""
        if self.n < 2:
            return None
        return div_round(self.m2(), self.n * (self.n - 1))

    def stddev(self):
        """Sample standard deviation, rounded to the nearest fixed-point unit; None below 2 samples."""
        if self.n < 2:
            return None
        num = self.m2()
        den = self.n * (self.n - 1)
        # round(sqrt(num/den)) = floor(sqrt(num/den) + 1/2) = floor((isqrt(4*num*den) + 2*den) / (2*den))
        # up to the exactness of isqrt: correct it with one comparison each way.
        r = isqrt(num // den)
        while (2 * r + 1) * (2 * r + 1) * den <= 4 * num:
            r += 1
        while r > 0 and (2 * r - 1) * (2 * r - 1) * den > 4 * num:
            r -= 1
        return r

    def stats(self, names):
        """The named statistics as a list, in the order given (names from STAT_NAMES)."""
        out = []
        for name in names:
            if name == "n":
                out.append(self.n)
            elif name == "mean":
                out.append(self.mean())
            elif name == "min":
                out.append(self.lo)
            elif name == "max":
                out.append(self.hi)
            elif name == "sum":
                out.append(self.s1)
            elif name == "var":
                out.append(self.variance())
            elif name == "sd":
                out.append(self.stddev())
            elif name == "leq":
                out.append(decibel.level(self.energy, self.n) if self.leq and self.n else None)
            elif name == "hist":
                out.append(list(self.buckets) if self.buckets is not None else None)
            else:
                raise ValueError("unknown statistic %r" % name)
        return out


STAT_NAMES = ("n", "mean", "min", "max", "sum", "var", "sd", "hist", "leq")
