# Portable tests for agent/core/cbor.py (CPython under pytest, and MicroPython via tests/mpy_port.py).
import struct

from agent.core.cbor import EncodeError, Tag, dumps, loads
from agent.errors import AgentError, DecodeError
from support import load_vectors, raises, tohex, unhex

VECTORS = load_vectors("cbor_rfc8949.json")


def value_of(j):
    """Typed JSON of the vector file -> Python value (see the file's header)."""
    if isinstance(j, list):
        return [value_of(x) for x in j]
    if isinstance(j, dict):
        (kind, arg), = j.items()
        if kind == "bytes":
            return unhex(arg)
        if kind == "float":
            return struct.unpack(">d", unhex(arg))[0]
        if kind == "map":
            return dict((value_of(k), value_of(v)) for k, v in arg)
        if kind == "tag":
            return Tag(arg[0], value_of(arg[1]))
        if kind == "codepoints":
            return "".join(chr(c) for c in arg)
        raise ValueError("unknown vector notation %r" % kind)
    return j


def same(a, b):
    """Deep equality that also tells 1, 1.0 and True apart, -0.0 from 0.0, and equates NaNs."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return (a != a and b != b) or struct.pack(">d", a) == struct.pack(">d", b)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        if len(a) != len(b):
            return False
        for k in a:
            if k not in b or type(k) is not type([kb for kb in b if kb == k][0]) or not same(a[k], b[k]):
                return False
        return True
    if isinstance(a, Tag):
        return a.tag == b.tag and same(a.value, b.value)
    return a == b


def test_rfc8949_appendix_a_encodes_exactly():
    for v in VECTORS["roundtrip"]:
        got = tohex(dumps(value_of(v["value"])))
        assert got == v["hex"], "%s: %s != %s" % (v["diag"], got, v["hex"])


def test_rfc8949_appendix_a_decodes_in_both_modes():
    for v in VECTORS["roundtrip"]:
        want = value_of(v["value"])
        for canonical in (False, True):
            got = loads(unhex(v["hex"]), canonical=canonical)
            assert same(got, want), "%s: %r" % (v["diag"], got)


def test_non_preferred_encodings_decode_but_canonical_refuses():
    for v in VECTORS["decode_only"] + VECTORS["noncanonical"]:
        raw = unhex(v["hex"])
        want = value_of(v["value"])
        assert same(loads(raw), want), v["diag"]
        assert dumps(want) != raw, v["diag"]
        e = raises(DecodeError, loads, raw, canonical=True)
        assert "at byte" in str(e), v["diag"]


def test_negative_vectors_raise_decode_error_only():
    kinds = {}
    for v in VECTORS["negative"]:
        for canonical in (False, True):
            e = raises(DecodeError, loads, unhex(v["hex"]), canonical=canonical)
            assert "at byte" in str(e), "%s: %s" % (v["diag"], e)
        kinds[v["kind"]] = kinds.get(v["kind"], 0) + 1
    assert kinds["malformed"] >= 15 and kinds["invalid"] >= 6 and kinds["refused"] >= 20


def test_error_names_the_offset():
    assert "at byte 2" in str(raises(DecodeError, loads, unhex("82011c")))
    assert "at byte 3" in str(raises(DecodeError, loads, unhex("83010263eda080")))
    assert "trailing" in str(raises(DecodeError, loads, unhex("0000")))
    assert "bytes" in str(raises(DecodeError, loads, "a0"))  # a str is not CBOR input


def test_keys_sorted_by_encoded_bytes_not_insertion_order():
    keys = [10, -1, "a", 100, b"z", False, 24, "aa"]
    # bytewise: 0a, 1818 (24), 1864 (100), 20 (-1), 417a, 6161, 626161, f4. RFC 7049's
    # length-first order would put -1 before 24; RFC 8949 section 4.2.1 does not.
    want = "a8" "0a00" "181801" "186402" "2003" "417a04" "616105" "62616106" "f407"
    orders = [keys, keys[::-1], keys[3:] + keys[:3], [keys[i] for i in (5, 2, 7, 0, 6, 1, 4, 3)]]
    for order in orders:
        d = {}
        for k in order:
            d[k] = [10, 24, 100, -1, b"z", "a", "aa", False].index(k)
        assert tohex(dumps(d)) == want, order


def test_big_map_is_independent_of_insertion_order():
    keys = ["k%d" % i for i in range(60)] + list(range(-30, 300, 7)) + [b"\x00" * i for i in range(5)]
    outputs = set()
    seed = 12345
    for _ in range(5):
        order = list(keys)
        for i in range(len(order) - 1, 0, -1):  # Fisher-Yates with a tiny LCG: no random module needed
            seed = (seed * 1103515245 + 12345) & 0x7FFFFFFF
            j = seed % (i + 1)
            order[i], order[j] = order[j], order[i]
        d = {}
        for k in order:
            d[k] = str(k)
        outputs.add(dumps(d))
    assert len(outputs) == 1
    assert same(loads(outputs.pop(), canonical=True), dict((k, str(k)) for k in keys))


def test_floats_take_the_shortest_exact_width():
    cases = [
        (0.5, "f93800"), (2.0 ** -24, "f90001"), (3 * 2.0 ** -24, "f90003"),
        (2.0 ** -14 * (1 + 2.0 ** -10), "f90401"), (2.0 ** -25, "fa33000000"),
        (2.0 ** -149, "fa00000001"), (2.0 ** -150, "fb3690000000000000"), (65520.0, "fa477ff000"),
        (1 + 2.0 ** -10, "f93c01"), (1 + 2.0 ** -11, "fa3f801000"), (1 + 2.0 ** -23, "fa3f800001"),
        (1 + 2.0 ** -24, "fb3ff0000010000000"), (2.0 ** 127 * (2 - 2.0 ** -23), "fa7f7fffff"),
        (2.0 ** 128, "fb47f0000000000000"), (0.1, "fb3fb999999999999a"), (-2.0 ** -24, "f98001"),
        (5 * 2.0 ** -1074, "fb0000000000000005"), (-float("nan"), "f97e00"),
    ]
    for x, want in cases:
        assert tohex(dumps(x)) == want, "%r -> %s, want %s" % (x, tohex(dumps(x)), want)
        assert same(loads(unhex(want), canonical=True), x), want


def test_every_half_pattern_round_trips():
    n = 0
    for h in range(0x10000):
        raw = b"\xf9" + bytes((h >> 8, h & 0xFF))
        v = loads(raw)
        if v != v:
            assert dumps(v) == b"\xf9\x7e\x00"
            continue
        assert dumps(v) == raw, tohex(raw)
        n += 1
    assert n == 0x10000 - 2 * 1023  # every pattern but the 2046 NaNs


def test_ints_at_the_edges():
    cases = ((23, "17"), (24, "1818"), (255, "18ff"), (256, "190100"), (65535, "19ffff"),
             (65536, "1a00010000"), (2 ** 32 - 1, "1affffffff"), (2 ** 32, "1b0000000100000000"),
             (-24, "37"), (-25, "3818"), (-2 ** 32, "3affffffff"), (-2 ** 32 - 1, "3b0000000100000000"))
    for n, want in cases:
        assert tohex(dumps(n)) == want, n
        assert same(loads(unhex(want), canonical=True), n)


def test_encode_errors_name_the_problem():
    assert issubclass(EncodeError, AgentError)
    assert "2**64" in str(raises(EncodeError, dumps, 2 ** 64))
    assert "2**64" in str(raises(EncodeError, dumps, [-(2 ** 64) - 1]))
    assert "set" in str(raises(EncodeError, dumps, {"a": set([1])}))
    assert "object" in str(raises(EncodeError, dumps, object()))
    assert "float" in str(raises(EncodeError, dumps, {1.5: 1}))
    assert "tuple" in str(raises(EncodeError, dumps, {(1,): 1}))
    raises(EncodeError, dumps, "\ud800")  # lone surrogate: not UTF-8 encodable text
    cycle = []
    cycle.append(cycle)
    assert "cycle" in str(raises(EncodeError, dumps, cycle))
    raises(EncodeError, Tag, -1, 0)
    raises(EncodeError, Tag, True, 0)


class _TwoOnes(dict):
    def items(self):
        return [(1, "a"), (1, "b")]


def test_duplicate_keys_after_encoding_are_refused():
    assert "duplicate" in str(raises(EncodeError, dumps, _TwoOnes()))


def test_bytes_like_and_tuples():
    assert dumps(bytearray(b"ab")) == dumps(memoryview(b"ab")) == dumps(b"ab") == b"\x42ab"
    assert dumps((1, (2,))) == dumps([1, [2]])
    assert same(loads(dumps((1, (2,)))), [1, [2]])
    assert same(loads(bytearray(b"\x42ab")), b"ab")
    assert same(loads(memoryview(b"\x42ab")), b"ab")
    assert tohex(dumps({True: 1, 2: 2})) == "a20202f501"


def test_depth_limit():
    assert "max_depth" in str(raises(DecodeError, loads, b"\x81" * 1000 + b"\x00"))
    nested = 0
    for _ in range(16):
        nested = [nested]
    assert same(loads(b"\x81" * 16 + b"\x00"), nested) and dumps(nested) == b"\x81" * 16 + b"\x00"
    raises(DecodeError, loads, b"\x81" * 17 + b"\x00")
    assert loads(b"\x81" * 17 + b"\x00", max_depth=17) is not None
    raises(DecodeError, loads, b"\xa1\x00" * 17 + b"\x00")
    raises(DecodeError, loads, b"\xd2" * 17 + b"\x00")  # tags nest too
    # A caller who lifts max_depth past the runtime's recursion limit still gets DecodeError.
    assert "nested" in str(raises(DecodeError, loads, b"\x81" * 20000 + b"\x00", max_depth=10 ** 6))


def test_count_and_size_limits():
    raises(DecodeError, loads, b"\x99\x04\x01" + b"\x00" * 1025)
    assert loads(b"\x99\x04\x01" + b"\x00" * 1025, max_items=1025) == [0] * 1025
    assert "max_size" in str(raises(DecodeError, loads, b"\x5a\x00\x01\x00\x00" + b"\x00" * 65536))
    assert len(loads(b"\x5a\x00\x01\x00\x00" + b"\x00" * 65536, max_size=70000)) == 65536
    e = raises(DecodeError, loads, b"\x5b\x00\x00\x00\x01\x00\x00\x00\x00ab")  # 2**32 bytes declared
    assert "truncated" in str(e)
    e = raises(DecodeError, loads, b"\x9a\xff\xff\xff\xff\x00", max_items=2 ** 40)
    assert "truncated" in str(e)


def test_tag_18_round_trip_and_allow_list():
    sign1 = Tag(18, [unhex("a10126"), {4: b"cmabcdefghijklmnop"}, dumps({"v": 1, "seq": 7}), b"\x01" * 64])
    raw = dumps(sign1)
    assert raw[:2] == b"\xd2\x84"
    back = loads(raw)
    assert isinstance(back, Tag) and back == sign1 and same(back, sign1)
    assert loads(back.value[2]) == {"v": 1, "seq": 7}
    assert "tag 18" in str(raises(DecodeError, loads, raw, tags=()))
    assert "tag 1 " in str(raises(DecodeError, loads, unhex("c11a514b67b0")))
    assert loads(unhex("c11a514b67b0"), tags=(1, 18)) == Tag(1, 1363896240)
    assert Tag(18, 1) != Tag(19, 1) and Tag(18, 1) != 1


def test_canonical_accepts_what_dumps_makes():
    values = [
        {"v": 1, "dev": "cmabcdefghijklmnop", "seq": 4294967296, "t0": 1700000000, "t1": 1700000060,
         "m": {"pm25": {"mean": 12.5, "min": 3.25, "max": 40.0, "n": 60}, "people": {"count": -3}},
         "mh": b"\x00" * 32, "drop": [1, 3]},
        [None, True, False, -0.0, 1e300, "\U0001f600", b"", {}, []],
        {b"k": {"x": [1.1, -4.1]}, 0: Tag(18, [])},
    ]
    for v in values:
        raw = dumps(v)
        assert same(loads(raw, canonical=True), v)
        assert dumps(loads(raw)) == raw
