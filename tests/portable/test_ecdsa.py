"""ES256 in pure Python: RFC 6979 vectors, round trips and rejections (portable suite)."""
import hashlib

from support import load_vectors, raises, unhex

from agent.crypto import p256
from agent.crypto.ecdsa import SigningKey, VerifyingKey
from agent.crypto.rfc6979 import hmac_sha256, nonces
from agent.errors import SignatureError

V = load_vectors("rfc6979_p256.json")


def _rfc_key():
    return SigningKey.from_bytes(unhex(V["private_key"]))


def _rfc_pub():
    return VerifyingKey.from_sec1(b"\x04" + unhex(V["public_key"]["x"]) + unhex(V["public_key"]["y"]))


class _CountingRng:
    """Deterministic stand-in for urandom: SHA-256 of a counter."""

    def __init__(self, seed):
        self.seed = seed
        self.n = 0

    def __call__(self, n):
        self.n += 1
        return hashlib.sha256(self.seed + str(self.n).encode()).digest()[:n]


def test_rfc6979_public_key():
    sec1 = _rfc_key().public_key().to_sec1()
    assert sec1 == b"\x04" + unhex(V["public_key"]["x"]) + unhex(V["public_key"]["y"])


def test_rfc6979_nonces_are_the_published_k():
    secret = unhex(V["private_key"])
    for vec in V["signatures"]:
        digest = hashlib.sha256(vec["message"].encode()).digest()
        k = next(nonces(secret, digest, p256.N))
        assert k == int.from_bytes(unhex(vec["k"]), "big"), vec["message"]


def test_rfc6979_signatures_are_exact():
    key = _rfc_key()
    for vec in V["signatures"]:
        msg = vec["message"].encode()
        sig = key.sign(msg)
        assert sig == unhex(vec["r"]) + unhex(vec["s"]), vec["message"]
        assert key.sign_digest(hashlib.sha256(msg).digest()) == sig
        _rfc_pub().verify(sig, msg)


def test_hmac_sha256_rfc4231():
    cases = load_vectors("hmac_sha256_rfc4231.json")["cases"]
    for case in cases:
        assert hmac_sha256(unhex(case["key"]), unhex(case["data"])) == unhex(case["mac"]), case["name"]


def test_sign_verify_round_trip_with_generated_keys():
    rng = _CountingRng(b"round trip")
    for i in range(3):
        key = SigningKey.generate(rng)
        pub = VerifyingKey.from_sec1(key.public_key().to_sec1())
        msg = b"summary " + str(i).encode() * (i * 40)
        sig = key.sign(msg)
        assert len(sig) == 64
        assert key.sign(msg) == sig  # deterministic
        assert pub.verify(sig, msg) is None
        assert SigningKey.from_bytes(key.to_bytes()).sign(msg) == sig


def test_the_low_s_twin_is_accepted():
    for vec in V["other_valid_signatures"]:
        _rfc_pub().verify(unhex(vec["signature"]), vec["message"].encode())


def test_invalid_signatures_are_rejected_with_a_reason():
    pub = _rfc_pub()
    for vec in V["invalid_signatures"]:
        e = raises(SignatureError, pub.verify, unhex(vec["signature"]), vec["message"].encode())
        if "error" in vec:
            assert vec["error"] in str(e), (vec["name"], str(e))


def test_wrong_message_is_rejected():
    pub = _rfc_pub()
    for vec in V["wrong_messages"]:
        e = raises(SignatureError, pub.verify, unhex(vec["signature"]), vec["message"].encode())
        assert "does not match" in str(e), vec["name"]


def test_wrong_key_is_rejected():
    sig = _rfc_key().sign(b"sample")
    other = SigningKey.generate(_CountingRng(b"other")).public_key()
    raises(SignatureError, other.verify, sig, b"sample")


def test_every_single_bit_flip_of_a_signature_is_rejected():
    pub = _rfc_pub()
    sig = _rfc_key().sign(b"flip")
    # A spread of positions over r and s (all 512 would be slow on a board).
    for bit in range(0, 512, 37):
        bad = bytearray(sig)
        bad[bit // 8] ^= 1 << (bit % 8)
        raises(SignatureError, pub.verify, bytes(bad), b"flip")


def test_invalid_public_keys_are_rejected_with_a_reason():
    for vec in V["invalid_public_keys"]:
        e = raises(SignatureError, VerifyingKey.from_sec1, unhex(vec["sec1"]))
        assert vec["error"] in str(e), (vec["name"], str(e))


def test_verify_rejects_non_bytes_signature():
    raises(SignatureError, _rfc_pub().verify, "not bytes", b"sample")


def test_private_key_range_is_checked():
    raises(SignatureError, SigningKey.from_bytes, b"\x00" * 32)
    raises(SignatureError, SigningKey.from_bytes, p256.N.to_bytes(32, "big"))
    raises(SignatureError, SigningKey.from_bytes, b"\x01" * 31)
    assert SigningKey.from_bytes((p256.N - 1).to_bytes(32, "big")).to_bytes() == (p256.N - 1).to_bytes(32, "big")


def test_generate_redraws_out_of_range_scalars():
    draws = [b"\x00" * 32, b"\xff" * 32, (7).to_bytes(32, "big")]
    key = SigningKey.generate(lambda n: draws.pop(0))
    assert key.to_bytes() == (7).to_bytes(32, "big")
    assert not draws


def test_repr_never_shows_the_private_scalar():
    key = _rfc_key()
    text = repr(key)
    assert V["private_key"] not in text.lower()
    assert V["private_key"][:16] not in text.lower()
    assert V["public_key"]["x"][:16] in text.lower()


def test_complete_formulas_need_no_special_cases():
    g = p256.G
    two_g = p256.mul_base(2)
    assert p256.to_affine(p256.add(g, g)) == p256.to_affine(two_g)
    assert p256.to_affine(p256.double(g)) == p256.to_affine(two_g)
    assert p256.to_affine(p256.add(g, p256.negate(g))) is None
    assert p256.to_affine(p256.add(g, p256.IDENTITY)) == (p256.GX, p256.GY)
    assert p256.to_affine(p256.add(p256.IDENTITY, p256.IDENTITY)) is None
    assert p256.to_affine(p256.double(p256.IDENTITY)) is None


def test_scalar_multiplication_edges():
    n = p256.N
    assert p256.to_affine(p256.mul_base(0)) is None
    assert p256.to_affine(p256.mul_base(n)) is None
    assert p256.to_affine(p256.mul_base(1)) == (p256.GX, p256.GY)
    gx, gy = p256.GX, p256.GY
    assert p256.to_affine(p256.mul_base(n - 1)) == (gx, p256.P - gy)
    k = 0x1234567890ABCDEF << 150 | 0x55
    assert p256.to_affine(p256.mul(k, p256.G)) == p256.to_affine(p256.mul_base(k))
    assert p256.to_affine(p256.mul(2, p256.G)) == p256.to_affine(p256.mul_base(2))


def test_package_picks_a_backend_and_it_matches_the_pure_one():
    import agent.crypto as crypto
    from support import MICROPYTHON

    if MICROPYTHON:
        assert crypto.BACKEND == "pure"
    key = crypto.signing_key_from_bytes(unhex(V["private_key"]))
    vec = V["signatures"][0]
    sig = key.sign(vec["message"].encode())
    assert sig == unhex(vec["r"]) + unhex(vec["s"])
    pub = crypto.verifying_key_from_sec1(key.public_key().to_sec1())
    pub.verify(sig, vec["message"].encode())
    raises(SignatureError, pub.verify, sig, b"other")
    fresh = crypto.generate_signing_key(_CountingRng(b"package"))
    assert fresh.to_bytes() == SigningKey.generate(_CountingRng(b"package")).to_bytes()
