"""ES256 recipes in pure Python (portable): ECDSA over P-256 with SHA-256 and RFC 6979 nonces.

Signatures are 64 bytes r‖s, the form COSE (RFC 9052 ES256) carries. Verification raises
SignatureError and never returns False. No low-s normalisation: COSE ES256 does not ask for
it and `cryptography` neither produces nor requires it, so both backends sign byte for byte
alike; a verifier that insists on low s would reject about half of these signatures.

Python big-int arithmetic is not constant time; the scalar multiplication does the same
sequence of point operations for every nonce, which is as far as pure Python can go.
"""
import hashlib

from agent.crypto import p256
from agent.crypto.rfc6979 import nonces
from agent.errors import AgentError, SignatureError

_N = p256.N
_MAX_DRAWS = 64  # a working rng gets a scalar out of range about once in 2^32 draws


class SigningKey:
    """A P-256 private key. The scalar stays inside; repr() shows only the public key."""

    def __init__(self, secret):
        # Private: use generate() or from_bytes(), which check the range.
        self._d = secret
        self._pub = None

    @classmethod
    def generate(cls, rng):
        """A fresh key from rng(n) -> n random bytes (compat.urandom in production).
        Draws of 0 or >= n are rejected and drawn again, so the scalar is uniform."""
        for _ in range(_MAX_DRAWS):
            d = int.from_bytes(rng(32), "big")
            if 1 <= d < _N:
                return cls(d)
        raise AgentError("rng gave %d out-of-range P-256 scalars in a row; is it broken?" % _MAX_DRAWS)

    @classmethod
    def from_bytes(cls, data):
        """The key whose private scalar is `data` (32 bytes, big-endian, in [1, n-1])."""
        if not isinstance(data, (bytes, bytearray)) or len(data) != 32:
            raise SignatureError("private key must be 32 bytes")
        d = int.from_bytes(data, "big")
        if not 1 <= d < _N:
            raise SignatureError("private key scalar must be in [1, n-1]")
        return cls(d)

    def to_bytes(self):
        """The private scalar as 32 bytes, big-endian. Handle with care."""
        return self._d.to_bytes(32, "big")

    def public_key(self):
        if self._pub is None:
            x, y = p256.to_affine(p256.mul_base(self._d))
            self._pub = VerifyingKey(x, y)
        return self._pub

    def sign(self, message):
        """64-byte r‖s over SHA-256(message), deterministic (RFC 6979)."""
        return self.sign_digest(hashlib.sha256(message).digest())

    def sign_digest(self, digest):
        """64-byte r‖s over a 32-byte SHA-256 digest, deterministic (RFC 6979)."""
        if len(digest) != 32:
            raise SignatureError("digest must be 32 bytes (SHA-256), got %d" % len(digest))
        n = _N
        d = self._d
        z = int.from_bytes(digest, "big")
        for k in nonces(d.to_bytes(32, "big"), digest, n):
            X, _, Z = p256.mul_base(k)  # k in [1, n-1], so kG is never the identity
            r = X * p256.inverse_mod(Z, p256.P) % p256.P % n
            if r == 0:
                continue
            s = p256.inverse_mod(k, n) * (z + r * d) % n
            if s != 0:
                return r.to_bytes(32, "big") + s.to_bytes(32, "big")

    def __repr__(self):
        return "SigningKey(P-256, public=%s…)" % _hex(self.public_key().to_sec1()[1:9])


class VerifyingKey:
    """A P-256 public key: an affine point checked to be on the curve."""

    def __init__(self, x, y):
        # Private: use from_sec1(), which validates the point.
        self._x = x
        self._y = y

    @classmethod
    def from_sec1(cls, data):
        """From 65 bytes 0x04‖X‖Y; SignatureError naming what is wrong otherwise."""
        x, y = p256.decode_sec1(data)
        return cls(x, y)

    def to_sec1(self):
        """65 bytes 0x04‖X‖Y (SEC1 uncompressed)."""
        return p256.encode_sec1(self._x, self._y)

    def verify(self, signature, message):
        """Return None if `signature` (64 bytes r‖s) is valid over SHA-256(message); raise
        SignatureError saying why otherwise. Never returns False."""
        self.verify_digest(signature, hashlib.sha256(message).digest())

    def verify_digest(self, signature, digest):
        n = _N
        r, s = p256.decode_signature(signature, digest)
        z = int.from_bytes(digest, "big")
        w = p256.inverse_mod(s, n)
        X, _, Z = p256.mul_double_base(z * w % n, r * w % n, (self._x, self._y, 1))
        # Compare x(R) mod n with r without an inversion: x(R) = X/Z is r or r + n (< p).
        p = p256.P
        if Z % p == 0:
            raise SignatureError("signature does not match (R is the identity)")
        if (X - r * Z) % p == 0:
            return
        if r + n < p and (X - (r + n) * Z) % p == 0:
            return
        raise SignatureError("signature does not match the message and public key")

    def __eq__(self, other):
        # Duck-typed so a pure key equals a `cryptography`-backed one for the same point.
        to_sec1 = getattr(other, "to_sec1", None)
        return to_sec1 is not None and self.to_sec1() == to_sec1()

    def __repr__(self):
        return "VerifyingKey(P-256, %s)" % _hex(self.to_sec1())


def _hex(b):
    import binascii

    return binascii.hexlify(b).decode()
