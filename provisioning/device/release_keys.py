"""The release keys a device pins: parsing them from the command line, and the file (CPython only).

A release key says *what* code is genuine (docs/updates.md; made by `civicmote release keygen`,
provisioning/ota/keys.py). Its public half (SEC1, 65 bytes) is what a device pins: DEVICE_FILE
in the device folder, the CBOR array of one or two such byte strings (agent/ota/docs.py reads
it), written by `device init --release-key` and `provision --release-key`. The provisioning CA's
key and a device's own key are refused: neither may ever say what code is genuine.
"""
from provisioning.errors import UsageError

DEVICE_FILE = "release_keys"
MAX_KEYS = 2


def kid(sec1):
    from agent.ota import docs

    return docs.release_kid(sec1)


def parse_public(text, what="--release-key"):
    """SEC1 bytes (65) from hex; UsageError naming the option."""
    try:
        sec1 = bytes.fromhex(text)
    except ValueError:
        sec1 = b""
    if len(sec1) != 65 or sec1[0] != 4:
        raise UsageError("%s %s: not a P-256 public key (130 hex digits, SEC1 uncompressed, as release keygen "
                         "printed it)" % (what, text[:20] + ("..." if len(text) > 20 else "")))
    from agent.crypto.p256 import decode_sec1

    try:
        decode_sec1(sec1)
    except Exception:
        raise UsageError("%s %s...: not a point on P-256" % (what, text[:20]))
    return sec1


def device_file(keys):
    """The bytes of DEVICE_FILE for one or two SEC1 keys (the CBOR array of byte strings)."""
    from agent.ota import docs

    keys = [bytes(k) for k in keys]
    if not 1 <= len(keys) <= MAX_KEYS or len(set(keys)) != len(keys):
        raise UsageError("--release-key: give one or two different keys (the current one and its successor)")
    return docs.dump_release_keys(keys)


def refuse_known(sec1, ca_sec1=None, device_keys=()):
    """A key that is the provisioning CA's or a device's can never be a release key."""
    if ca_sec1 is not None and bytes(sec1) == bytes(ca_sec1):
        raise UsageError("--release-key: that is the provisioning CA's key; a release key must be a separate, "
                         "offline key (civicmote release keygen)")
    if bytes(sec1) in set(bytes(k) for k in device_keys):
        raise UsageError("--release-key: that is a device's key; use a key from civicmote release keygen")
