"""Receipts from the city: "stored up to seq N", signed by a collector key the CA certifies (pure).

Two COSE_Sign1 documents (ES256, agent/core/cose.py; CDDL in docs/wire-format.md, "Receipts"):

    collector certificate, signed by the provisioning CA (kid "ca"):
        {"v": 1, "role": "receipts", "id": collector id, "pk": SEC1 public key (65 bytes),
         "exp": Unix seconds after which it is void}
    receipt, signed by that collector key (kid = collector id):
        {"v": 1, "dev": device_id, "lo": seq, "hi": seq, "t": collector clock (Unix ms),
         "col": collector id, "cc": the collector certificate (bytes)}

`lo..hi` says: every seq from lo to hi is stored, or accounted for as a gap the device itself
caused (dropped when its outbox was full, numbers skipped at a reboot). A device retires only
records inside [lo, hi]. `check()` is everything a device needs to refuse a receipt that must
not make it drop data: not from a collector the CA certified, for another device, older than
one already accepted (a replay), or covering a seq the device never sent.
"""
from agent.core import cbor, cose
from agent.errors import DecodeError, SignatureError

VERSION = 1
ROLE = "receipts"
CA_KID = b"ca"
MAX_RECEIPT = 1024  # bytes; a receipt is about 370


def _uint(v):
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


def _map(payload, fields, what):
    m = cbor.loads(payload, max_depth=4, canonical=True)
    if not isinstance(m, dict) or m.get("v") != VERSION:
        raise DecodeError("%s: not a version %d map" % (what, VERSION))
    for name, kind in fields:
        v = m.get(name)
        if kind == "uint" and not _uint(v) or kind == "text" and not isinstance(v, str) or \
                kind == "bytes" and not isinstance(v, bytes):
            raise DecodeError("%s: field %r must be %s" % (what, name, kind))
    if len(m) != len(fields) + 1:
        raise DecodeError("%s: unexpected fields" % what)
    return m


CERT_FIELDS = (("role", "text"), ("id", "text"), ("pk", "bytes"), ("exp", "uint"))
RECEIPT_FIELDS = (("dev", "text"), ("lo", "uint"), ("hi", "uint"), ("t", "uint"), ("col", "text"),
                  ("cc", "bytes"))


# -- making them (the CA and the collector; keys are anything with sign(msg) -> 64 bytes) -----
def make_cert(ca_key, collector_id, public_sec1, exp, role=ROLE):
    payload = cbor.dumps({"v": VERSION, "role": role, "id": collector_id, "pk": bytes(public_sec1), "exp": exp})
    return cose.sign1(payload, ca_key, CA_KID)


def make(key, cert, dev, lo, hi, t_ms, collector_id):
    payload = cbor.dumps({"v": VERSION, "dev": dev, "lo": lo, "hi": hi, "t": t_ms, "col": collector_id,
                          "cc": bytes(cert)})
    return cose.sign1(payload, key, collector_id.encode())


# -- checking them (the device) ---------------------------------------------------------------
def open_cert(cert, ca_key, role=ROLE):
    """(key id, its public key SEC1, exp) of a certificate the CA signed for `role` ("receipts":
    a collector; "rollout": the city's rollout key, agent/ota/docs.py), or raise."""
    msg = cose.verify1(cert, ca_key)
    c = _map(msg.payload, CERT_FIELDS, "%s certificate" % role)
    if c["role"] != role or len(c["pk"]) != 65:
        raise DecodeError("%s certificate: not a %s key" % (role, role))
    return c["id"], c["pk"], c["exp"]


class Verifier:
    """Verifier(ca_key, key_from_sec1): checks receipts for one device against the CA's key.

    key_from_sec1: agent.crypto.verifying_key_from_sec1. The last certificate that verified is
    kept (its bytes and key), so a receipt costs one signature check, not two.
    """

    def __init__(self, ca_key, key_from_sec1):
        self.ca_key = ca_key
        self.key_from_sec1 = key_from_sec1
        self._cert = None  # (cert bytes, collector id, key, exp)

    def _collector(self, cert):
        if self._cert is None or self._cert[0] != cert:
            cid, pk, exp = open_cert(cert, self.ca_key)
            self._cert = (bytes(cert), cid, self.key_from_sec1(pk), exp)
        return self._cert

    def check(self, message, dev, last_t, last_seq):
        """The receipt's map if it may retire data, else raise DecodeError/SignatureError saying why.

        dev: this device's id; last_t: `t` of the newest receipt accepted (None: none yet);
        last_seq: the highest seq this device ever queued."""
        if len(message) > MAX_RECEIPT:
            raise DecodeError("receipt: %d bytes exceeds %d" % (len(message), MAX_RECEIPT))
        msg = cose.decode1(message)
        r = _map(msg.payload, RECEIPT_FIELDS, "receipt")
        cert, cid, key, exp = self._collector(r["cc"])
        if r["col"] != cid or msg.kid != cid.encode():
            raise SignatureError("receipt: collector %r is not the one its certificate names (%r)" % (r["col"], cid))
        msg.verify(key)
        if r["dev"] != dev:
            raise DecodeError("receipt: for device %s, not this one" % r["dev"])
        if r["t"] // 1000 > exp:
            raise DecodeError("receipt: issued after its collector certificate expired")
        if last_t is not None and r["t"] <= last_t:
            raise DecodeError("receipt: issued at %d ms, not after the last one accepted (%d): a replay" %
                              (r["t"], last_t))
        if r["lo"] > r["hi"] or r["hi"] > last_seq:
            raise DecodeError("receipt: covers seq %d..%d, but this device sent at most %d" %
                              (r["lo"], r["hi"], last_seq))
        return r


_SPKI_P256 = b"\x30\x59\x30\x13\x06\x07\x2a\x86\x48\xce\x3d\x02\x01\x06\x08\x2a\x86\x48\xce\x3d\x03\x01\x07\x03\x42\x00"


def ca_public_key(cert_der):
    """The SEC1 public key (65 bytes) of a P-256 CA certificate in DER: the first subject public
    key info in it is the certificate's own (issuer keys appear only as hashes)."""
    i = bytes(cert_der).find(_SPKI_P256)
    if i < 0 or len(cert_der) < i + len(_SPKI_P256) + 65:
        raise DecodeError("CA certificate: no P-256 public key in it")
    pk = bytes(cert_der[i + len(_SPKI_P256):i + len(_SPKI_P256) + 65])
    if pk[0] != 4:
        raise DecodeError("CA certificate: the P-256 key is not uncompressed")
    return pk
