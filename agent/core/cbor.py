"""Deterministic CBOR (RFC 8949 §4.2.1) for the values the agent signs, stores and sends.

    dumps(obj) -> bytes
        Core Deterministic Encoding: preferred serialisation (shortest head argument; floats in
        the shortest of half/single/double that holds the value exactly; NaN as f97e00), definite
        lengths only, map keys sorted by the bytewise order of their encodings. The output never
        depends on dict insertion order. Types: None, bool, int in [-2**64, 2**64-1] (no bignum
        tags), float, str, bytes/bytearray/memoryview (-> byte string), list/tuple (-> array),
        dict (keys: int, bool, str or bytes), Tag. Anything else raises EncodeError.

    loads(data, max_depth=16, max_items=1024, max_size=65536, tags=(18,), canonical=False)
        Strict decoder: maps -> dict, arrays -> list, byte strings -> bytes, allowed tags -> Tag.
        (On single-precision MicroPython builds, e.g. ESP32, doubles decode rounded to single.)
        Every malformed or over-limit input raises agent.errors.DecodeError naming what is wrong
        and the byte offset; nothing else escapes (no IndexError, UnicodeError, RecursionError).
        Always refused: indefinite lengths, reserved additional info 28-30, a stray break,
        simple values other than false/true/null, tags outside `tags`, invalid UTF-8 (RFC 3629,
        checked by hand because MicroPython's decoder is lax), map keys that are not
        int/bool/str/bytes, duplicate keys (including 1 and true, equal in Python), trailing bytes.
        canonical=True also refuses anything dumps would not have produced: non-shortest heads,
        non-shortest floats (and NaN other than f97e00), keys out of bytewise order. Verifiers of
        signed payloads should use it, so one value has exactly one accepted encoding.
"""
import struct

from agent.core.cbor_scalars import half_to_float, shortest_double_bits, shortest_float, utf8_ok
from agent.errors import AgentError, DecodeError

_UINT64_MAX = 0xFFFFFFFFFFFFFFFF
_MAX_ENCODE_DEPTH = 64  # deeper than any message of ours; stops cycles before the runtime does


class EncodeError(AgentError):
    """The caller handed dumps a value it cannot encode (type, int range, key, nesting)."""


class Tag:
    """A CBOR tag: `tag` (int, 0..2**64-1) applied to `value` (e.g. Tag(18, [...]) is COSE_Sign1)."""

    def __init__(self, tag, value):
        if type(tag) is not int or tag < 0 or tag > _UINT64_MAX:
            raise EncodeError("Tag number must be an int in 0..2**64-1, got %r" % (tag,))
        self.tag = tag
        self.value = value

    def __eq__(self, other):
        return isinstance(other, Tag) and self.tag == other.tag and self.value == other.value

    def __hash__(self):
        return hash((self.tag, self.value))

    def __repr__(self):
        return "Tag(%d, %r)" % (self.tag, self.value)


# ---------------------------------------------------------------- encoding

def dumps(obj):
    """Encode obj deterministically (see the module docstring); raise EncodeError if impossible."""
    out = bytearray()  # one growing buffer, not a list of small pieces: a board's heap is small
    _encode(obj, out, 0)
    return bytes(out)


def _head(out, major, n):
    mt = major << 5
    if n < 24:
        out.append(mt | n)
    elif n < 0x100:
        out.append(mt | 24)
        out.append(n)
    elif n < 0x10000:
        out += struct.pack(">BH", mt | 25, n)
    elif n < 0x100000000:
        out += struct.pack(">BI", mt | 26, n)
    else:
        out += struct.pack(">BQ", mt | 27, n)


def _text(s):
    try:
        b = s.encode("utf-8")
    except UnicodeError:
        b = None
    if b is None or (len(b) != len(s) and not utf8_ok(b)):
        raise EncodeError("str %r is not valid Unicode text (lone surrogate?)" % (s,))
    return b


def _encode(obj, out, depth):
    if obj is None:
        out.append(0xF6)
    elif obj is True:
        out.append(0xF5)
    elif obj is False:
        out.append(0xF4)
    elif isinstance(obj, int):
        if obj >= 0:
            if obj > _UINT64_MAX:
                raise EncodeError("int %d is above 2**64-1 (bignums are not supported)" % obj)
            _head(out, 0, obj)
        else:
            if obj < -_UINT64_MAX - 1:
                raise EncodeError("int %d is below -2**64 (bignums are not supported)" % obj)
            _head(out, 1, -1 - obj)
    elif isinstance(obj, float):
        out += shortest_float(obj)
    elif isinstance(obj, str):
        b = _text(obj)
        _head(out, 3, len(b))
        out += b
    elif isinstance(obj, (bytes, bytearray, memoryview)):
        _head(out, 2, len(obj))
        out += obj
    elif depth >= _MAX_ENCODE_DEPTH:
        raise EncodeError("nesting deeper than %d (a cycle?)" % _MAX_ENCODE_DEPTH)
    elif isinstance(obj, (list, tuple)):
        _head(out, 4, len(obj))
        for item in obj:
            _encode(item, out, depth + 1)
    elif isinstance(obj, dict):
        pairs = []
        for k, v in obj.items():
            if not isinstance(k, (bool, int, str, bytes)):
                raise EncodeError("map key %r has type %s; keys must be int, bool, str or bytes"
                                  % (k, type(k).__name__))
            kb = bytearray()
            _encode(k, kb, depth + 1)
            vb = bytearray()
            _encode(v, vb, depth + 1)
            pairs.append((bytes(kb), vb))
        pairs.sort(key=lambda p: p[0])
        _head(out, 5, len(pairs))
        prev = None
        for kb, vb in pairs:
            if kb == prev:
                raise EncodeError("duplicate map key after encoding: %r" % (loads(kb),))
            prev = kb
            out += kb
            out += vb
    elif isinstance(obj, Tag):
        _head(out, 6, obj.tag)
        _encode(obj.value, out, depth + 1)
    else:
        raise EncodeError("cannot encode a value of type %s" % type(obj).__name__)


# ---------------------------------------------------------------- decoding

def loads(data, max_depth=16, max_items=1024, max_size=65536, tags=(18,), canonical=False):
    """Decode one CBOR item that fills all of data (bytes, bytearray or memoryview).

    max_depth: nested arrays/maps/tags allowed (the top item counts as 1); max_items: largest
    declared array or map count; max_size: largest input in bytes; tags: allowed tag numbers.
    Raises DecodeError on anything malformed or over a limit.
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise DecodeError("CBOR input must be bytes, got %s" % type(data).__name__)
    data = bytes(data)
    if len(data) > max_size:
        raise DecodeError("CBOR input of %d bytes exceeds max_size %d" % (len(data), max_size))
    dec = _Decoder(data, max_depth, max_items, tags, canonical)
    try:
        value = dec.item(0)
    except (RuntimeError, MemoryError):  # only if a caller lifted the limits past the runtime's
        raise DecodeError("CBOR input too deeply nested or too large for this runtime (near byte %d)"
                          % dec.pos)
    if dec.pos != len(data):
        dec.fail("%d trailing bytes after the item" % (len(data) - dec.pos), dec.pos)
    return value


class _Decoder:
    def __init__(self, data, max_depth, max_items, tags, canonical):
        self.data = data
        self.pos = 0
        self.max_depth = max_depth
        self.max_items = max_items
        self.tags = tags
        self.canonical = canonical

    def fail(self, what, at):
        raise DecodeError("CBOR: %s at byte %d" % (what, at))

    def take(self, n, at):
        p = self.pos
        if n > len(self.data) - p:
            self.fail("truncated: item needs %d more bytes, %d left" % (n, len(self.data) - p), at)
        self.pos = p + n
        return self.data[p:p + n]

    def count(self, n, per_item, at):
        if n > self.max_items:
            self.fail("count %d exceeds max_items %d" % (n, self.max_items), at)
        if n * per_item > len(self.data) - self.pos:
            self.fail("truncated: %d items declared, %d bytes left" % (n, len(self.data) - self.pos), at)

    def item(self, depth):
        start = self.pos
        if start >= len(self.data):
            self.fail("truncated: an item is missing", start)
        ib = self.data[start]
        self.pos = start + 1
        major = ib >> 5
        ai = ib & 31
        if major == 7:
            return self.simple(ai, start)
        if ai < 24:
            n = ai
        elif ai < 28:
            size = 1 << (ai - 24)
            n = int.from_bytes(self.take(size, start), "big")
            if self.canonical and n < (24 if size == 1 else 1 << (4 * size)):
                self.fail("non-shortest head argument %d" % n, start)
        elif ai == 31 and 2 <= major <= 5:
            self.fail("indefinite length refused", start)
        else:
            self.fail("additional info %d not allowed in major type %d" % (ai, major), start)
        if major == 0:
            return n
        if major == 1:
            return -1 - n
        if major == 2:
            return self.take(n, start)
        if major == 3:
            raw = self.take(n, start)
            try:
                s = raw.decode("utf-8")
            except UnicodeError:
                s = None
            if s is None or (len(s) != n and not utf8_ok(raw)):
                self.fail("invalid UTF-8 in text string", start)
            return s
        if depth >= self.max_depth:
            self.fail("nesting deeper than max_depth %d" % self.max_depth, start)
        if major == 4:
            self.count(n, 1, start)
            return [self.item(depth + 1) for _ in range(n)]
        if major == 5:
            return self.map(n, depth, start)
        if n not in self.tags:
            self.fail("tag %d not allowed" % n, start)
        return Tag(n, self.item(depth + 1))

    def map(self, n, depth, start):
        self.count(n, 2, start)
        d = {}
        prev = None
        for _ in range(n):
            at = self.pos
            k = self.item(depth + 1)
            if not isinstance(k, (bool, int, str, bytes)):
                self.fail("map key of type %s not allowed" % type(k).__name__, at)
            if self.canonical:
                kb = self.data[at:self.pos]
                if prev is not None and kb < prev:
                    self.fail("map keys not in bytewise order", at)
                prev = kb
            if k in d:
                self.fail("duplicate map key %r" % (k,), at)
            d[k] = self.item(depth + 1)
        return d

    def simple(self, ai, start):
        if 20 <= ai <= 22:
            return (False, True, None)[ai - 20]
        if ai == 25:
            v = half_to_float(int.from_bytes(self.take(2, start), "big"))
        elif ai == 26:
            v = struct.unpack(">f", self.take(4, start))[0]
        elif ai == 27:
            raw = self.take(8, start)
            v = struct.unpack(">d", raw)[0]
        elif ai == 31:
            self.fail("break outside an indefinite-length item", start)
        elif ai > 27:
            self.fail("reserved additional info %d" % ai, start)
        else:
            self.fail("unsupported simple value (initial byte 0x%02x)" % (0xE0 | ai), start)
        # Doubles are checked on their bits: an ESP32 build rounds them to single on decode.
        if self.canonical and (shortest_double_bits(raw) if ai == 27 else shortest_float(v)) != self.data[start:self.pos]:
            self.fail("float not in its shortest form", start)
        return v
