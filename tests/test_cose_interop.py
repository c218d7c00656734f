"""Our COSE_Sign1 against pycose, an independent implementation (pycose needs cbor2 < 6)."""
import os

from pycose.algorithms import Es256
from pycose.headers import KID, Algorithm
from pycose.keys import EC2Key
from pycose.keys.curves import P256
from pycose.messages import Sign1Message

from agent import crypto
from agent.core import cose, summary
from agent.core.identity import device_id


def _pair():
    key = crypto.generate_signing_key(os.urandom)
    pub = key.public_key().to_sec1()
    cose_key = EC2Key(crv=P256, d=key.to_bytes(), x=pub[1:33], y=pub[33:])
    return key, pub, cose_key


def test_ours_verify_with_pycose():
    for i in range(20):
        key, pub, cose_key = _pair()
        dev = device_id(pub)
        payload = summary.encode(summary.build(dev, i, 1000, 1300, {"t": [3, 2150, 2100, 2200]}, b"\x00" * 8))
        msg = cose.sign1(payload, key, dev.encode())
        decoded = Sign1Message.decode(msg)
        decoded.key = EC2Key(crv=P256, x=pub[1:33], y=pub[33:])
        assert decoded.verify_signature()
        assert decoded.payload == payload
        assert decoded.uhdr[KID] == dev.encode() and decoded.phdr[Algorithm] == Es256


def test_pycose_messages_verify_with_ours():
    for i in range(20):
        key, pub, cose_key = _pair()
        dev = device_id(pub)
        payload = os.urandom(40)
        m = Sign1Message(phdr={Algorithm: Es256}, uhdr={KID: dev.encode()}, payload=payload)
        m.key = cose_key
        data = m.encode()
        got = cose.verify1(data, crypto.verifying_key_from_sec1(pub))
        assert got.payload == payload and got.kid_text() == dev


def test_pycose_rejects_our_message_when_tampered():
    key, pub, _ = _pair()
    msg = bytearray(cose.sign1(b"\xa1\x61\x76\x01", key, b"kid"))
    msg[-1] ^= 1
    decoded = Sign1Message.decode(bytes(msg))
    decoded.key = EC2Key(crv=P256, x=pub[1:33], y=pub[33:])
    assert not decoded.verify_signature()
