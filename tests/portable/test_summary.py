"""Summary payload: deterministic encoding and a decoder that names the offending field."""
from agent.core import cbor, summary
from agent.errors import DecodeError
from support import raises

DEV = "cmabcdefghijklmnop"
MH = b"\x11" * summary.MH_LEN


def _metrics():
    return {"temp": [12, 2153, 2149, 2170], "pm25": [12, 84, 61, 140], "foot": {"n": 37}}


def test_round_trip():
    s = summary.build(DEV, 41, 1764201600, 1764201900, _metrics(), MH, gap=[2, 38, 39], health={"up": 3600})
    data = summary.encode(s)
    assert summary.decode(data) == s
    # Deterministic: the same summary built in another order encodes to the same bytes.
    other = {}
    for k in ("h", "gap", "mh", "m", "t1", "t0", "seq", "dev", "v"):
        other[k] = s[k]
    assert summary.encode(other) == data
    assert data == cbor.dumps(s)


def test_manifest_hash_is_truncated_sha256():
    import hashlib

    mh = summary.manifest_hash(b"\xa1\x61\x76\x01")
    assert mh == hashlib.sha256(b"\xa1\x61\x76\x01").digest()[:summary.MH_LEN]


def _bad(mutate, needle):
    s = summary.build(DEV, 41, 100, 400, _metrics(), MH)
    mutate(s)
    e = raises(DecodeError, summary.decode, cbor.dumps(s))
    assert needle in str(e), (needle, str(e))


def test_each_field_is_checked():
    _bad(lambda s: s.pop("seq"), "missing field 'seq'")
    _bad(lambda s: s.update(v=2), "summary.v")
    _bad(lambda s: s.update(dev="someone"), "summary.dev")
    _bad(lambda s: s.update(seq=-1), "summary.seq")
    _bad(lambda s: s.update(seq=True), "summary.seq")
    _bad(lambda s: s.update(t1=100), "summary.t1")
    _bad(lambda s: s.update(m=[1]), "summary.m")
    _bad(lambda s: s.update(m={"": 1}), "summary.m")
    _bad(lambda s: s.update(mh=b"\x00" * (summary.MH_LEN + 1)), "summary.mh")
    _bad(lambda s: s.update(gap=[1, 2]), "summary.gap")
    _bad(lambda s: s.update(gap=[1, 50, 60]), "summary.gap")  # not before seq 41
    _bad(lambda s: s.update(h=[]), "summary.h")
    _bad(lambda s: s.update(extra=1), "unknown field")


def test_non_map_and_non_canonical_payloads():
    raises(DecodeError, summary.decode, cbor.dumps([1, 2]))
    good = summary.encode(summary.build(DEV, 1, 100, 400, {}, MH))
    # The same map with a non-shortest integer head is refused: one summary, one encoding.
    i = good.index(b"\x63seq\x01")
    longer = good[:i] + b"\x63seq\x18\x01" + good[i + 5:]
    raises(DecodeError, summary.decode, longer)
