"""The privacy manifest: everything a summary can carry, and exactly how people are protected.

`build_manifest` turns the board profile into a plain dict (ints, strings, lists, nested
dicts; rationals as exact strings such as "2/25"; no floats, so every runtime encodes the same
bytes). It declares:
- `privacy`: the unit of privacy (one person) and the device's one budget per person per day,
  across all personal metrics (`daily_epsilon`), and what a day of every window would spend;
- `metrics`: each metric's unit, window and class; for a personal one its mechanism, epsilon
  per window for one person, the per-person bound (`sensitivity`, in the metric's unit), the
  noise scale, k, the assumptions the bound rests on (per_person, refractory_s, max_events,
  worst_case, rotation_s, devices) and the keys its released statistics can have;
- `fields` and `health`: every key of a summary and of its health counters, with what it can
  reveal;
- `sw` (a device's manifest): the software that makes its summaries, {"seq": release seq, "d":
  the first 4 bytes of the release's hash} ({"seq": 0, "d": 4 zero bytes}: factory software), so
  the `mh` in every summary names the code that made it (docs/updates.md).
The runtime signs its deterministic CBOR as a COSE_Sign1 and carries `manifest_hash` in every
summary. It is rendered for residents on the host only, from the signed manifest, by the one
renderer provisioning.language.manifest_words: the device never words its own promise.
"""
from agent.errors import ConfigError
from agent.core import rational
from agent.privacy.policy import DPPolicy, parse_dp, spend_per_day

VERSION = 2
CLASSES = ("environmental", "personal")
UNIT = "person"

# Every key of a summary payload (agent.core.summary), with what it can reveal.
FIELDS = {
    "v": "format version of the summary",
    "dev": "the device's identifier (derived from its public key)",
    "seq": "sequence number, increasing across restarts: shows summaries that went missing",
    "t0": "start of the window, Unix seconds",
    "t1": "end of the window, Unix seconds",
    "m": "the measurements: metric name to released statistics, as this manifest declares them",
    "mh": "hash of the manifest in force (this document)",
    "gap": "summaries dropped on the device before this one: [count, first seq, last seq]",
    "h": "health counters, listed under health",
}
# Health counters (agent.runtime.agent.Agent.health): none but `clamp` is computed from sensor
# readings, and `clamp` stays 0 unless a driver reports more than it declares it can.
HEALTH = {
    "up": "seconds since the agent started: shows restarts and power cuts",
    "err": "sensor faults since the start (bus errors, timeouts, bad checksums): shows hardware trouble or tampering",
    "deg": "sensors currently failing: shows hardware trouble or tampering",
    "q": "summaries waiting on the device for the network: shows network outages",
    "net": "network errors since the start: shows network trouble",
    "boot": "sequence number of the first summary since the last start: shows when it restarted",
    "clamp": ("readings of a personal metric that claimed more than one reading can contribute (per_reading) "
              "and were cut down before counting, since the start, added when their window closes: shows a "
              "faulty sensor or driver; a fault that fires when people pass can show in which window it did"),
}
# Keys the released statistics of each mechanism can carry (agent.privacy.release).
RELEASED = {
    "count": ["n", "suppressed", "withheld"],
    "sum": ["sum", "withheld"],
    "mean": ["n", "sum", "mean", "suppressed", "withheld"],
    "histogram": ["h", "withheld"],
    "distinct": ["n", "saturated", "suppressed", "withheld"],
}
_ASSUMPTIONS = ("per_person", "refractory_s", "max_events", "rotation_s", "devices")


_ACRONYMS = ("co2", "no2", "o3", "voc", "pm1", "pm1.0", "pm2.5", "pm4", "pm10", "ble")


def metric_words(name):
    """A metric name in plain words: "pm2_5" -> "PM2.5", "co2" -> "CO2", "wait_time" -> "wait time"."""
    out = ""
    for i, c in enumerate(name):
        if c in "_-":  # an underscore between digits is a point
            digits = 0 < i < len(name) - 1 and name[i - 1] in "0123456789" and name[i + 1] in "0123456789"
            c = "." if digits else " "
        out += c
    return " ".join(w.upper() if w in _ACRONYMS else w for w in out.split(" "))


def board_manifest(board, device_id=None, sw=None):
    """The manifest of a loaded Board (agent.board): its metrics, parsed policies and budget.
    sw: (release seq, 4 bytes of its hash) of the software running it (a device's manifest)."""
    metrics = {}
    for name in board.metrics:
        m = dict(board.metrics[name])
        if name in board.dp:
            m["dp"] = board.dp[name]
        metrics[name] = m
    return build_manifest(metrics, device_id, board.name, board.window_s, board.daily_epsilon, sw)


def build_manifest(profile_metrics, device_id=None, board=None, window_s=None, daily_epsilon=None, sw=None):
    """The manifest payload for a board profile's metrics.

    profile_metrics: a dict name -> metric dict (as in a board profile's "metrics"), or a list
    of metric dicts with a "name". A metric dict has "unit", "class" ("environmental" or
    "personal"), optional "window" (seconds; else `window_s`, the board's window), optional
    "description" (plain words, e.g. "people passing"), and for a personal metric "dp" (a
    parsed DPPolicy, or a dp block, parsed here without sensor parameters). daily_epsilon: the
    board's budget per person per day (a rational or its text), required with personal metrics.
    Other keys (sensor, reading) are not part of the manifest. Raises ConfigError naming the
    metric and field.
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
    policies = {}
    for m in items:
        e, p = _entry(m, window_s)
        if e["name"] in seen:
            raise ConfigError("metric %r is declared twice" % e["name"])
        seen[e["name"]] = True
        entries.append(e)
        if p is not None:
            policies[e["name"]] = p
    entries.sort(key=lambda e: e["name"])
    out = {"kind": "manifest", "v": VERSION, "metrics": entries, "fields": dict(FIELDS), "health": dict(HEALTH)}
    if policies:
        if daily_epsilon is None:
            raise ConfigError("privacy.daily_epsilon: missing: personal metrics need the device's budget per person per day")
        cap = daily_epsilon if isinstance(daily_epsilon, tuple) else rational.parse(daily_epsilon)
        out["privacy"] = {"unit": UNIT, "daily_epsilon": rational.text(cap),
                          "every_window_per_day": rational.text(spend_per_day(policies))}
    if device_id is not None:
        out["dev"] = device_id
    if board is not None:
        out["board"] = board
    if sw is not None:
        out["sw"] = {"seq": sw[0], "d": bytes(sw[1])}
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
        return e, None
    dp = m.get("dp")
    p = dp if isinstance(dp, DPPolicy) else parse_dp(name, dp, window)
    e["mechanism"] = p.mechanism
    e["epsilon"] = rational.text(p.epsilon)
    e["sensitivity"] = p.sensitivity()
    scales = p.scales()
    e["scale"] = {}
    for key in scales:
        e["scale"][key] = rational.text(scales[key])
    for key in ("k", "lo", "hi", "bits") + _ASSUMPTIONS:
        v = getattr(p, key)
        if v is not None:
            e[key] = v
    per_reading = p.per_reading()
    if per_reading is not None:
        e["per_reading"] = per_reading
    worst = p.worst_case()
    if worst is not None:
        e["worst_case"] = worst
    if p.buckets is not None:
        e["buckets"] = list(p.buckets)
    if p.mean_split is not None:
        e["mean_split"] = rational.text(p.mean_split)
    e["released"] = list(RELEASED[p.mechanism])
    return e, p


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
