# CPython only: agent.core.cbor against cbor2 (an independent implementation), plus a fuzz loop.
"""Interop and fuzz tests for agent/core/cbor.py.

Key order. cbor2 5.x `canonical=True` sorts map keys length-first, then bytewise (RFC 7049
section 3.9, "Canonical CBOR"); we sort by the bytes alone (RFC 8949 section 4.2.1). The two
orders differ only when keys of different major types have encodings of different lengths
(24 = 1818 sorts before -1 = 20 bytewise, after it length-first). So we compare fairly in two ways:
  * against `reference()`: the RFC 8949 encoding assembled from cbor2's own encodings of every
    scalar and head, with only the key sort (bytewise) done here;
  * against cbor2's canonical output verbatim whenever no map in the value has keys on which the
    two orders disagree.
Floats. cbor2's C extension (5.9.0) does not shorten floats with a half-precision exponent of 15
(32768 <= |x| < 65536, e.g. 65504.0 -> fa477fe000, where RFC 8949 Appendix A says f97bff); its
pure-Python encoder does. The byte-exact comparisons use the pure-Python encoder; the C extension
is used for decoding in both directions.
"""
import io
import random
import struct

import cbor2
import pytest
from cbor2 import _encoder as cbor2_pure
from cbor2 import _types as cbor2_pure_types

from agent.core.cbor import Tag, dumps, loads
from agent.errors import DecodeError
from test_cbor import VECTORS, same, value_of

# cbor2 accepts these malformed/invalid vectors (it returns a break marker, ignores trailing
# bytes, keeps the last duplicate); every other malformed or invalid vector it must reject too.
CBOR2_LENIENT = {"ff", "81ff", "0000", "80ff", "a201020103", "a2616101616102"}


def to_cbor2(v, tag_type=cbor2.CBORTag):
    if isinstance(v, Tag):
        return tag_type(v.tag, to_cbor2(v.value, tag_type))
    if isinstance(v, (list, tuple)):
        return [to_cbor2(x, tag_type) for x in v]
    if isinstance(v, dict):
        return {k: to_cbor2(x, tag_type) for k, x in v.items()}
    return v


def from_cbor2(v):
    if isinstance(v, (cbor2.CBORTag, cbor2_pure_types.CBORTag)):
        return Tag(v.tag, from_cbor2(v.value))
    if isinstance(v, list):
        return [from_cbor2(x) for x in v]
    if isinstance(v, dict):
        return {k: from_cbor2(x) for k, x in v.items()}
    return v


def norm(v):
    """What loads() gives back for v: tuples become lists, bytes-likes become bytes."""
    if isinstance(v, (list, tuple)):
        return [norm(x) for x in v]
    if isinstance(v, dict):
        return {k: norm(x) for k, x in v.items()}
    if isinstance(v, (bytearray, memoryview)):
        return bytes(v)
    if isinstance(v, Tag):
        return Tag(v.tag, norm(v.value))
    return v


def cbor2_canonical(v):
    buf = io.BytesIO()
    cbor2_pure.CBOREncoder(buf, canonical=True).encode(to_cbor2(v, cbor2_pure_types.CBORTag))
    return buf.getvalue()


def head(major, n):
    b = cbor2.dumps(n)  # cbor2's preferred head for an unsigned int, re-typed
    return bytes([b[0] | major << 5]) + b[1:]


def reference(v):
    """RFC 8949 deterministic encoding built from cbor2's encodings; only the key sort is ours."""
    if isinstance(v, (list, tuple)):
        return head(4, len(v)) + b"".join(reference(x) for x in v)
    if isinstance(v, dict):
        pairs = sorted((reference(k), reference(x)) for k, x in v.items())
        return head(5, len(v)) + b"".join(k + x for k, x in pairs)
    if isinstance(v, Tag):
        return head(6, v.tag) + reference(v.value)
    return cbor2_canonical(v)


def orders_disagree(v):
    """True if some map in v sorts differently length-first (RFC 7049) and bytewise (RFC 8949)."""
    if isinstance(v, (list, tuple)):
        return any(orders_disagree(x) for x in v)
    if isinstance(v, Tag):
        return orders_disagree(v.value)
    if isinstance(v, dict):
        keys = [dumps(k) for k in v]
        if sorted(keys) != sorted(keys, key=lambda k: (len(k), k)):
            return True
        return any(orders_disagree(x) for x in v.values())
    return False


EDGES = [0, 23, 24, 255, 256, 65535, 65536, 2**32 - 1, 2**32, 2**64 - 1]
ALPHABET = "abcxyz09 \"\\\x00\x7f\u00fc\u00e9\u6c34\u20ac\U0001f600\U00010151"


def gen_float(r):
    pick = r.randrange(7)
    if pick == 0:
        return struct.unpack(">d", r.getrandbits(64).to_bytes(8, "big"))[0]  # any double, NaNs too
    if pick == 1:
        return struct.unpack(">e", r.getrandbits(16).to_bytes(2, "big"))[0]
    if pick == 2:
        return struct.unpack(">f", r.getrandbits(32).to_bytes(4, "big"))[0]
    if pick == 3:
        return r.choice([0.0, -0.0, float("inf"), float("-inf"), float("nan"), 65504.0, 65520.0,
                         2.0**-24, 2.0**-25, 2.0**-149, 2.0**-1074, 1.1, 1e300])
    if pick == 4:
        return float(r.randint(-70000, 70000))
    if pick == 5:
        return round(r.uniform(-1000, 1000), r.randrange(4))
    return r.randint(1, 2047) * 2.0 ** r.randint(-40, 20)


def gen_int(r):
    pick = r.randrange(4)
    if pick == 0:
        return r.randint(-30, 30)
    if pick == 1:
        e = r.choice(EDGES) + r.randint(-1, 1)
        return min(max(e if r.random() < 0.5 else -1 - e, -(2**64)), 2**64 - 1)
    if pick == 2:
        return r.randint(-(2**64), 2**64 - 1)
    return r.getrandbits(r.randint(1, 64)) * r.choice([1, -1])


def gen_key(r):
    pick = r.randrange(5)
    if pick < 2:
        return gen_int(r) if pick else r.randint(-30, 300)
    if pick == 2:
        return "".join(r.choice(ALPHABET) for _ in range(r.randrange(5)))
    if pick == 3:
        return r.randbytes(r.randrange(4))
    return r.choice([True, False])


def gen(r, depth=0):
    kinds = ["int", "float", "str", "bytes", "bool", "none"]
    if depth < 4:
        kinds += ["list", "dict", "dict", "tag"]
    k = r.choice(kinds)
    if k == "int":
        return gen_int(r)
    if k == "float":
        return gen_float(r)
    if k == "str":
        n = r.choice([r.randrange(8), r.randrange(20, 40), 300])
        return "".join(r.choice(ALPHABET) for _ in range(n))
    if k == "bytes":
        b = r.randbytes(r.choice([r.randrange(8), r.randrange(20, 40), 300]))
        return bytearray(b) if r.random() < 0.1 else b
    if k == "bool":
        return r.random() < 0.5
    if k == "none":
        return None
    if k == "list":
        items = [gen(r, depth + 1) for _ in range(r.choice([r.randrange(5), r.randrange(22, 27)]))]
        return tuple(items) if r.random() < 0.1 else items
    if k == "dict":
        return {gen_key(r): gen(r, depth + 1) for _ in range(r.randrange(8))}
    return Tag(18, gen(r, depth + 1))


def test_vectors_agree_with_cbor2():
    for v in VECTORS["roundtrip"] + VECTORS["decode_only"] + VECTORS["noncanonical"]:
        got = from_cbor2(cbor2.loads(bytes.fromhex(v["hex"])))
        assert same(got, value_of(v["value"])), v["diag"]
    for v in VECTORS["roundtrip"]:
        assert cbor2_canonical(value_of(v["value"])).hex() == v["hex"], v["diag"]
    checked = 0
    for v in VECTORS["negative"]:
        if v["kind"] == "refused" or v["hex"] in CBOR2_LENIENT:
            continue
        with pytest.raises(cbor2.CBORDecodeError):
            cbor2.loads(bytes.fromhex(v["hex"]))
        checked += 1
    assert checked >= 20


def test_random_values_match_cbor2():
    r = random.Random(8949)
    disagreeing = agreeing = 0
    for _ in range(3000):
        v = gen(r)
        raw = dumps(v)
        assert raw == reference(v), repr(v)
        if orders_disagree(v):
            disagreeing += 1
            assert same(from_cbor2(cbor2.loads(raw)), from_cbor2(cbor2.loads(cbor2_canonical(v))))
        else:
            agreeing += 1
            assert raw == cbor2_canonical(v), repr(v)
        want = norm(v)
        assert same(from_cbor2(cbor2.loads(raw)), want)  # cbor2 reads what we write
        assert same(loads(raw, max_items=400, canonical=True), want)
        assert same(loads(cbor2.dumps(to_cbor2(v)), max_items=400), want)  # we read what cbor2 writes
        assert same(loads(cbor2.dumps(to_cbor2(v), canonical=True), max_items=400), want)
    print("orders disagree", disagreeing, "agree", agreeing)
    assert disagreeing >= 100 and agreeing >= 1000, (disagreeing, agreeing)


def test_every_half_agrees_with_struct_e():
    for h in range(0x10000):
        raw = h.to_bytes(2, "big")
        assert same(loads(b"\xf9" + raw), struct.unpack(">e", raw)[0]), raw.hex()


def exact_in(fmt, x):
    try:
        return struct.unpack(fmt, struct.pack(fmt, x))[0] == x
    except OverflowError:
        return False


def test_float_width_is_the_shortest_exact_one():
    r = random.Random(754)
    for _ in range(20000):
        x = gen_float(r)
        if x != x:
            continue
        width = 2 if exact_in(">e", x) else 4 if exact_in(">f", x) else 8
        assert len(dumps(x)) == 1 + width, x


def mutate(r, b):
    b = bytearray(b)
    for _ in range(r.randint(1, 3)):
        op = r.randrange(7)
        i = r.randrange(len(b) + 1)
        if op == 0 and b:
            b[i % len(b)] ^= 1 << r.randrange(8)
        elif op == 1 and b:
            b[i % len(b)] = r.randrange(256)
        elif op == 2:
            del b[i:]
        elif op == 3:
            b[i:i] = bytes([r.randrange(256)])
        elif op == 4 and b:
            del b[i % len(b)]
        elif op == 5:
            j = r.randrange(len(b) + 1)
            b[i:i] = b[min(i, j):max(i, j)]
        else:
            b[:0] = r.choice([b"\x81", b"\xa1\x00", b"\xd2", b"\x9a\xff\xff\xff\xff", b"\x5b" + b"\xff" * 8])
    return bytes(b)


def test_fuzz_only_decode_error_escapes():
    r = random.Random(20000)
    pool = [dumps(gen(r)) for _ in range(400)]
    accepted = canonical_accepted = 0
    for i in range(20000):
        if i % 10 == 0:
            data = r.randbytes(r.randrange(24))
        else:
            data = mutate(r, r.choice(pool))
        for canonical in (False, True):
            try:
                v = loads(data, canonical=canonical)
            except DecodeError:
                continue
            except Exception as e:  # anything else is a bug: show the input
                raise AssertionError("%s from %s (canonical=%s)" % (type(e).__name__, data.hex(), canonical))
            if canonical:
                canonical_accepted += 1
                assert dumps(v) == data, data.hex()  # one value, one accepted encoding
            else:
                accepted += 1
                assert same(from_cbor2(cbor2.loads(data)), v), data.hex()  # differential with cbor2
                if dumps(v) == data:
                    assert same(loads(data, canonical=True), v), data.hex()
    print("accepted", accepted, "canonical", canonical_accepted)
    assert accepted >= 2000 and canonical_accepted >= 1000, (accepted, canonical_accepted)
