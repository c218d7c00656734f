"""Proof of possession: the device signs a fresh host challenge with its own key (CPython only).

    signed bytes = b"civicmote-pop-v1\\0" || challenge (32 bytes) || device_id (ASCII)

The domain prefix keeps a PoP signature from ever passing as a COSE summary signature (whose
signed bytes start with the CBOR array header of "Signature1") and vice versa; binding the
device_id stops a signature from being replayed for another identity. The host side
(`verify_answer`) never sees the private key; the device side (`answer`, behind
`civicmote device pop`) runs where the key lives, on the device or over ssh.
"""
import binascii
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


# --- device side -------------------------------------------------------------------------

def answer(device_dir, challenge_hex):
    """Sign the challenge with the device key in device_dir; also make sure device.pem exists.

    Returns {device_id, public_key, signature} (hex). The private key stays in this process.
    """
    from provisioning import devicedir

    try:
        challenge = binascii.unhexlify(challenge_hex)
    except (binascii.Error, ValueError):
        raise UsageError("--challenge: not hex")
    devicedir.load_identity(device_dir)  # a clear error if there is no identity here
    try:
        return identity.answer_pop(str(device_dir), challenge)
    except ValueError as e:
        raise UsageError("--challenge: %s" % e)


def do_pop(out, args):
    """`civicmote device pop --device-dir DIR --challenge HEX`: the device side of provisioning."""
    result = answer(args.device_dir, args.challenge)
    out.record(result)
    return 0


def register_pop(group, common):
    """Add `pop` to the `device` command group."""
    from provisioning.commands import add_command

    p = add_command(group, "pop", do_pop, common,
                    "prove possession of the device key: sign a provisioning challenge (device side)",
                    "Sign the host's challenge (domain-separated: 'civicmote-pop-v1' || challenge || "
                    "device_id) with the key in DIR and print device_id, public_key and signature. Also "
                    "writes DIR/device.pem (mode 0600), the same key in the PEM form TLS libraries load. "
                    "The private key never leaves DIR.")
    p.add_argument("--device-dir", required=True, metavar="DIR", help="the device's state folder")
    p.add_argument("--challenge", required=True, metavar="HEX", help="the host's 32-byte challenge, hex")
