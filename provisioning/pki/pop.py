"""Proof of possession: the device signs a fresh host challenge with its own key (CPython only).

    signed bytes = b"civicmote-pop-v1\\0" || challenge (32 bytes) || device_id (ASCII)

The domain prefix keeps a PoP signature from ever passing as a COSE summary signature (whose
signed bytes start with the CBOR array header of "Signature1") and vice versa; binding the
device_id stops a signature from being replayed for another identity. This is the host side
(`verify_answer`): it never sees the private key. The device side
(`provisioning.device.actions.pop`, behind `civicmote device pop`) runs where the key lives.
"""
import os

from agent.core.identity import device_id as derive_device_id
from agent.store import identity
from provisioning.errors import EXIT_FAILED, ProvisioningError, UsageError

# The device's side (the message, the signature, device.pem) is portable: agent/store/identity.py.
DOMAIN = identity.POP_DOMAIN
CHALLENGE_LEN = identity.POP_CHALLENGE_LEN
PEM_FILE = identity.TLS_KEY_FILE


class PopFailed(ProvisioningError):
    exit_code = EXIT_FAILED


def new_challenge(rng=os.urandom):
    return rng(CHALLENGE_LEN)


def message(challenge, device_id):
    """The bytes the device signs for challenge."""
    try:
        return identity.pop_message(challenge, device_id)
    except ValueError as e:
        raise UsageError(str(e))


def verify_answer(answer, challenge, expect_public_hex, where):
    """Check a device's PoP answer {device_id, public_key, signature} (hex) against our challenge.

    expect_public_hex is the key the device reported at init. Raises PopFailed naming the target.
    Returns (device_id, public SEC1 bytes).
    """
    from agent import crypto
    from agent.errors import AgentError

    hint = "; nothing was registered. Check the device folder (a corrupt or swapped device.key?) and re-run"
    try:
        pub = bytes.fromhex(answer["public_key"])
        sig = bytes.fromhex(answer["signature"])
        dev = derive_device_id(pub)
    except (KeyError, TypeError, ValueError, AgentError):
        raise PopFailed("%s: the device's proof-of-possession answer is malformed%s" % (where, hint))
    if answer.get("device_id") != dev:
        raise PopFailed("%s: the device claims id %r but its key gives %s%s" % (where, answer.get("device_id"), dev, hint))
    if expect_public_hex is not None and answer["public_key"] != expect_public_hex:
        raise PopFailed("%s: the device answered with a different key than it reported%s" % (where, hint))
    try:
        crypto.verifying_key_from_sec1(pub).verify(sig, message(challenge, dev))
    except AgentError:
        raise PopFailed("%s: proof of possession failed: the signature over the challenge does not verify "
                        "under device %s's key%s" % (where, dev, hint))
    return dev, pub
