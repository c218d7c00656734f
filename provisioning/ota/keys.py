"""Release keys (offline) and the devices' pinned list of them (CPython only).

A release key says *what* code is genuine. It is made on an offline machine by
`civicmote release keygen`, never by the provisioning CA and never held by the platform
operator; its PEM is encrypted with a passphrase (RELEASE_PASSPHRASE_ENV, the file named by
RELEASE_PASSPHRASE_FILE_ENV, or a prompt) and written owner-only. Its public half (SEC1, 65
bytes) is what devices pin: DEVICE_FILE in the device folder, the CBOR array of one or two
such byte strings (`device init --release-key`, `provision --release-key`).
kid = b"rel-" + hex of the first 4 bytes of SHA-256(SEC1) (docs/wire-format.md, "Updates").
"""
import os
import sys

from provisioning import files
# the devices' pinned list is the device side's (device init writes it); named here for the commands
from provisioning.device.release_keys import (DEVICE_FILE, MAX_KEYS, device_file, kid, parse_public,  # noqa: F401
                                              refuse_known)
from provisioning.errors import UsageError

RELEASE_PASSPHRASE_ENV = "CIVICMOTE_RELEASE_PASSPHRASE"
RELEASE_PASSPHRASE_FILE_ENV = "CIVICMOTE_RELEASE_PASSPHRASE_FILE"
MIN_PASSPHRASE = 8


def public_sec1(private_key):
    from cryptography.hazmat.primitives import serialization

    return private_key.public_key().public_bytes(serialization.Encoding.X962,
                                                 serialization.PublicFormat.UncompressedPoint)


def passphrase(confirm=False):
    value = os.environ.get(RELEASE_PASSPHRASE_ENV)
    if value is None and os.environ.get(RELEASE_PASSPHRASE_FILE_ENV):
        path = os.environ[RELEASE_PASSPHRASE_FILE_ENV]
        try:
            with open(path) as f:
                value = f.readline().rstrip("\r\n")
        except OSError as e:
            raise UsageError("%s=%s: cannot read the passphrase file (%s)" % (RELEASE_PASSPHRASE_FILE_ENV, path,
                                                                               e.strerror))
    if value is None:
        if not sys.stdin.isatty():
            raise UsageError("no release key passphrase: set %s or run on a terminal to be prompted"
                             % RELEASE_PASSPHRASE_ENV)
        from getpass import getpass

        value = getpass("release key passphrase: ")
        if confirm and getpass("release key passphrase again: ") != value:
            raise UsageError("the two passphrases differ; run the command again")
    if len(value) < MIN_PASSPHRASE:
        raise UsageError("release key passphrase: use at least %d characters" % MIN_PASSPHRASE)
    return value


def keygen(out_path):
    """A new release key in out_path (encrypted PEM, 0600); refuses to overwrite. -> (sec1, kid)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    if os.path.exists(out_path):
        raise UsageError("%s: exists; a release key is never overwritten (choose another --out)" % out_path)
    secret = passphrase(confirm=True).encode()
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.BestAvailableEncryption(secret))
    files.write_file(out_path, pem, 0o600)
    sec1 = public_sec1(key)
    return sec1, kid(sec1)


def load_signing_key(path):
    """(SigningKey, SEC1, kid) from a release key file; UsageError naming the file."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    from agent.crypto.cpython_backend import SigningKey

    try:
        with open(path, "rb") as f:
            pem = f.read()
    except OSError as e:
        raise UsageError("%s: cannot read the release key (%s)" % (path, e.strerror))
    try:
        key = serialization.load_pem_private_key(pem, passphrase().encode() if b"ENCRYPTED" in pem else None)
    except (ValueError, TypeError) as e:
        raise UsageError("%s: cannot open the release key (%s); check %s" % (path, e, RELEASE_PASSPHRASE_ENV))
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
        raise UsageError("%s: not a P-256 private key" % path)
    sec1 = public_sec1(key)
    return SigningKey(key), sec1, kid(sec1)
