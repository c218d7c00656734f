"""The device's signed manifest kept on flash, so that a board does not rebuild it at each boot.

    manifest.cose   in the device folder: FINGERPRINT_LEN bytes of fingerprint, the manifest
                    hash (`mh`, MH_LEN bytes), then the COSE_Sign1 message that is published

Building the manifest takes the manifest builder, its resident-facing text and a second
encoding of a 2-3 KB map: the largest allocations a board makes, at the moment its heap is
fullest. `device init` (run on the device when it is provisioned) builds it once while nothing
else is in the heap; every boot after that reads it back. The fingerprint is SHA-256 over
CODE, the device id and the exact bytes of the profile file: a new profile, another key or a
manifest builder that says something new (CODE changes, tests/test_manifest_file.py keeps it
honest) makes the file stale, and the next boot builds and writes it again. Nothing in it is
secret: the message is what the device publishes.
"""
import hashlib

from agent.core.summary import MH_LEN

FILE = "manifest.cose"
# The manifest builder's version: bump it whenever agent/privacy/manifest*.py, the policy or the
# profile validation change the bytes of any board's manifest (a test compares them per board).
CODE = b"civicmote manifest 4"
FACTORY_SW = (0, b"\x00\x00\x00\x00")  # the manifest's `sw` of software no update installed
FINGERPRINT_LEN = 32
_CHUNK = 256


def fingerprint(profile_path, dev, sw=FACTORY_SW):
    """SHA-256 over CODE, dev, the running software (sw) and the profile file's bytes (read a
    chunk at a time): an update installed or rolled back makes the next boot sign it again."""
    h = hashlib.sha256(CODE + b"\x00" + dev.encode() + b"\x00%d\x00" % sw[0] + bytes(sw[1]) + b"\x00")
    with open(profile_path, "rb") as f:
        while True:
            b = f.read(_CHUNK)
            if not b:
                break
            h.update(b)
    return h.digest()


def read(path, fp):
    """(message, mh) from the file at path if its fingerprint is fp, else None."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError:
        return None
    head = FINGERPRINT_LEN + MH_LEN
    if len(data) <= head or data[:FINGERPRINT_LEN] != fp:
        return None
    return data[head:], data[FINGERPRINT_LEN:head]


def build(board, key, dev, sw=FACTORY_SW):
    """(COSE_Sign1 manifest message, mh) for this device and board: the payload encoded once."""
    from agent.core import cose, summary
    from agent.privacy import manifest

    payload = manifest.payload(manifest.board_manifest(board, dev, sw))
    return cose.sign1(payload, key, dev.encode()), summary.manifest_hash(payload)


def ensure(device_dir, board, key, dev, profile_name="board.json", sw=None):
    """(message, mh): from device_dir's manifest file when it is current, else built and written.
    sw: (seq, 4 bytes) of the running software; None: the installed release in the device's
    `ota/state` (agent/ota/state.py; factory software without one).

    The file is only used for the device's own profile (board.source is device_dir's profile
    file); a board loaded from elsewhere gets a manifest built for it and nothing is written."""
    from agent import compat

    profile = device_dir + "/" + profile_name
    if sw is None:
        from agent.ota.state import installed_sw

        sw = installed_sw(device_dir)
    if board.source != profile:
        return build(board, key, dev, sw)
    try:
        fp = fingerprint(profile, dev, sw)
    except OSError:
        return build(board, key, dev, sw)
    path = device_dir + "/" + FILE
    got = read(path, fp)
    if got is not None:
        return got
    msg, mh = build(board, key, dev, sw)
    try:
        compat.write_chunks_atomic(path, (fp, mh, msg))
    except OSError:
        pass  # a full flash: built again at the next boot, nothing lost
    return msg, mh
