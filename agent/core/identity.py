"""Self-certifying device identity (contract).

device_id = "cm" + the first 16 characters of the lowercase, unpadded base32 (RFC 4648)
of SHA-256(SEC1 uncompressed public key). Anyone holding the public key can check it.
"""
import hashlib

from agent.errors import SignatureError

_B32 = "abcdefghijklmnopqrstuvwxyz234567"
PREFIX = "cm"
ID_CHARS = 16
ID_LEN = len(PREFIX) + ID_CHARS


def base32_lower(data):
    """RFC 4648 base32 of data, lowercase, without padding (MicroPython has no base64.b32encode)."""
    out = []
    acc = 0
    bits = 0
    for b in data:
        acc = (acc << 8) | b
        bits += 8
        while bits >= 5:
            bits -= 5
            out.append(_B32[(acc >> bits) & 31])
        acc &= (1 << bits) - 1
    if bits:
        out.append(_B32[(acc << (5 - bits)) & 31])
    return "".join(out)


def device_id(public_sec1):
    """The device_id for a 65-byte SEC1 uncompressed P-256 public key."""
    if len(public_sec1) != 65 or public_sec1[0] != 4:
        raise SignatureError("public key: expected 65-byte SEC1 uncompressed point (0x04||X||Y)")
    return PREFIX + base32_lower(hashlib.sha256(public_sec1).digest())[:ID_CHARS]


def is_device_id(s):
    """True if s has the shape of a device_id (it says nothing about which key it names)."""
    if not isinstance(s, str) or len(s) != ID_LEN or not s.startswith(PREFIX):
        return False
    for c in s[len(PREFIX):]:
        if c not in _B32:
            return False
    return True


def check_device_id(claimed, public_sec1):
    """Raise SignatureError unless claimed is the device_id of public_sec1."""
    actual = device_id(public_sec1)
    if claimed != actual:
        raise SignatureError("device_id %r does not match its public key (which gives %s)" % (claimed, actual))
