"""The `dp` block of a personal metric: parsed, validated, and turned into exact noise scales.

Format (JSON, in the board profile; see docs/privacy.md):
    {"mechanism": "count" | "sum" | "mean" | "histogram" | "distinct",
     "epsilon": "1/2",          epsilon per window (string "0.5" or "1/2", or a number)
     "daily_epsilon": "12",     per-day cap on the epsilon this metric may spend
     "k": 5,                    released counts below k are suppressed (not for "sum")
     "lo": 0, "hi": 10,         integer clamp bounds per contribution (sum, mean; count: hi only)
     "buckets": [10, 20, 40],   histogram bucket edges (strictly increasing integers)
     "mean_split": "1/2",       share of epsilon spent on the sum of a mean (the rest: count)
     "bits": 4096}              bitmap size of a distinct counter (power of two, 64..65536)
"""
from agent.errors import ConfigError
from agent.core import rational

MECHANISMS = ("count", "sum", "mean", "histogram", "distinct")

# Which optional fields each mechanism takes; anything else in the block is an error, so a
# typo ("epsilom") cannot silently fall back to a default.
_FIELDS = {
    "count": ("hi", "k"),
    "sum": ("lo", "hi"),
    "mean": ("lo", "hi", "k", "mean_split"),
    "histogram": ("buckets", "k"),
    "distinct": ("bits", "k"),
}
_COMMON = ("mechanism", "epsilon", "daily_epsilon")
MAX_BUCKETS = 64
DEFAULT_BITS = 4096


class DPPolicy:
    """A validated dp block. Rationals are (num, den) tuples; bounds are ints.

    Attributes: metric, mechanism, epsilon, daily_epsilon, k (None for sum), lo, hi,
    buckets (list of edges or None), mean_split (rational or None), bits (or None).
    """

    def __init__(self, metric, mechanism, epsilon, daily_epsilon, k=None, lo=None, hi=None,
                 buckets=None, mean_split=None, bits=None):
        self.metric = metric
        self.mechanism = mechanism
        self.epsilon = epsilon
        self.daily_epsilon = daily_epsilon
        self.k = k
        self.lo = lo
        self.hi = hi
        self.buckets = buckets
        self.mean_split = mean_split
        self.bits = bits

    def sensitivity(self):
        """L1 sensitivity of the noised integer aggregate(s) to adding or removing one
        contribution: count: hi; sum, mean (sum part): max(|lo|, |hi|); histogram: 1 (one
        bucket moves by one); distinct: 1 (one identifier sets at most one bitmap bit)."""
        if self.mechanism == "count":
            return self.hi
        if self.mechanism in ("sum", "mean"):
            return max(abs(self.lo), abs(self.hi))
        return 1

    def scales(self):
        """Exact discrete Laplace scales as rationals: {"n": ...} and/or {"sum": ...}.

        A histogram adds noise of the "n" scale to every bucket (parallel composition: one
        contribution touches one bucket). A mean spends epsilon * mean_split on its sum and
        the rest on its count (sequential composition).
        """
        eps = self.epsilon
        if self.mechanism == "mean":
            e_sum = rational.mul(eps, self.mean_split)
            e_n = rational.sub(eps, e_sum)
            return {"sum": _scale(self.sensitivity(), e_sum), "n": _scale(1, e_n)}
        if self.mechanism == "sum":
            return {"sum": _scale(self.sensitivity(), eps)}
        return {"n": _scale(self.sensitivity(), eps)}

    def windows_per_day(self):
        """How many windows a day the cap allows: floor(daily_epsilon / epsilon)."""
        return rational.floor_div(self.daily_epsilon, self.epsilon)


def _scale(sensitivity, eps):
    return rational.make(sensitivity * eps[1], eps[0])


def parse_dp(metric_name, dp_obj):
    """Validate the dp block of personal metric `metric_name`; return a DPPolicy.

    Raises ConfigError naming the metric and the field, e.g.
    "metric 'footfall': dp.epsilon must be > 0".
    """
    def fail(msg):
        raise ConfigError("metric %r: %s" % (metric_name, msg))

    if dp_obj is None:
        fail("a personal metric needs a dp block (mechanism, epsilon, daily_epsilon, ...)")
    if not isinstance(dp_obj, dict):
        fail("dp must be an object")
    mech = dp_obj.get("mechanism")
    if mech not in MECHANISMS:
        fail("dp.mechanism must be one of %s, not %r" % (", ".join(MECHANISMS), mech))
    allowed = _COMMON + _FIELDS[mech]
    for key in sorted(dp_obj):
        if key not in allowed:
            fail("dp.%s is not a field of a %s mechanism (allowed: %s)"
                 % (key, mech, ", ".join(allowed)))
    for key in _COMMON:
        if key not in dp_obj:
            fail("dp.%s is required" % key)

    eps = _positive_rational(fail, dp_obj, "epsilon")
    cap = _positive_rational(fail, dp_obj, "daily_epsilon")
    if rational.cmp(cap, eps) < 0:
        fail("dp.daily_epsilon (%s) must be >= dp.epsilon (%s)" % (rational.text(cap), rational.text(eps)))
    p = DPPolicy(metric_name, mech, eps, cap)

    if mech != "sum":
        p.k = _integer(fail, dp_obj, "k", None, lowest=1)
    if mech == "count":
        p.lo = 0
        p.hi = _integer(fail, dp_obj, "hi", 1, lowest=1)
    elif mech in ("sum", "mean"):
        p.lo = _integer(fail, dp_obj, "lo", None)
        p.hi = _integer(fail, dp_obj, "hi", None)
        if p.lo >= p.hi:
            fail("dp.lo (%d) must be < dp.hi (%d)" % (p.lo, p.hi))
    if mech == "mean":
        split = _positive_rational(fail, dp_obj, "mean_split", (1, 2))
        if rational.cmp(split, (1, 1)) >= 0:
            fail("dp.mean_split must be strictly between 0 and 1 (the sum's share of epsilon)")
        p.mean_split = split
    elif mech == "histogram":
        p.buckets = _buckets(fail, dp_obj.get("buckets"))
    elif mech == "distinct":
        p.bits = _integer(fail, dp_obj, "bits", DEFAULT_BITS, lowest=64)
        if p.bits > 65536 or p.bits & (p.bits - 1):
            fail("dp.bits must be a power of two between 64 and 65536, not %d" % p.bits)
    return p


def _positive_rational(fail, obj, key, default=None):
    raw = obj.get(key, default)
    if raw is None:
        fail("dp.%s is required" % key)
    try:
        r = raw if isinstance(raw, tuple) else rational.parse(raw)
    except ValueError:
        fail("dp.%s must be a number such as \"0.5\" or \"1/2\", not %r" % (key, raw))
    if r[0] <= 0:
        fail("dp.%s must be > 0" % key)
    return r


def _integer(fail, obj, key, default, lowest=None):
    raw = obj.get(key, default)
    if raw is None:
        fail("dp.%s is required" % key)
    if isinstance(raw, bool) or not isinstance(raw, int):
        fail("dp.%s must be an integer, not %r" % (key, raw))
    if lowest is not None and raw < lowest:
        fail("dp.%s must be >= %d, not %d" % (key, lowest, raw))
    return raw


def _buckets(fail, edges):
    if not isinstance(edges, list) or not edges:
        fail("dp.buckets must be a non-empty list of integer bucket edges")
    if len(edges) > MAX_BUCKETS - 1:
        fail("dp.buckets has %d edges; at most %d" % (len(edges), MAX_BUCKETS - 1))
    for i, e in enumerate(edges):
        if isinstance(e, bool) or not isinstance(e, int):
            fail("dp.buckets[%d] must be an integer, not %r" % (i, e))
        if i and e <= edges[i - 1]:
            fail("dp.buckets must be strictly increasing (dp.buckets[%d] = %d)" % (i, e))
    return list(edges)
