"""The summary payload (contract; CDDL in docs/wire-format.md), encode and decode (pure).

A summary is one closed window of one device:

    {"v": 1, "dev": device_id, "seq": n, "t0": start, "t1": end,
     "m": {metric name: released statistics}, "mh": manifest hash,
     ? "gap": [count, first_seq, last_seq],   summaries dropped before this one
     ? "h": {health counter: uint}}

encoded as deterministic CBOR, so the same summary always gives the same bytes.
"""
import hashlib

from agent.core import cbor
from agent.core.identity import is_device_id
from agent.errors import DecodeError

VERSION = 1
MH_LEN = 8  # manifest hash: SHA-256 truncated to 8 bytes (see docs/wire-format.md, "mh")
MAX_METRICS = 64
REQUIRED = ("v", "dev", "seq", "t0", "t1", "m", "mh")
OPTIONAL = ("gap", "h")


def manifest_hash(manifest_payload):
    """The `mh` of a manifest: SHA-256 of its deterministic CBOR payload, truncated to MH_LEN."""
    return hashlib.sha256(manifest_payload).digest()[:MH_LEN]


def build(dev, seq, t0, t1, metrics, mh, gap=None, health=None):
    """The summary map, checked. metrics maps metric name -> released statistics (CBOR-able)."""
    s = {"v": VERSION, "dev": dev, "seq": seq, "t0": t0, "t1": t1, "m": metrics, "mh": mh}
    if gap is not None:
        s["gap"] = list(gap)
    if health:
        s["h"] = health
    check(s)
    return s


def encode(summary):
    """Deterministic CBOR bytes of a summary map (checked first)."""
    check(summary)
    return cbor.dumps(summary)


def decode(payload):
    """Parse and check a summary payload; raise DecodeError naming the offending field."""
    s = cbor.loads(payload, max_depth=8, canonical=True)
    check(s)
    return s


def _uint(v):
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


def check(s):
    """Raise DecodeError unless s is a well-formed summary map."""
    if not isinstance(s, dict):
        raise DecodeError("summary: payload must be a CBOR map")
    for k in REQUIRED:
        if k not in s:
            raise DecodeError("summary: missing field %r" % k)
    for k in s:
        if k not in REQUIRED and k not in OPTIONAL:
            raise DecodeError("summary: unknown field %r" % (k,))
    if s["v"] != VERSION:
        raise DecodeError("summary.v: unsupported format version %r (this verifier reads %d)" % (s["v"], VERSION))
    if not is_device_id(s["dev"]):
        raise DecodeError("summary.dev: %r is not a device_id" % (s["dev"],))
    for k in ("seq", "t0", "t1"):
        if not _uint(s[k]):
            raise DecodeError("summary.%s: must be an unsigned integer" % k)
    if s["t1"] <= s["t0"]:
        raise DecodeError("summary.t1: window end %d is not after its start %d" % (s["t1"], s["t0"]))
    m = s["m"]
    if not isinstance(m, dict):
        raise DecodeError("summary.m: must be a map of metric name to statistics")
    if len(m) > MAX_METRICS:
        raise DecodeError("summary.m: %d metrics exceeds %d" % (len(m), MAX_METRICS))
    for name in m:
        if not isinstance(name, str) or not name:
            raise DecodeError("summary.m: metric names must be non-empty text")
    if not isinstance(s["mh"], bytes) or len(s["mh"]) != MH_LEN:
        raise DecodeError("summary.mh: must be %d bytes" % MH_LEN)
    if "gap" in s:
        g = s["gap"]
        if not (isinstance(g, list) and len(g) == 3 and _uint(g[0]) and _uint(g[1]) and _uint(g[2])):
            raise DecodeError("summary.gap: must be [count, first_seq, last_seq]")
        if g[0] < 1 or g[2] < g[1] or g[2] >= s["seq"]:
            raise DecodeError("summary.gap: %r is not a range of earlier sequence numbers" % (g,))
    if "h" in s:
        h = s["h"]
        if not isinstance(h, dict):
            raise DecodeError("summary.h: must be a map of health counters")
        for k in h:
            if not isinstance(k, str):
                raise DecodeError("summary.h: counter names must be text")
