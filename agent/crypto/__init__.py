"""ES256 keys: the `cryptography` backend on CPython when it imports, else pure Python.

Both backends expose the same SigningKey / VerifyingKey interface and sign byte for byte
alike (RFC 6979), so callers never need to know which one they got. On MicroPython the
CPython backend is never imported.
"""
from agent.compat import MICROPYTHON

_backend = None
if not MICROPYTHON:
    try:
        from agent.crypto import cpython_backend as _backend
    except (ImportError, TypeError):
        # No cryptography, or one older than 42 (Raspberry Pi OS Bookworm ships 38), whose
        # ECDSA has no deterministic_signing: the portable code signs byte-identically.
        _backend = None
if _backend is None:
    from agent.crypto import ecdsa as _backend

BACKEND = "cryptography" if _backend.__name__.endswith("cpython_backend") else "pure"


def signing_key_from_bytes(data):
    """SigningKey from a 32-byte big-endian private scalar in [1, n-1] (SignatureError if not)."""
    return _backend.SigningKey.from_bytes(data)


def generate_signing_key(rng):
    """A fresh SigningKey drawn from rng(n) -> n bytes (pass compat.urandom in production)."""
    return _backend.SigningKey.generate(rng)


def verifying_key_from_sec1(data):
    """VerifyingKey from 65 bytes 0x04‖X‖Y (SignatureError naming what is wrong if not)."""
    return _backend.VerifyingKey.from_sec1(data)
