# CPython only: ES256 keys backed by `cryptography` (OpenSSL), same interface as agent.crypto.ecdsa.
"""SigningKey and VerifyingKey over `cryptography`, byte-identical to the pure backend.

Signing is deterministic (RFC 6979, `deterministic_signing=True`), so for the same key and
message this backend and agent.crypto.ecdsa produce the same 64-byte r‖s. Public keys are
parsed by agent.crypto.p256 first so both backends reject bad keys with the same message.
"""
import hashlib

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, utils

from agent.crypto import p256
from agent.errors import AgentError, SignatureError

_N = p256.N
_CURVE = ec.SECP256R1()
_SIGN = ec.ECDSA(hashes.SHA256(), deterministic_signing=True)
_SIGN_DIGEST = ec.ECDSA(utils.Prehashed(hashes.SHA256()), deterministic_signing=True)
_VERIFY_DIGEST = ec.ECDSA(utils.Prehashed(hashes.SHA256()))
_MAX_DRAWS = 64


def _raw(der):
    r, s = utils.decode_dss_signature(der)
    return r.to_bytes(32, "big") + s.to_bytes(32, "big")


class SigningKey:
    """A P-256 private key held by OpenSSL. repr() shows only the public key."""

    def __init__(self, private_key):
        # Private: use generate() or from_bytes().
        self._key = private_key
        self._pub = None

    @classmethod
    def generate(cls, rng):
        """A fresh key from rng(n) -> n random bytes, drawn exactly as the pure backend does
        (so a test rng gives the same key on both); production passes compat.urandom."""
        for _ in range(_MAX_DRAWS):
            d = int.from_bytes(rng(32), "big")
            if 1 <= d < _N:
                return cls(ec.derive_private_key(d, _CURVE))
        raise AgentError("rng gave %d out-of-range P-256 scalars in a row; is it broken?" % _MAX_DRAWS)

    @classmethod
    def from_bytes(cls, data):
        """The key whose private scalar is `data` (32 bytes, big-endian, in [1, n-1])."""
        if not isinstance(data, (bytes, bytearray)) or len(data) != 32:
            raise SignatureError("private key must be 32 bytes")
        d = int.from_bytes(data, "big")
        if not 1 <= d < _N:
            raise SignatureError("private key scalar must be in [1, n-1]")
        return cls(ec.derive_private_key(d, _CURVE))

    def to_bytes(self):
        """The private scalar as 32 bytes, big-endian. Handle with care."""
        return self._key.private_numbers().private_value.to_bytes(32, "big")

    def public_key(self):
        if self._pub is None:
            self._pub = VerifyingKey(self._key.public_key())
        return self._pub

    def sign(self, message):
        """64-byte r‖s over SHA-256(message), deterministic (RFC 6979)."""
        return _raw(self._key.sign(bytes(message), _SIGN))

    def sign_digest(self, digest):
        """64-byte r‖s over a 32-byte SHA-256 digest, deterministic (RFC 6979)."""
        if len(digest) != 32:
            raise SignatureError("digest must be 32 bytes (SHA-256), got %d" % len(digest))
        return _raw(self._key.sign(bytes(digest), _SIGN_DIGEST))

    def __repr__(self):
        return "SigningKey(P-256, public=%s…)" % self.public_key().to_sec1()[1:9].hex()


class VerifyingKey:
    """A P-256 public key held by OpenSSL."""

    def __init__(self, public_key):
        # Private: use from_sec1().
        self._key = public_key

    @classmethod
    def from_sec1(cls, data):
        """From 65 bytes 0x04‖X‖Y; SignatureError naming what is wrong otherwise."""
        p256.decode_sec1(data)  # same checks and messages as the pure backend
        return cls(ec.EllipticCurvePublicKey.from_encoded_point(_CURVE, bytes(data)))

    def to_sec1(self):
        """65 bytes 0x04‖X‖Y (SEC1 uncompressed)."""
        nums = self._key.public_numbers()
        return p256.encode_sec1(nums.x, nums.y)

    def verify(self, signature, message):
        """Return None if `signature` (64 bytes r‖s) is valid over SHA-256(message); raise
        SignatureError saying why otherwise. Never returns False."""
        self.verify_digest(signature, hashlib.sha256(message).digest())

    def verify_digest(self, signature, digest):
        r, s = p256.decode_signature(signature, digest)
        try:
            self._key.verify(utils.encode_dss_signature(r, s), bytes(digest), _VERIFY_DIGEST)
        except InvalidSignature:
            raise SignatureError("signature does not match the message and public key") from None

    def __eq__(self, other):
        to_sec1 = getattr(other, "to_sec1", None)
        return to_sec1 is not None and self.to_sec1() == to_sec1()

    def __repr__(self):
        return "VerifyingKey(P-256, %s)" % self.to_sec1().hex()
