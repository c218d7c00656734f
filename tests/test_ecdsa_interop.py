"""The pure ES256 backend against `cryptography`: same signatures, each verifies the other's."""
import hashlib
import random

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, utils

import agent.crypto
from agent.crypto import cpython_backend, ecdsa, p256
from agent.errors import SignatureError

ROUNDS = 1000


def _cases(seed, count):
    rnd = random.Random(seed)
    for _ in range(count):
        secret = rnd.randrange(1, p256.N).to_bytes(32, "big")
        message = rnd.randbytes(rnd.randrange(0, 300))
        yield secret, message


def test_the_package_prefers_cryptography_on_cpython():
    assert agent.crypto.BACKEND == "cryptography"
    assert isinstance(agent.crypto.signing_key_from_bytes(b"\x01" * 32), cpython_backend.SigningKey)


def test_pure_and_cryptography_sign_byte_identically_and_cross_verify():
    for secret, message in _cases(6979, ROUNDS):
        pure = ecdsa.SigningKey.from_bytes(secret)
        ossl = cpython_backend.SigningKey.from_bytes(secret)
        sig = pure.sign(message)
        assert sig == ossl.sign(message)
        sec1 = pure.public_key().to_sec1()
        assert sec1 == ossl.public_key().to_sec1()
        # Pure signature verified by raw cryptography (not through our wrapper).
        raw_pub = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), sec1)
        r, s = int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big")
        raw_pub.verify(utils.encode_dss_signature(r, s), message, ec.ECDSA(hashes.SHA256()))
        # cryptography's own signature verified by the pure verifier.
        der = ossl._key.sign(message, ec.ECDSA(hashes.SHA256(), deterministic_signing=True))
        r2, s2 = utils.decode_dss_signature(der)
        ecdsa.VerifyingKey.from_sec1(sec1).verify(r2.to_bytes(32, "big") + s2.to_bytes(32, "big"), message)


def test_randomised_cryptography_signatures_verify_with_pure():
    # Non-deterministic (random k) signatures exercise other nonces than RFC 6979's.
    for secret, message in _cases(17, 100):
        key = ec.derive_private_key(int.from_bytes(secret, "big"), ec.SECP256R1())
        r, s = utils.decode_dss_signature(key.sign(message, ec.ECDSA(hashes.SHA256())))
        sec1 = ecdsa.SigningKey.from_bytes(secret).public_key().to_sec1()
        pub = ecdsa.VerifyingKey.from_sec1(sec1)
        pub.verify(r.to_bytes(32, "big") + s.to_bytes(32, "big"), message)
        with pytest.raises(SignatureError):
            pub.verify(r.to_bytes(32, "big") + s.to_bytes(32, "big"), message + b"x")


def test_sign_digest_matches_between_backends():
    for secret, message in _cases(3, 50):
        digest = hashlib.sha256(message).digest()
        sig = ecdsa.SigningKey.from_bytes(secret).sign_digest(digest)
        assert sig == cpython_backend.SigningKey.from_bytes(secret).sign_digest(digest)
        cpython_backend.SigningKey.from_bytes(secret).public_key().verify_digest(sig, digest)


def test_cryptography_rejects_what_pure_rejects():
    secret, message = next(_cases(5, 1))
    sig = bytearray(ecdsa.SigningKey.from_bytes(secret).sign(message))
    sig[10] ^= 0x20
    sec1 = ecdsa.SigningKey.from_bytes(secret).public_key().to_sec1()
    for backend in (ecdsa, cpython_backend):
        with pytest.raises(SignatureError, match="does not match"):
            backend.VerifyingKey.from_sec1(sec1).verify(bytes(sig), message)
    raw_pub = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), sec1)
    with pytest.raises(InvalidSignature):
        r, s = int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big")
        raw_pub.verify(utils.encode_dss_signature(r, s), message, ec.ECDSA(hashes.SHA256()))


def test_backends_agree_on_bad_keys_and_signatures():
    from support import load_vectors, unhex

    v = load_vectors("rfc6979_p256.json")
    for vec in v["invalid_public_keys"]:
        msgs = []
        for backend in (ecdsa, cpython_backend):
            with pytest.raises(SignatureError) as e:
                backend.VerifyingKey.from_sec1(unhex(vec["sec1"]))
            msgs.append(str(e.value))
        assert msgs[0] == msgs[1], vec["name"]
    sec1 = b"\x04" + unhex(v["public_key"]["x"]) + unhex(v["public_key"]["y"])
    for vec in v["invalid_signatures"] + v["wrong_messages"]:
        for backend in (ecdsa, cpython_backend):
            with pytest.raises(SignatureError):
                backend.VerifyingKey.from_sec1(sec1).verify(unhex(vec["signature"]), vec["message"].encode())




def test_complete_formulas_against_cryptography_points():
    rnd = random.Random(99)
    for _ in range(50):
        a = rnd.randrange(1, p256.N)
        b = rnd.randrange(1, p256.N)
        pa, pb = p256.mul_base(a), p256.mul_base(b)

        def expect(k):
            k %= p256.N
            if k == 0:
                return None
            nums = ec.derive_private_key(k, ec.SECP256R1()).public_key().public_numbers()
            return (nums.x, nums.y)

        assert p256.to_affine(p256.add(pa, pb)) == expect(a + b)
        assert p256.to_affine(p256.add(pa, pa)) == expect(2 * a)  # P + P through add()
        assert p256.to_affine(p256.double(pa)) == expect(2 * a)
        assert p256.to_affine(p256.add(pa, p256.negate(pa))) is None  # P + (-P)
        assert p256.to_affine(p256.add(pa, p256.IDENTITY)) == expect(a)  # P + O
        assert p256.to_affine(p256.add(p256.IDENTITY, pa)) == expect(a)  # O + P
        # Same point in another projective scaling: P + P' where P' == P.
        lam = rnd.randrange(2, p256.P)
        scaled = (pa[0] * lam % p256.P, pa[1] * lam % p256.P, pa[2] * lam % p256.P)
        assert p256.to_affine(p256.add(pa, scaled)) == expect(2 * a)
        assert p256.to_affine(p256.mul(b, pa)) == expect(a * b)
        assert p256.to_affine(p256.mul_double_base(a, b, p256.G)) == expect(a + b)
