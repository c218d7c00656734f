"""The privacy manifest: what the device measures and exactly how personal metrics are released.

`build_manifest` turns the board profile's metrics into a plain dict (ints, strings, lists,
nested dicts; rationals as exact strings such as "1/2"; no floats, so every runtime encodes
the same bytes). The runtime signs its deterministic CBOR as a COSE_Sign1 and carries
`manifest_hash` in every summary. `describe` renders it for a resident.
"""
from agent.errors import ConfigError
from agent.core import rational
from agent.privacy.policy import DPPolicy, parse_dp

VERSION = 1
CLASSES = ("environmental", "personal")


def build_manifest(profile_metrics, device_id=None, board=None, window_s=None):
    """The manifest payload for a board profile's metrics.

    profile_metrics: a dict name -> metric dict (as in a board profile's "metrics"), or a list
    of metric dicts with a "name". A metric dict has "unit", "class" ("environmental" or
    "personal"), optional "window" (seconds; else `window_s`, the board's window), optional
    "description" (plain words, e.g. "people passing"), and for a personal metric "dp" (a dp
    block or a parsed DPPolicy). Other keys (sensor, reading) are not part of the manifest.
    Raises ConfigError naming the metric and field.
    """
    items = []
    if isinstance(profile_metrics, dict):
        for name in profile_metrics:
            m = dict(profile_metrics[name])
            m.setdefault("name", name)
            items.append(m)
    else:
        items = list(profile_metrics)
    entries = []
    seen = {}
    for m in items:
        e = _entry(m, window_s)
        if e["name"] in seen:
            raise ConfigError("metric %r is declared twice" % e["name"])
        seen[e["name"]] = True
        entries.append(e)
    entries.sort(key=lambda e: e["name"])
    out = {"kind": "manifest", "v": VERSION, "metrics": entries}
    if device_id is not None:
        out["dev"] = device_id
    if board is not None:
        out["board"] = board
    return out


def _entry(m, default_window):
    name = m.get("name")
    if not isinstance(name, str) or not name:
        raise ConfigError("a metric has no name")

    def fail(msg):
        raise ConfigError("metric %r: %s" % (name, msg))

    cls = m.get("class")
    if cls not in CLASSES:
        fail("class must be 'environmental' or 'personal', not %r" % (cls,))
    unit = m.get("unit", "")
    if not isinstance(unit, str):
        fail("unit must be a string")
    window = m.get("window", m.get("window_s", default_window))
    if isinstance(window, bool) or not isinstance(window, int) or window <= 0:
        fail("window must be a whole number of seconds > 0, not %r" % (window,))
    e = {"name": name, "unit": unit, "window": window, "class": cls}
    desc = m.get("description")
    if desc is not None:
        if not isinstance(desc, str):
            fail("description must be a string")
        e["description"] = desc
    if cls == "environmental":
        if m.get("dp") is not None:
            fail("dp is only for personal metrics; an environmental metric is published exactly")
        # How to read the summary's positional statistics: which, in what order, in what unit step.
        e["resolution"] = rational.text(rational.parse(m.get("resolution", 1)))
        e["stats"] = list(m.get("stats", ("mean", "min", "max")))
        return e
    dp = m.get("dp")
    p = dp if isinstance(dp, DPPolicy) else parse_dp(name, dp)
    e["mechanism"] = p.mechanism
    e["epsilon"] = rational.text(p.epsilon)
    e["daily_epsilon"] = rational.text(p.daily_epsilon)
    e["sensitivity"] = p.sensitivity()
    for key in ("k", "lo", "hi", "bits"):
        v = getattr(p, key)
        if v is not None:
            e[key] = v
    if p.buckets is not None:
        e["buckets"] = list(p.buckets)
    if p.mean_split is not None:
        e["mean_split"] = rational.text(p.mean_split)
    return e


def payload(manifest):
    """The manifest's deterministic CBOR: the bytes that are signed and hashed."""
    from agent.core import cbor

    return cbor.dumps(manifest)


def manifest_hash(manifest):
    """The `mh` carried in every summary (agent.core.summary.manifest_hash of the payload)."""
    from agent.core import summary

    return summary.manifest_hash(payload(manifest))


def sign_manifest(manifest, signing_key, device_id):
    """The manifest as a COSE_Sign1 (bytes), kid = device_id, for the retained manifest topic."""
    from agent.core import cose

    return cose.sign1(payload(manifest), signing_key, device_id.encode())


def window_text(seconds):
    """300 -> "5-minute", 3600 -> "1-hour", 90 -> "90-second"."""
    if seconds % 86400 == 0:
        return "%d-day" % (seconds // 86400)
    if seconds % 3600 == 0:
        return "%d-hour" % (seconds // 3600)
    if seconds % 60 == 0:
        return "%d-minute" % (seconds // 60)
    return "%d-second" % seconds


def describe(manifest):
    """The manifest in plain language, one paragraph per metric."""
    lines = []
    head = "This sensor publishes %d measurement%s." % (
        len(manifest["metrics"]), "" if len(manifest["metrics"]) == 1 else "s")
    if manifest.get("dev"):
        head = "Device %s publishes %d measurement%s." % (
            manifest["dev"], len(manifest["metrics"]), "" if len(manifest["metrics"]) == 1 else "s")
    lines.append(head)
    for e in manifest["metrics"]:
        lines.append("")
        lines.append(_describe_metric(e))
    return "\n".join(lines)


_ACRONYMS = ("co2", "no2", "o3", "voc", "pm1", "pm2.5", "pm4", "pm10", "ble")


def metric_words(name):
    """A metric name in plain words: "pm2_5" -> "PM2.5", "co2" -> "CO2", "wait_time" -> "wait time"."""
    return _words(name)


def _words(name):
    # "pm2_5" -> "pm2.5", "wait_time" -> "wait time": an underscore between digits is a point.
    out = ""
    for i, c in enumerate(name):
        if c in "_-":
            digits = 0 < i < len(name) - 1 and name[i - 1] in "0123456789" and name[i + 1] in "0123456789"
            c = "." if digits else " "
        out += c
    return " ".join(w.upper() if w in _ACRONYMS else w for w in out.split(" "))


def _title(name):
    words = _words(name)
    return words[:1].upper() + words[1:]


def _unit(e):
    return " " + e["unit"] if e["unit"] else ""


def _describe_metric(e):
    title = _title(e["name"])
    what = e.get("description")
    win = window_text(e["window"])
    if e["class"] == "environmental":
        return "%s: measures %s and publishes its %s over each %s window%s. No personal data." % (
            title, what or _words(e["name"]), _stats_text(e.get("stats", ())), win, _resolution_text(e))
    mech = e["mechanism"]
    if mech == "count":
        body = "counts %s" % (what or e["unit"] or "events")
        if e.get("hi", 1) > 1:
            body += " (one reading adds at most %d)" % e["hi"]
    elif mech == "sum":
        body = "adds up %s, each reading capped between %d and %d%s" % (
            what or "readings", e["lo"], e["hi"], _unit(e))
    elif mech == "mean":
        body = "averages %s, each reading capped between %d and %d%s" % (
            what or "readings", e["lo"], e["hi"], _unit(e))
    elif mech == "histogram":
        body = "counts %s in ranges (%s%s)" % (what or "readings", _ranges(e["buckets"]), _unit(e))
    else:
        body = ("counts how many distinct %s are nearby; their radio addresses are scrambled with "
                "a key that is thrown away after every window, and never stored or sent"
                % (what or "phones and other Bluetooth devices"))
    text = "%s: %s, with noise added so no single person can be detected (ε = %s per %s window, at most %s per day" % (
        title, body, e["epsilon"], win, e["daily_epsilon"])
    per_day = rational.floor_div(rational.parse(e["daily_epsilon"]), rational.parse(e["epsilon"]))
    if per_day * e["window"] < 86400:
        text += ", so it is published for at most %d window%s a day" % (per_day, "" if per_day == 1 else "s")
    text += ")."
    if "k" in e:
        text += " Counts under %d are never published." % e["k"]
    return text


_STAT_WORDS = {"n": "number of readings", "mean": "average", "min": "lowest value", "max": "highest value",
               "sd": "spread (standard deviation)", "leq": "energy-average level (LAeq)"}


def _stats_text(stats):
    words = [_STAT_WORDS.get(s, s) for s in stats] or ["value"]
    if len(words) == 1:
        return words[0]
    return ", ".join(words[:-1]) + " and " + words[-1]


def _resolution_text(e):
    res = e.get("resolution")
    if not res:
        return ""
    r = rational.parse(res)
    if r[1] == 1:
        step = "%d" % r[0]
    elif r[0] == 1 and r[1] in (10, 100, 1000):
        step = "0." + "0" * (len(str(r[1])) - 2) + "1"
    else:
        step = rational.text(r)
    return ", to the nearest %s%s" % (step, _unit(e))


def _ranges(edges):
    parts = ["below %d" % edges[0]]
    for i in range(1, len(edges)):
        parts.append("%d to %d" % (edges[i - 1], edges[i]))
    parts.append("%d and above" % edges[-1])
    return ", ".join(parts)
