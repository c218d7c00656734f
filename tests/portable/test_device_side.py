"""The device's side of provisioning, the same on a board and on Linux: init, proof of possession, TLS key."""
import binascii
import json

from agent import crypto
from agent.runtime.device import init_device
from agent.store import identity
from support import MICROPYTHON, raises, tmpdir

CHALLENGE = bytes(range(32))


def test_init_device_is_idempotent_and_keeps_the_key():
    d = tmpdir()
    first = init_device(d, "sim", "north", 1795003200)
    assert first["created"] is True and first["district"] == "north" and first["board"] == "sim"
    again = init_device(d, "sim", None, 1795003300)
    assert again["created"] is False and again["device_id"] == first["device_id"]
    assert again["district"] == "north"  # kept when not given
    with open(d + "/device.json") as f:
        rec = json.load(f)
    assert rec["public_key"] == first["public_key"] and "created" not in rec
    with open(d + "/privacy.ledger", "rb") as f:
        assert b"civicmote-ledger 2\n" in f.read()


def test_answer_pop_signs_domain_separated_challenge():
    d = tmpdir()
    rec = init_device(d, "sim", "north", 1795003200)
    ans = identity.answer_pop(d, CHALLENGE)
    assert ans["device_id"] == rec["device_id"] and ans["public_key"] == rec["public_key"]
    vk = crypto.verifying_key_from_sec1(binascii.unhexlify(ans["public_key"]))
    msg = identity.pop_message(CHALLENGE, ans["device_id"])
    assert msg.startswith(b"civicmote-pop-v1\x00")
    vk.verify(binascii.unhexlify(ans["signature"]), msg)
    raises(ValueError, identity.pop_message, CHALLENGE[:31], ans["device_id"])
    secret = binascii.hexlify(identity.load_key(d).to_bytes()).decode()
    assert secret not in json.dumps(ans)


def test_tls_key_pem_is_the_device_key():
    d = tmpdir()
    init_device(d, "sim", None, 1795003200)
    identity.answer_pop(d, CHALLENGE)
    with open(d + "/device.pem", "rb") as f:
        pem = f.read()
    assert pem.startswith(b"-----BEGIN EC PRIVATE KEY-----\n") and pem.endswith(b"-----END EC PRIVATE KEY-----\n")
    key = identity.load_key(d)
    assert pem == identity.tls_key_pem(key)
    if not MICROPYTHON:  # an independent reading of the PEM: cryptography must see the same key
        import os
        import stat

        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ec

        loaded = serialization.load_pem_private_key(pem, None)
        pub = loaded.public_key().public_bytes(serialization.Encoding.X962,
                                               serialization.PublicFormat.UncompressedPoint)
        assert isinstance(loaded, ec.EllipticCurvePrivateKey) and pub == key.public_key().to_sec1()
        assert stat.S_IMODE(os.stat(d + "/device.pem").st_mode) == 0o600
