"""The one schema check of signed payloads on the city side (CPython only; CDDL in docs/wire-format.md).

    check_summary(obj, signer, now=None)   -> None, or raise SchemaError naming the field
    check_manifest(obj, signer)            -> None, or raise SchemaError naming the field

`obj` is what provisioning.city.strict_cbor.decode made of a verified payload, so its map keys
are text, its integers fit a signed 64-bit column and it holds no floats or tags; this module
checks everything else the CDDL says: exact types (true is not 1), which fields exist, ranges,
sizes and the relations between fields. Nothing is stored or printed before it passes.

New optional summary fields (declared first in docs/wire-format.md) are added to
SUMMARY_OPTIONAL with their own check; a field missing from the table is refused.
"""
import re

VERSION = 1
MANIFEST_VERSIONS = (1, 2)
MH_LEN = 8
MAX_METRICS = 64
MAX_STATS = 32           # statistics of one environmental metric
MAX_LIST = 64            # e.g. histogram buckets, a list inside a statistic
MAX_RELEASED_KEYS = 16   # keys of one personal metric's release
MAX_HEALTH = 32          # health counters
MAX_WINDOW = 7 * 86400   # seconds: the longest window a summary or manifest entry may declare
MAX_AHEAD = 3600         # seconds: a window may not end further than this after its arrival
MAX_TEXT = 1024          # characters of any manifest text (descriptions)
MAX_SHORT = 64           # characters of names, units, released texts
_DEVICE_ID = re.compile(r"cm[a-z2-7]{16}\Z")
_METRIC = re.compile(r"[a-z][a-z0-9_]{0,31}\Z")
_KEY = re.compile(r"[a-z][a-z0-9_]{0,31}\Z")
_NAMES_SEEN = set()  # metric names already matched against _METRIC


class SchemaError(ValueError):
    """A decoded payload that the CDDL does not allow; str(e) names the field."""


def _is_uint(v):
    return type(v) is int and v >= 0


def _is_int(v):
    return type(v) is int


def _text(v, where, limit=MAX_SHORT):
    if type(v) is not str:
        raise SchemaError("%s: must be text" % where)
    if len(v) > limit:
        raise SchemaError("%s: text of %d characters exceeds %d" % (where, len(v), limit))
    return v


# -- summary ---------------------------------------------------------------------------------

def check_summary(s, signer, now=None, max_ahead=MAX_AHEAD):
    if type(s) is not dict:
        raise SchemaError("summary: payload must be a map")
    for k in SUMMARY_REQUIRED:
        if k not in s:
            raise SchemaError("summary: missing field %r" % k)
    for k in s:
        if k not in SUMMARY_REQUIRED and k not in SUMMARY_OPTIONAL:
            raise SchemaError("summary: unknown field %r" % (k,))
    v = s["v"]
    if type(v) is not int or v != VERSION:
        raise SchemaError("summary.v: must be the integer %d, got %r" % (VERSION, v))
    if s["dev"] != signer:
        raise SchemaError("summary.dev: %r differs from the signer %s" % (s["dev"], signer))
    for k in ("seq", "t0", "t1"):
        if not _is_uint(s[k]):
            raise SchemaError("summary.%s: must be an unsigned integer, got %r" % (k, s[k]))
    t0, t1 = s["t0"], s["t1"]
    if t1 <= t0:
        raise SchemaError("summary.t1: window end %d is not after its start %d" % (t1, t0))
    if t1 - t0 > MAX_WINDOW:
        raise SchemaError("summary.t1: window of %d s exceeds %d s" % (t1 - t0, MAX_WINDOW))
    if now is not None and max_ahead is not None and t1 > now + max_ahead:
        raise SchemaError("summary.t1: window ends %d s after its arrival (more than %d s in the future)"
                          % (t1 - int(now), max_ahead))
    _metrics(s["m"])
    mh = s["mh"]
    if type(mh) is not bytes or len(mh) != MH_LEN:
        raise SchemaError("summary.mh: must be %d bytes" % MH_LEN)
    for k in SUMMARY_OPTIONAL:
        if k in s:
            SUMMARY_OPTIONAL[k](s[k], s)


def _metrics(m):
    if type(m) is not dict:
        raise SchemaError("summary.m: must be a map of metric name to statistics")
    if len(m) > MAX_METRICS:
        raise SchemaError("summary.m: %d metrics exceed %d" % (len(m), MAX_METRICS))
    for name, value in m.items():
        if name not in _NAMES_SEEN:
            if not _METRIC.match(name):
                raise SchemaError("summary.m: metric name %r is not 1-32 of a-z, 0-9, _" % name[:40])
            if len(_NAMES_SEEN) < 4096:  # a fleet has a few dozen names: skip the regex for them
                _NAMES_SEEN.add(name)
        where = "summary.m.%s" % name
        if type(value) is list:
            _env_stats(value, where)
        elif type(value) is dict:
            _released(value, where)
        else:
            raise SchemaError("%s: must be a list of statistics or a map of released values" % where)


def _env_stats(stats, where):
    if len(stats) > MAX_STATS:
        raise SchemaError("%s: %d statistics exceed %d" % (where, len(stats), MAX_STATS))
    for i, x in enumerate(stats):
        if x is None or _is_int(x):
            continue
        if type(x) is list and len(x) <= MAX_LIST and all(_is_uint(y) for y in x):
            continue
        raise SchemaError("%s[%d]: must be an integer, null or a list of unsigned integers" % (where, i))


def _released(r, where):
    if len(r) > MAX_RELEASED_KEYS:
        raise SchemaError("%s: %d released keys exceed %d" % (where, len(r), MAX_RELEASED_KEYS))
    for k, x in r.items():
        if not _KEY.match(k):
            raise SchemaError("%s: key %r is not 1-32 of a-z, 0-9, _" % (where, k[:40]))
        if x is None or x is True or x is False or _is_int(x):
            continue
        if type(x) is str:
            _text(x, "%s.%s" % (where, k))
            continue
        if type(x) is list and len(x) <= MAX_LIST and all(y is None or _is_int(y) for y in x):
            continue
        raise SchemaError("%s.%s: must be an integer, text, true/false, null or a list of integers/nulls"
                          % (where, k))


def _gap(g, s):
    if not (type(g) is list and len(g) == 3 and all(_is_uint(x) for x in g)):
        raise SchemaError("summary.gap: must be [count, first_seq, last_seq] of unsigned integers")
    count, first, last = g
    if count < 1 or last < first or last >= s["seq"] or count > last - first + 1:
        raise SchemaError("summary.gap: %r is not a count within a range of earlier sequence numbers" % (g,))


def _health(h, s):
    if type(h) is not dict:
        raise SchemaError("summary.h: must be a map of health counters")
    if len(h) > MAX_HEALTH:
        raise SchemaError("summary.h: %d counters exceed %d" % (len(h), MAX_HEALTH))
    for k, x in h.items():
        if not _KEY.match(k):
            raise SchemaError("summary.h: counter name %r is not 1-32 of a-z, 0-9, _" % k[:40])
        if not _is_uint(x):
            raise SchemaError("summary.h.%s: must be an unsigned integer, got %r" % (k, x))


SUMMARY_REQUIRED = ("v", "dev", "seq", "t0", "t1", "m", "mh")
SUMMARY_OPTIONAL = {"gap": _gap, "h": _health}


# -- manifest --------------------------------------------------------------------------------

CLASSES = ("environmental", "personal")


def check_manifest(d, signer):
    if type(d) is not dict:
        raise SchemaError("manifest: payload must be a map")
    if d.get("kind") != "manifest":
        raise SchemaError("manifest.kind: must be \"manifest\"")
    v = d.get("v")
    if type(v) is not int or v not in MANIFEST_VERSIONS:
        raise SchemaError("manifest.v: must be one of the integers %s, got %r" % (MANIFEST_VERSIONS, v))
    if d.get("dev") != signer:
        raise SchemaError("manifest.dev: %r differs from the signer %s" % (d.get("dev"), signer))
    if "board" in d:
        _text(d["board"], "manifest.board")
    if "sw" in d:
        sw = d["sw"]
        if type(sw) is not dict or set(sw) != {"seq", "d"} or not _is_uint(sw["seq"]) or \
                type(sw["d"]) is not bytes or len(sw["d"]) != 4:
            raise SchemaError("manifest.sw: must be {seq: uint, d: 4 bytes} (the software that made the summaries)")
    metrics = d.get("metrics")
    if type(metrics) is not list or len(metrics) > MAX_METRICS:
        raise SchemaError("manifest.metrics: must be a list of at most %d metric entries" % MAX_METRICS)
    prev = None
    for i, e in enumerate(metrics):
        name = _entry(e, "manifest.metrics[%d]" % i)
        if prev is not None and name <= prev:
            raise SchemaError("manifest.metrics[%d]: %r is not sorted after %r (or repeats it)" % (i, name, prev))
        prev = name
    for k, x in d.items():
        if k not in ("kind", "v", "dev", "board", "metrics", "sw"):
            _plain(x, "manifest.%s" % k[:40], 4)


def _entry(e, where):
    if type(e) is not dict:
        raise SchemaError("%s: must be a map" % where)
    name = e.get("name")
    if type(name) is not str or not _METRIC.match(name):
        raise SchemaError("%s.name: must be 1-32 of a-z, 0-9, _" % where)
    where = "manifest.metrics.%s" % name
    if e.get("class") not in CLASSES:
        raise SchemaError("%s.class: must be one of %s" % (where, ", ".join(CLASSES)))
    _text(e.get("unit"), where + ".unit")
    w = e.get("window")
    if not _is_uint(w) or not 0 < w <= MAX_WINDOW:
        raise SchemaError("%s.window: must be whole seconds in 1..%d" % (where, MAX_WINDOW))
    for k, x in e.items():
        if k not in ("name", "class", "unit", "window"):
            _plain(x, "%s.%s" % (where, k[:40]), 3)
    return name


def _plain(x, where, depth):
    """Manifest values beyond the fixed fields: integers, bounded text, true/false, null, and
    lists and maps of those, nested at most `depth` deep."""
    if x is None or x is True or x is False or _is_int(x):
        return
    if type(x) is str:
        _text(x, where, MAX_TEXT)
        return
    if depth <= 0:
        raise SchemaError("%s: nested too deep" % where)
    if type(x) is list:
        if len(x) > MAX_LIST:
            raise SchemaError("%s: %d items exceed %d" % (where, len(x), MAX_LIST))
        for i, y in enumerate(x):
            _plain(y, "%s[%d]" % (where, i), depth - 1)
        return
    if type(x) is dict:
        if len(x) > MAX_LIST:
            raise SchemaError("%s: %d keys exceed %d" % (where, len(x), MAX_LIST))
        for k, y in x.items():
            _plain(y, "%s.%s" % (where, k[:40]), depth - 1)
        return
    raise SchemaError("%s: a byte string is not allowed here" % where)
