"""The `dp` block of a personal metric: parsed, validated, turned into per-person bounds and
exact noise scales.

The unit of privacy is one person. Every mechanism knows the most one person can add to one
window of its metric (`per_person`), either declared as a behavioural bound (passes of a
motion sensor, readings) or derived from a physical parameter (a phone's shortest address
rotation period), and its noise scale is that bound divided by epsilon.

Format (JSON, in the board profile; see docs/privacy.md):
    {"mechanism": "count" | "sum" | "mean" | "histogram" | "distinct",
     "epsilon": "1/40",         epsilon per window for one person (string "0.025" or "1/40")
     "k": 5,                    noisy counts below k are suppressed (not for "sum")
     "per_person": 2,           count: events one person adds to a window (e.g. passes);
                                sum, mean, histogram: readings one person affects per window
     "max_events": 3600,        count: cap on the events counted per window (optional when the
                                sensor declares refractory_s)
     "lo": 0, "hi": 10,         sum, mean: integer clamp bounds per reading
     "buckets": [10, 20, 40],   histogram bucket edges (strictly increasing integers)
     "mean_split": "1/2",       share of epsilon spent on the sum of a mean (the rest: count)
     "rotation_s": 900,         distinct: shortest address rotation period assumed (seconds)
     "devices": 1,              distinct: advertising devices one person carries (default 1)
     "bits": 4096}              distinct: bitmap size (power of two, 64..65536)
The per-person budget per day is the board's, not a metric's: privacy.daily_epsilon.
"""
from agent.errors import ConfigError
from agent.core import rational

MECHANISMS = ("count", "sum", "mean", "histogram", "distinct")

# Which optional fields each mechanism takes; anything else in the block is an error, so a
# typo ("epsilom") cannot silently fall back to a default.
_FIELDS = {
    "count": ("k", "per_person", "max_events"),
    "sum": ("lo", "hi", "per_person"),
    "mean": ("lo", "hi", "k", "mean_split", "per_person"),
    "histogram": ("buckets", "k", "per_person"),
    "distinct": ("bits", "k", "rotation_s", "devices"),
}
_COMMON = ("mechanism", "epsilon")
MAX_BUCKETS = 64
DEFAULT_BITS = 4096


def ceil_div(a, b):
    return -(-a // b)


def addresses_per_window(window, rotation_s):
    """Most distinct addresses one device shows in a window of `window` seconds when each of
    its addresses lasts at least rotation_s: ceil(window / rotation_s) + 1 (the window need not
    start at a rotation)."""
    return ceil_div(window, rotation_s) + 1


class DPPolicy:
    """A validated dp block. Rationals are (num, den) tuples; bounds are ints.

    Attributes: metric, mechanism, epsilon, k (None for sum), lo, hi, buckets, mean_split,
    bits, window (seconds), per_person, max_events, refractory_s (of the sensor, count only),
    rotation_s, devices. None where a field does not apply.
    """

    def __init__(self, metric, mechanism, epsilon, window=None):
        self.metric = metric
        self.mechanism = mechanism
        self.epsilon = epsilon
        self.window = window
        self.k = None
        self.lo = None
        self.hi = None
        self.buckets = None
        self.mean_split = None
        self.bits = None
        self.per_person = None
        self.max_events = None
        self.refractory_s = None
        self.rotation_s = None
        self.devices = None

    def sensitivity(self):
        """L1 sensitivity of the noised integer aggregate to adding or removing one person:
        count: per_person events; sum and a mean's sum: per_person
        readings at up to max(|lo|, |hi|) each; histogram: per_person readings, one bucket
        each; distinct: devices x addresses per window, one bitmap bit each."""
        if self.mechanism in ("sum", "mean"):
            return self.per_person * max(abs(self.lo), abs(self.hi))
        return self.per_person

    def worst_case(self):
        """The most one person can add to a window whatever they do, in the metric's own units
        (events), or None when only the declared assumption bounds it (distinct: a device that
        rotates faster than rotation_s; sum, mean, histogram: a person affecting more readings).

        count: min(ceil(window / refractory_s), max_events): the sensor counts at most one event
        per refractory time and at most max_events per window, for everyone together."""
        if self.mechanism != "count":
            return None
        bound = self.max_events
        if self.refractory_s and self.window:
            r = ceil_div(self.window, self.refractory_s)
            bound = r if bound is None or r < bound else bound
        return bound

    def per_reading(self):
        """The most one reading can add to the window, in the metric's units, or None where
        the mechanism bounds a reading by itself (a sum's or mean's reading is clamped to
        [lo, hi]; a histogram's reading and a distinct count's identifier add one).

        count: 1 when the sensor declares refractory_s (its driver counts at most one event per
        read, agent.sensors.pir), else the window's cap max_events. MetricSet clamps every
        reading to this before the window accumulates it, so a driver that reports more (a
        bouncing contact read as 50 edges) cannot spend more than the manifest declares."""
        if self.mechanism != "count":
            return None
        return 1 if self.refractory_s else self.max_events

    def scales(self):
        """Exact discrete Laplace scales as rationals: {"n": ...} and/or {"sum": ...}.

        scale = per-person sensitivity / epsilon. A histogram adds noise of the "n" scale to
        every bucket (the person's readings move the bucket vector by per_person in L1). A mean
        spends epsilon * mean_split on its sum and the rest on its count.
        """
        eps = self.epsilon
        if self.mechanism == "mean":
            e_sum = rational.mul(eps, self.mean_split)
            e_n = rational.sub(eps, e_sum)
            return {"sum": _scale(self.sensitivity(), e_sum), "n": _scale(self.per_person, e_n)}
        if self.mechanism == "sum":
            return {"sum": _scale(self.sensitivity(), eps)}
        return {"n": _scale(self.sensitivity(), eps)}

    def per_day(self):
        """Epsilon this metric spends on one person in a UTC day if every window is released."""
        return rational.mul(self.epsilon, (86400 // self.window, 1))


def _scale(sensitivity, eps):
    return rational.make(sensitivity * eps[1], eps[0])


def parse_dp(metric_name, dp_obj, window=3600, refractory_s=None):
    """Validate the dp block of personal metric `metric_name`; return a DPPolicy.

    window: the metric's release period in seconds (bounds are per window).
    refractory_s: the feeding sensor's refractory time (a count's events are at least this far
    apart), or None. Raises ConfigError naming the metric and the field, e.g.
    "metric 'footfall': dp.epsilon must be > 0".
    """
    def fail(msg):
        raise ConfigError("metric %r: %s" % (metric_name, msg))

    if dp_obj is None:
        fail("a personal metric needs a dp block (mechanism, epsilon, per-person bound, ...)")
    if not isinstance(dp_obj, dict):
        fail("dp must be an object")
    mech = dp_obj.get("mechanism")
    if mech not in MECHANISMS:
        fail("dp.mechanism must be one of %s, not %r" % (", ".join(MECHANISMS), mech))
    allowed = _COMMON + _FIELDS[mech]
    for key in sorted(dp_obj):
        if key == "daily_epsilon":
            fail("dp.daily_epsilon is no longer per metric: a device has one budget per person per "
                 "day for all its personal metrics, privacy.daily_epsilon in the board profile")
        if key not in allowed:
            fail("dp.%s is not a field of a %s mechanism (allowed: %s)"
                 % (key, mech, ", ".join(allowed)))
    if "epsilon" not in dp_obj:
        fail("dp.epsilon is required")

    p = DPPolicy(metric_name, mech, _positive_rational(fail, dp_obj, "epsilon"), window)
    if mech != "sum":
        p.k = _integer(fail, dp_obj, "k", None, lowest=1)
    if mech == "distinct":
        _distinct(fail, p, dp_obj, window)
        return p
    p.per_person = _integer(fail, dp_obj, "per_person", None, lowest=1)
    if mech == "count":
        p.refractory_s = refractory_s
        if "max_events" in dp_obj:
            p.max_events = _integer(fail, dp_obj, "max_events", None, lowest=1)
        worst = p.worst_case()
        if worst is None:
            fail("no finite per-person bound: one person lingering could add any number of events; "
                 "declare the sensor's refractory_s or dp.max_events")
        if p.per_person > worst:
            fail("dp.per_person (%d) exceeds what the sensor can count in a window (%d)"
                 % (p.per_person, worst))
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
    return p


def _distinct(fail, p, dp_obj, window):
    p.bits = _integer(fail, dp_obj, "bits", DEFAULT_BITS, lowest=64)
    if p.bits > 65536 or p.bits & (p.bits - 1):
        fail("dp.bits must be a power of two between 64 and 65536, not %d" % p.bits)
    if "rotation_s" not in dp_obj:
        fail("dp.rotation_s is required: without the shortest address-rotation period assumed, one "
             "phone could show any number of addresses in a window (no finite per-person bound)")
    p.rotation_s = _integer(fail, dp_obj, "rotation_s", None, lowest=1)
    p.devices = _integer(fail, dp_obj, "devices", 1, lowest=1)
    p.per_person = p.devices * addresses_per_window(window, p.rotation_s)


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


def parse_budget(obj, personal):
    """The board's `privacy` block: {"daily_epsilon": "2.64"}, the most epsilon the device may
    spend on any one person in a UTC day, across all personal metrics.

    personal: {metric: DPPolicy}. Returns daily_epsilon as a rational, or None when the board
    has no personal metric and no block. Raises ConfigError naming the field.
    """
    def fail(field, msg):
        raise ConfigError("privacy.%s: %s" % (field, msg))

    if obj is None:
        if personal:
            raise ConfigError("privacy: missing: a board with personal metrics needs "
                              "{\"daily_epsilon\": ...}, its budget per person per day")
        return None
    if not isinstance(obj, dict):
        raise ConfigError("privacy: must be a JSON object")
    for key in obj:
        if key != "daily_epsilon":
            fail(key, "unknown field (expected daily_epsilon)")
    raw = obj.get("daily_epsilon")
    if raw is None:
        fail("daily_epsilon", "missing")
    try:
        cap = rational.parse(raw)
    except ValueError:
        fail("daily_epsilon", "must be a number such as \"2.64\", not %r" % (raw,))
    if cap[0] <= 0:
        fail("daily_epsilon", "must be > 0")
    window_max = (0, 1)
    for name in personal:
        window_max = rational.add(window_max, personal[name].epsilon)
    if rational.cmp(cap, window_max) < 0:
        fail("daily_epsilon", "%s is less than one window of every personal metric (%s): nothing "
             "could ever be published" % (rational.text(cap), rational.text(window_max)))
    return cap


def spend_per_day(personal):
    """Epsilon per person per day if every window of every personal metric were released."""
    total = (0, 1)
    for name in personal:
        total = rational.add(total, personal[name].per_day())
    return total
