"""Deterministic ECDSA nonces (RFC 6979 section 3.2) for P-256 with SHA-256, and HMAC-SHA-256.

MicroPython ports often ship without an hmac module, so HMAC (RFC 2104) is written here over
hashlib.sha256, which both runtimes have natively.
"""
import hashlib

_BLOCK = 64  # SHA-256 block size in bytes
_IPAD = int.from_bytes(b"\x36" * _BLOCK, "big")
_OPAD = int.from_bytes(b"\x5c" * _BLOCK, "big")


def _pads(key):
    """(inner, outer) padded keys; XOR as one big-int operation, much faster on a board."""
    if len(key) > _BLOCK:
        key = hashlib.sha256(key).digest()
    k = int.from_bytes(key + bytes(_BLOCK - len(key)), "big")
    return (k ^ _IPAD).to_bytes(_BLOCK, "big"), (k ^ _OPAD).to_bytes(_BLOCK, "big")


def _mac(pads, data):
    inner = hashlib.sha256(pads[0])
    inner.update(data)
    outer = hashlib.sha256(pads[1])
    outer.update(inner.digest())
    return outer.digest()


def hmac_sha256(key, data):
    """HMAC-SHA-256(key, data) -> 32 bytes (RFC 2104)."""
    return _mac(_pads(key), data)


def nonces(secret, digest, order):
    """Yield the RFC 6979 candidate nonces k, each in [1, order - 1], for a 32-byte big-endian
    private scalar `secret` and a 32-byte message `digest` (qlen = hlen = 256 bits, so bits2int
    is a plain big-endian read). The caller takes the next candidate if r or s comes out 0."""
    h = int.from_bytes(digest, "big") % order  # bits2octets: reduce mod q once
    seed = secret + h.to_bytes(32, "big")
    v = b"\x01" * 32
    k = _pads(b"\x00" * 32)
    k = _pads(_mac(k, v + b"\x00" + seed))
    v = _mac(k, v)
    k = _pads(_mac(k, v + b"\x01" + seed))
    v = _mac(k, v)
    while True:
        v = _mac(k, v)
        cand = int.from_bytes(v, "big")
        if 1 <= cand < order:
            yield cand
        k = _pads(_mac(k, v + b"\x00"))
        v = _mac(k, v)
