"""device_id derivation (contract) against vectors made with the standard library's base32."""
from agent.core import identity
from agent.errors import SignatureError
from support import load_vectors, raises, unhex


def test_device_id_vectors():
    for v in load_vectors("identity.json"):
        assert identity.device_id(unhex(v["public_key"])) == v["device_id"]


def test_device_id_shape():
    for v in load_vectors("identity.json"):
        assert identity.is_device_id(v["device_id"])
    assert not identity.is_device_id("cmABCDEFGHIJKLMNOP")  # upper case is not base32-lower
    assert not identity.is_device_id("xx" + "a" * 16)
    assert not identity.is_device_id("cm" + "a" * 15)
    assert not identity.is_device_id("cm" + "a" * 15 + "1")  # '1' is not in the base32 alphabet
    assert not identity.is_device_id(None)


def test_base32_rfc4648_examples():
    # RFC 4648 section 10 test vectors, lower-cased and unpadded.
    cases = [(b"", ""), (b"f", "my"), (b"fo", "mzxq"), (b"foo", "mzxw6"), (b"foob", "mzxw6yq"),
             (b"fooba", "mzxw6ytb"), (b"foobar", "mzxw6ytboi")]
    for raw, enc in cases:
        assert identity.base32_lower(raw) == enc


def test_bad_public_keys_rejected():
    pub = unhex(load_vectors("identity.json")[0]["public_key"])
    raises(SignatureError, identity.device_id, pub[:64])
    raises(SignatureError, identity.device_id, b"\x02" + pub[1:])


def test_check_device_id():
    v = load_vectors("identity.json")
    pub0 = unhex(v[0]["public_key"])
    identity.check_device_id(v[0]["device_id"], pub0)
    e = raises(SignatureError, identity.check_device_id, v[1]["device_id"], pub0)
    assert v[1]["device_id"] in str(e)
