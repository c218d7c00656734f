"""The rollout key: the city's online key that signs orders (who gets a release, when) (CPython only).

It is certified by the provisioning CA exactly as the collector's receipts key is (city/receipts.py),
with role "rollout": `civicmote broker-config` writes, beside the broker's files,
    rollout.crt / rollout.key   the rollout service's client identity at the broker (CN ROLLOUT_CN)
    rollout.orders              that key certified by the CA for signing orders (the order's `rc`)
re-issued with the broker's files. Devices check `rc` with the CA key they already hold for
receipts. The CA can at most make an order, and an order only points at a release that a release
key signed: neither the CA nor this key can say what code is genuine.
"""
import os
from pathlib import Path

from provisioning import files

ROLLOUT_FILES = ("rollout.crt", "rollout.key", "rollout.orders")


def write_identity(authority, d, now, keep_or_issue, cn):
    """rollout.crt/.key (kept while valid) and rollout.orders (re-issued every run) in folder d."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    d = Path(d)
    new = keep_or_issue(authority, d / "rollout.crt", d / "rollout.key", cn, "client", [], None, 0o600, now)
    key = serialization.load_pem_private_key((d / "rollout.key").read_bytes(), None)
    exp = x509.load_pem_x509_certificate((d / "rollout.crt").read_bytes()).not_valid_after_utc.timestamp()
    files.write_file(d / "rollout.orders", issue_cert(authority.key, key.public_key(), cn, exp), 0o644)
    return new


def issue_cert(ca_private_key, public_key, rollout_id, exp):
    """The rollout key's certificate (role "rollout"), signed by the provisioning CA's key."""
    from cryptography.hazmat.primitives import serialization

    from agent.crypto.cpython_backend import SigningKey
    from agent.ota import docs

    pub = public_key.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    return docs.make_rollout_cert(SigningKey(ca_private_key), rollout_id, pub, int(exp))


class OrderSigner:
    """OrderSigner(key, cert, rollout_id): signs orders with the rollout key and its certificate."""

    def __init__(self, key, cert, rollout_id):
        self.key, self.cert, self.rollout_id = key, bytes(cert), rollout_id

    def order(self, seq, release, district, devices, pct, salt, nb, exp):
        from agent.ota import docs

        return docs.make_order(self.key, self.cert, self.rollout_id, seq, bytes(release), district, pct, bytes(salt),
                               int(nb), int(exp), devices=list(devices) or None)


def load_signer(folder=None, key_path=None, cert_path=None):
    """The OrderSigner from broker-config's folder (rollout.key, rollout.orders), or the two files."""
    from provisioning.pki import certified_key

    key_path = key_path or os.path.join(folder, "rollout.key")
    cert_path = cert_path or os.path.join(folder, "rollout.orders")
    return OrderSigner(*certified_key.load(key_path, cert_path, "rollout", "a rollout key and its certificate"))
