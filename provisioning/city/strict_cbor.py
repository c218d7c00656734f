"""The city's payload decoder: deterministic CBOR restricted to what a payload may hold (CPython only).

    decode(data, max_depth=8, max_items=256) -> value, or raise PayloadError naming the fault

Accepted: unsigned and negative integers in the store's range [-2**63, 2**63-1], byte strings,
UTF-8 text, arrays, maps whose keys are text, false, true, null. Refused, whatever a generic
decoder would make of them: floats, tags, simple values other than false/true/null,
indefinite lengths, non-text map keys, and every encoding `agent.core.cbor.dumps` would not
have produced (non-shortest heads, keys out of bytewise order or repeated), so one value has
exactly one accepted byte string. Total: any input gives a value or a PayloadError, never
another exception (nesting is capped by max_depth, so recursion stays shallow).

It is the single decode of a verified payload on the city side, kept tight because it runs
once per summary next to an ECDSA verification (bench/bench_verify.py).
"""

INT_MIN = -(1 << 63)
INT_MAX = (1 << 63) - 1


class PayloadError(ValueError):
    """A payload that is not deterministic CBOR of the allowed types; str(e) says why and where."""


def decode(data, max_depth=8, max_items=256):
    data = bytes(data)
    try:
        value, pos = _item(data, 0, max_depth, max_items)
    except IndexError:
        raise PayloadError("CBOR: truncated") from None
    if pos != len(data):
        raise PayloadError("CBOR: %d trailing bytes after the item" % (len(data) - pos))
    return value


def _fail(what, at):
    raise PayloadError("CBOR: %s at byte %d" % (what, at))


def _item(data, pos, depth, max_items):
    ib = data[pos]
    major = ib >> 5
    ai = ib & 31
    start = pos
    pos += 1
    if major == 7:
        if ai == 20:
            return False, pos
        if ai == 21:
            return True, pos
        if ai == 22:
            return None, pos
        if 25 <= ai <= 27:
            _fail("floating-point number not allowed", start)
        _fail("simple value 0x%02x not allowed" % ib, start)
    if ai < 24:
        n = ai
    elif ai == 24:
        n = data[pos]
        pos += 1
        if n < 24:
            _fail("non-shortest head", start)
    elif ai == 25:
        n = (data[pos] << 8) | data[pos + 1]
        pos += 2
        if n < 0x100:
            _fail("non-shortest head", start)
    elif ai == 26:
        n = int.from_bytes(data[pos:pos + 4], "big")
        if pos + 4 > len(data):
            raise IndexError
        pos += 4
        if n < 0x10000:
            _fail("non-shortest head", start)
    elif ai == 27:
        n = int.from_bytes(data[pos:pos + 8], "big")
        if pos + 8 > len(data):
            raise IndexError
        pos += 8
        if n < 0x100000000:
            _fail("non-shortest head", start)
    elif ai == 31:
        _fail("indefinite length not allowed", start)
    else:
        _fail("reserved additional info %d" % ai, start)
    if major == 0:
        if n > INT_MAX:
            _fail("integer %d above 2**63-1" % n, start)
        return n, pos
    if major == 1:
        if n > INT_MAX:
            _fail("integer %d below -2**63" % (-1 - n), start)
        return -1 - n, pos
    if major == 2 or major == 3:
        end = pos + n
        if end > len(data):
            _fail("truncated string (%d bytes declared, %d left)" % (n, len(data) - pos), start)
        raw = data[pos:end]
        if major == 2:
            return raw, end
        try:
            return raw.decode("utf-8"), end
        except UnicodeDecodeError:
            _fail("invalid UTF-8 in text string", start)
    if major == 6:
        _fail("tag %d not allowed" % n, start)
    if depth <= 1:
        _fail("nesting deeper than allowed", start)
    if n > max_items:
        _fail("%d items exceed %d" % (n, max_items), start)
    # Containers. Small integers (one byte: -24..23) are read in line: most items of a summary
    # are, and a call per item is most of the decoder's time.
    if major == 4:
        out = []
        append = out.append
        for _ in range(n):
            ib = data[pos]
            if ib < 0x18:
                append(ib)
                pos += 1
            elif 0x20 <= ib < 0x38:
                append(0x1F - ib)
                pos += 1
            elif ib == 0x18 and pos + 1 < len(data) and data[pos + 1] >= 24:  # uint 24..255
                append(data[pos + 1])
                pos += 2
            elif ib == 0x19 and pos + 2 < len(data) and data[pos + 1]:  # uint 256..65535
                append(data[pos + 1] << 8 | data[pos + 2])
                pos += 3
            else:
                v, pos = _item(data, pos, depth - 1, max_items)
                append(v)
        return out, pos
    # major 5: a map with text keys in strictly increasing bytewise order of their encodings
    out = {}
    prev = b""
    size = len(data)
    for _ in range(n):
        kat = pos
        kb = data[pos]
        if 0x60 <= kb < 0x78:  # text of 0..23 bytes: the keys of every payload of ours
            pos = kat + 1 + kb - 0x60
            if pos > size:
                _fail("truncated map key", kat)
            enc = data[kat:pos]
            try:
                k = enc[1:].decode("utf-8")
            except UnicodeDecodeError:
                _fail("invalid UTF-8 in text string", kat)
        elif kb >> 5 == 3:
            k, pos = _item(data, pos, depth - 1, max_items)
            enc = data[kat:pos]
        else:
            _fail("map key is not text", pos)
        if enc <= prev:
            _fail("map key %r repeated or out of order" % (k,), kat)
        prev = enc
        ib = data[pos]
        if ib < 0x18:
            out[k] = ib
            pos += 1
        elif ib == 0x1A and pos + 4 < size and (data[pos + 1] or data[pos + 2]):  # uint 65536..2**32-1: times
            out[k] = int.from_bytes(data[pos + 1:pos + 5], "big")
            pos += 5
        elif 0x40 <= ib < 0x58 or 0x60 <= ib < 0x78:  # short byte or text string
            end = pos + 1 + (ib & 31)
            if end > size:
                _fail("truncated string", pos)
            if ib < 0x60:
                out[k] = data[pos + 1:end]
            else:
                try:
                    out[k] = data[pos + 1:end].decode("utf-8")
                except UnicodeDecodeError:
                    _fail("invalid UTF-8 in text string", pos)
            pos = end
        else:
            out[k], pos = _item(data, pos, depth - 1, max_items)
    return out, pos
