"""A summary's released integers as values in their units, named as the manifest names them (CPython only).

An environmental metric arrives as a positional list (`[116, 114, 117]`) whose statistics and
resolution the signed manifest gives (`stats: [mean, min, max]`, `resolution: "1/10"`), so it
reads 11.6, 11.4 and 11.7 in the manifest's unit (as agent/core/window.py makes them: `n` and
histogram buckets are counts, `var` is in steps squared, every other statistic in steps). A personal metric arrives as what differential
privacy released (`{"n": 37}`, `{"suppressed": true}`, `{"withheld": "budget"}`); those are
counts in the metric's unit and are passed through, with a note where nothing was released.
Values are exact Fractions; `decimal_text` writes them without float rounding.
"""
from decimal import Decimal
from fractions import Fraction
from functools import lru_cache

from agent.core import rational

NO_MANIFEST = "no manifest for this summary"
COUNT = "count"  # the unit of a number of readings (the n statistic, histogram buckets)


class Value:
    """One released value: metric, statistic, value (Fraction or None), unit, class, window
    [start, end) in Unix seconds, a note when there is no value (suppressed, withheld), and the
    decimal places its resolution gives (0.1 degC -> 1, so 12 degC is written 12.0)."""

    __slots__ = ("metric", "stat", "value", "unit", "cls", "start", "end", "note", "places")

    def __init__(self, metric, stat, value, unit, cls, start, end, note="", places=0):
        self.metric, self.stat, self.value, self.unit, self.cls = metric, stat, value, unit, cls
        self.start, self.end, self.note, self.places = start, end, note, places


def entries(manifest):
    """{metric name: manifest entry} (empty without a manifest)."""
    return {e["name"]: e for e in (manifest or {}).get("metrics", []) if isinstance(e, dict) and "name" in e}


def resolution(entry):
    """The step of a metric's released integers as a Fraction (1 when the manifest gives none)."""
    return _step(_hashable(entry.get("resolution", 1)))


def _hashable(res):
    """A manifest's resolution as a cache key: a list or map (a device may sign anything) as its text,
    which rational.parse refuses as it refuses every other bad resolution."""
    return repr(res) if isinstance(res, (list, dict)) else res


@lru_cache(maxsize=256)  # a fleet has a handful of resolutions; a day of summaries asks thousands of times
def _step(text):
    try:
        num, den = rational.parse(text)
    except ValueError:
        return Fraction(1)
    return Fraction(num, den)


def decimals(entry):
    """How many decimals a value of this metric deserves: 1/10 -> 1, 1/100 -> 2, 1 or 10 -> 0."""
    return _places(_hashable(entry.get("resolution", 1)))


@lru_cache(maxsize=256)
def _places(text):
    step = _step(text)
    n = 0
    while step.denominator != 1 and n < 6:
        step *= 10
        n += 1
    return n


def summary_values(summary, manifest):
    """[Value] of one stored summary (a query._summary_row dict), in manifest order."""
    known = entries(manifest)
    out = []
    for name in sorted(summary["metrics"]):
        released = summary["metrics"][name]
        e = known.get(name)
        window = (e or {}).get("window") or (summary["t1"] - summary["t0"])
        start, end = summary["t1"] - window, summary["t1"]
        unit = (e or {}).get("unit", "")
        if isinstance(released, list):
            stats = (e or {}).get("stats") or []
            step = resolution(e) if e else Fraction(1)
            for i, v in enumerate(released):
                stat = stats[i] if i < len(stats) else "s%d" % i
                note = "" if e else NO_MANIFEST
                if stat == "hist" and isinstance(v, list):
                    out.extend(Value(name, "hist%d" % j, _number(c), COUNT, "environmental", start, end, note)
                               for j, c in enumerate(v))
                    continue
                if isinstance(v, bool) or not isinstance(v, (int, type(None))):
                    out.append(Value(name, stat, None, unit, "environmental", start, end, "not a number"))
                    continue
                if v is None:
                    note = note or "no readings in this window"
                # n counts readings; var is in the unit squared; every other statistic is in steps.
                scale, u, places = {"n": (1, COUNT, 0), "var": (step * step, unit + "²" if unit else "",
                                                               2 * decimals(e or {}))}.get(
                    stat, (step, unit, decimals(e) if e else 0))
                out.append(Value(name, stat, None if v is None else v * scale, u, "environmental", start, end, note,
                                 places))
        elif isinstance(released, dict):
            out.extend(_personal(name, released, unit, start, end))
    return out


def _personal(name, released, unit, start, end):
    if released.get("suppressed"):
        return [Value(name, "n", None, unit, "personal", start, end, "suppressed")]
    if "withheld" in released:
        return [Value(name, "n", None, unit, "personal", start, end, "withheld: %s" % released["withheld"])]
    out = []
    for stat in ("n", "sum", "mean"):
        if stat in released:
            v = released[stat]
            places = len(v.partition(".")[2]) if isinstance(v, str) else 0  # a DP mean comes as "11.14"
            out.append(Value(name, stat, _number(v), unit, "personal", start, end, places=places))
    for i, v in enumerate(released.get("h") or []):
        out.append(Value(name, "h%d" % i, _number(v), unit, "personal", start, end, "" if v is not None
                         else "suppressed"))
    return out


def _number(v):
    if isinstance(v, bool) or v is None:
        return None
    if isinstance(v, int):
        return Fraction(v)
    try:
        return Fraction(Decimal(str(v)))
    except (ArithmeticError, ValueError):
        return None


def decimal_text(value, places=0):
    """An exact decimal for a Fraction whose denominator divides a power of ten (at least `places`
    decimals, so a metric's values line up: 12.0, 11.6); otherwise rounded to 6 places."""
    if value is None:
        return ""
    if places and (value * 10 ** places).denominator == 1:
        return "%d.%0*d" % (int(value), places, abs(value * 10 ** places) % 10 ** places) if value >= 0 else \
            "-" + decimal_text(-value, places)
    if value.denominator == 1:
        return str(value.numerator)
    d = value.denominator
    for p in (2, 5):
        while d % p == 0:
            d //= p
    if d == 1:
        q = Decimal(value.numerator) / Decimal(value.denominator)
        text = format(q, "f")
    else:
        text = format(round(Decimal(value.numerator) / Decimal(value.denominator), 6), "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def json_number(value):
    """The value for JSON: an int when whole, else the float nearest the exact decimal."""
    if value is None:
        return None
    if value.denominator == 1:
        return value.numerator
    return float(decimal_text(value))


def headline(values):
    """{metric: Value} the one value a resident sees first: the mean (or LAeq), else the count, else
    the first released."""
    rank = {"mean": 0, "leq": 0, "n": 1}
    out = {}
    for v in values:
        cur = out.get(v.metric)
        if cur is None or rank.get(v.stat, 2) < rank.get(cur.stat, 2):
            out[v.metric] = v
    return out
