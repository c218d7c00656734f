"""COSE_Sign1 / ES256 per the wire contract: exact bytes, round trips and every rejection."""
from agent import crypto
from agent.core import cbor, cose
from agent.errors import AgentError, DecodeError, SignatureError
from support import load_vectors, raises, unhex


def _key(v):
    return crypto.signing_key_from_bytes(unhex(v["d"]))


def test_exact_bytes_from_independent_vectors():
    for v in load_vectors("cose_sign1.json"):
        payload = unhex(v["payload"])
        assert cose.sig_structure(cose.PROTECTED_ES256, payload) == unhex(v["sig_structure"])
        assert cose.sign1(payload, _key(v), v["kid"].encode()) == unhex(v["message"])


def test_vectors_verify():
    for v in load_vectors("cose_sign1.json"):
        vk = crypto.verifying_key_from_sec1(unhex(v["public_key"]))
        msg = cose.verify1(unhex(v["message"]), vk)
        assert msg.payload == unhex(v["payload"]) and msg.kid_text() == v["kid"]


def test_shape_is_the_contract():
    v = load_vectors("cose_sign1.json")[0]
    obj = cbor.loads(cose.sign1(b"\xa0", _key(v), b"cmabc"))
    assert obj.tag == 18 and len(obj.value) == 4
    prot, unprot, payload, sig = obj.value
    assert prot == b"\xa1\x01\x26" and unprot == {4: b"cmabc"} and payload == b"\xa0" and len(sig) == 64


def test_tampering_is_caught():
    v = load_vectors("cose_sign1.json")[1]
    vk = crypto.verifying_key_from_sec1(unhex(v["public_key"]))
    good = unhex(v["message"])
    payload = unhex(v["payload"])
    # Every single-bit flip in the payload or signature region must fail verification.
    start = good.index(payload)
    for i in list(range(start, start + len(payload))) + list(range(len(good) - 64, len(good))):
        bad = bytearray(good)
        bad[i] ^= 0x01
        raises(AgentError, cose.verify1, bytes(bad), vk)
    other = crypto.verifying_key_from_sec1(unhex(load_vectors("cose_sign1.json")[0]["public_key"]))
    raises(SignatureError, cose.verify1, good, other)


def test_malformed_messages_rejected():
    v = load_vectors("cose_sign1.json")[0]
    vk = crypto.verifying_key_from_sec1(unhex(v["public_key"]))
    sig = b"\x01" * 64
    cases = [
        (b"", DecodeError),
        (b"\xff", DecodeError),
        (cbor.dumps([b"\xa1\x01\x26", {}, b"", sig]), DecodeError),  # untagged
        (cbor.dumps(cbor.Tag(18, [b"\xa1\x01\x26", {}, b""])), DecodeError),  # 3 items
        (cbor.dumps(cbor.Tag(18, [b"\xa1\x01\x27", {}, b"", sig])), DecodeError),  # alg -8 (EdDSA)
        (cbor.dumps(cbor.Tag(18, [b"", {1: -7}, b"", sig])), DecodeError),  # alg unprotected
        (cbor.dumps(cbor.Tag(18, [b"\xa1\x01\x26", [], b"", sig])), DecodeError),
        (cbor.dumps(cbor.Tag(18, [b"\xa1\x01\x26", {}, None, sig])), DecodeError),  # detached payload
        (cbor.dumps(cbor.Tag(18, [b"\xa1\x01\x26", {}, b"", sig[:63]])), SignatureError),
        (b"\xd2" + b"\x84" * 3000, DecodeError),
    ]
    for data, exc in cases:
        raises(exc, cose.verify1, data, vk)
    no_kid = cose.decode1(cbor.dumps(cbor.Tag(18, [b"\xa1\x01\x26", {}, b"", sig])))
    raises(DecodeError, no_kid.kid_text)


def test_sign1_requires_bytes_payload():
    v = load_vectors("cose_sign1.json")[0]
    raises(TypeError, cose.sign1, {"v": 1}, _key(v), b"k")
