"""The COSE_Sign1 envelope as the city accepts it: one byte string per message (CPython only).

docs/wire-format.md fixes every byte around the payload, so the envelope is read by position,
not by a general CBOR decoder:

    D2 84                      tag 18, array of 4
    43 A1 01 26                protected header, exactly h'A10126' ({1: -7}, ES256)
    A1 04 52 <18 bytes>        unprotected header, exactly {4: kid}, kid = device_id (18 bytes)
    <bstr head> <payload>      shortest head: 40+n, 58 n or 59 nnnn
    58 40 <64 bytes>           signature r||s
    (nothing after)

`open_envelope(message)` returns (kid text, payload, to_be_signed, signature) or raises
EnvelopeError naming the first byte that differs. to_be_signed is the Sig_structure
["Signature1", h'A10126', h'', payload] (RFC 9052 §4.4), built from the same bytes.
"""
MAX_MESSAGE = 16384  # bytes: also the broker's message_size_limit (city/broker_config.py)
_HEAD = b"\xd2\x84\x43\xa1\x01\x26\xa1\x04\x52"
_SIG_HEAD = b"\x58\x40"
_TBS_PREFIX = b"\x84\x6aSignature1\x43\xa1\x01\x26\x40"
_KID_LEN = 18
_ALPHABET = frozenset(b"abcdefghijklmnopqrstuvwxyz234567")


class EnvelopeError(ValueError):
    """Not the one accepted COSE_Sign1 envelope; str(e) says what differs."""


def open_envelope(message):
    m = bytes(message)
    if len(m) > MAX_MESSAGE:
        raise EnvelopeError("COSE_Sign1: message of %d bytes exceeds %d" % (len(m), MAX_MESSAGE))
    if not m.startswith(_HEAD):
        raise EnvelopeError(_head_fault(m))
    kid = m[9:9 + _KID_LEN]
    if len(kid) != _KID_LEN or kid[:2] != b"cm" or not _ALPHABET.issuperset(kid[2:]):
        raise EnvelopeError("COSE_Sign1: kid is not a device_id (cm + 16 base32 characters)")
    p = 9 + _KID_LEN
    if p >= len(m):
        raise EnvelopeError("COSE_Sign1: truncated before the payload")
    ib = m[p]
    if 0x40 <= ib < 0x58:
        n, body = ib - 0x40, p + 1
    elif ib == 0x58 and p + 1 < len(m) and m[p + 1] >= 24:
        n, body = m[p + 1], p + 2
    elif ib == 0x59 and p + 2 < len(m) and (m[p + 1] << 8 | m[p + 2]) >= 0x100:
        n, body = m[p + 1] << 8 | m[p + 2], p + 3
    else:
        raise EnvelopeError("COSE_Sign1: payload must be a byte string with the shortest length head "
                            "(found 0x%02x at byte %d)" % (ib, p))
    end = body + n
    if m[end:end + 2] != _SIG_HEAD:
        raise EnvelopeError("COSE_Sign1: expected a 64-byte signature (58 40) after the %d-byte payload" % n)
    if len(m) != end + 66:
        raise EnvelopeError("COSE_Sign1: %d bytes after the payload, expected exactly the 66 of the signature"
                            % (len(m) - end))
    return kid.decode(), m[body:end], _TBS_PREFIX + m[p:end], m[end + 2:]


def _head_fault(m):
    for i, (what, want) in enumerate((("CBOR tag 18 (d2)", 0xD2), ("an array of 4 (84)", 0x84))):
        if len(m) <= i or m[i] != want:
            return "COSE_Sign1: expected %s at byte %d" % (what, i)
    if m[2:6] != b"\x43\xa1\x01\x26":
        return "COSE_Sign1: protected header must be exactly h'A10126' ({1: -7}, ES256)"
    if m[6:8] != b"\xa1\x04":
        return "COSE_Sign1: unprotected header must be exactly {4: kid}"
    return "COSE_Sign1: kid must be an 18-byte byte string (a device_id)"
