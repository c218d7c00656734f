"""A private key and the CA's certificate of it for one role, loaded together (CPython only).

broker-config writes two such pairs beside the broker's TLS files: the collector's receipts key
(`collector.key` + `collector.receipt`, role "receipts", agent/core/receipt.py) and the rollout
key (`rollout.key` + `rollout.orders`, role "rollout", agent/ota/docs.py). Both are checked the
same way: the files read, the certificate's role, and that it certifies this very key.
"""
from pathlib import Path

from provisioning.errors import UsageError


def load(key_path, cert_path, role, what):
    """(signing key, certificate bytes, key id); UsageError naming the file when they cannot be read,
    are damaged, or do not belong together. what: the pair in words, for the messages."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    from agent.core import cbor, cose
    from agent.crypto.cpython_backend import SigningKey

    try:
        key = serialization.load_pem_private_key(Path(key_path).read_bytes(), None)
        cert = Path(cert_path).read_bytes()
        c = cbor.loads(cose.decode1(cert).payload)
    except OSError as e:
        raise UsageError("%s: cannot read (%s); civicmote broker-config writes it" % (e.filename, e.strerror))
    except Exception as e:  # noqa: BLE001 - a damaged file: named, never a traceback
        raise UsageError("%s / %s: not %s (%s)" % (key_path, cert_path, what, e))
    if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(c, dict):
        raise UsageError("%s: not a P-256 private key" % key_path)
    pub = key.public_key().public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    if c.get("pk") != pub or c.get("role") != role:
        raise UsageError("%s: does not certify %s for %s; re-run civicmote broker-config" % (cert_path, key_path, role))
    return SigningKey(key), cert, c.get("id")
