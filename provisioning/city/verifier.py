"""City-side verification of signed messages (CPython only).

A message is accepted only if it is the one accepted COSE_Sign1 envelope (city/envelope.py),
its kid names an active device of the key ring, the signature verifies under that device's
key, and its payload is deterministic CBOR (city/strict_cbor.py) that passes the schema check
(city/schema.py) as a summary or a manifest of that same device. The payload is decoded once.
Every rejection carries a reason naming what failed; nothing here raises for bad input.

A kid that the ring does not know yet gives a Verdict with `unknown` set: the collector holds
such a message until the registry learns the device (docs/delivery.md, "The collector").
"""
import hashlib

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from agent.core.identity import device_id as derive_device_id
from agent.crypto import p256
from provisioning.city import schema
from provisioning.city.envelope import EnvelopeError, open_envelope
from provisioning.city.strict_cbor import PayloadError, decode as decode_payload

_ES256 = ec.ECDSA(hashes.SHA256())
_N = p256.N.to_bytes(32, "big")


class Verdict:
    """ok, device_id, seq, kind ("summary" | "manifest"), payload (decoded), reason (if not ok),
    unknown (True: the kid is not in the ring, yet), mh (a manifest's hash, 8 bytes)."""

    __slots__ = ("ok", "device_id", "seq", "kind", "payload", "reason", "unknown", "mh")

    def __init__(self, ok, device_id=None, seq=None, kind=None, payload=None, reason=None, unknown=False, mh=None):
        self.ok = ok
        self.device_id = device_id
        self.seq = seq
        self.kind = kind
        self.payload = payload
        self.reason = reason
        self.unknown = unknown
        self.mh = mh

    def as_dict(self):
        d = {"ok": self.ok, "device_id": self.device_id, "seq": self.seq, "kind": self.kind}
        if not self.ok:
            d["reason"] = self.reason
        return d


class KeyRing:
    """device_id -> verifying key and registered district, plus the devices that must be refused."""

    def __init__(self):
        self.keys = {}       # device_id -> cryptography EllipticCurvePublicKey
        self.districts = {}  # device_id -> district (None: not known, e.g. keys from device folders)
        self.refused = {}    # device_id -> reason (e.g. "revoked")

    def add_public_key(self, sec1, district=None):
        dev = derive_device_id(sec1)  # also checks the SEC1 shape
        p256.decode_sec1(sec1)
        self.keys[dev] = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), bytes(sec1))
        self.districts[dev] = district
        self.refused.pop(dev, None)
        return dev

    def refuse(self, dev, reason, district=None):
        self.refused[dev] = reason
        self.districts[dev] = district
        self.keys.pop(dev, None)

    def knows(self, dev):
        return dev in self.keys or dev in self.refused


def _der(sig):
    """DER ECDSA-Sig-Value of a 64-byte r||s with r, s in [1, n-1]; None if out of range."""
    out = b""
    for half in (sig[:32], sig[32:]):
        if half >= _N:
            return None
        v = half.lstrip(b"\0")
        if not v:
            return None
        if v[0] & 0x80:
            v = b"\0" + v
        out += b"\x02" + bytes((len(v),)) + v
    return b"\x30" + bytes((len(out),)) + out


def verify_message(data, keyring, now=None, max_ahead=schema.MAX_AHEAD):
    """Check one message; never raises for bad input. now: arrival time (Unix seconds) for the
    check that a window does not end in the future; None skips that check."""
    try:
        dev, payload, tbs, sig = open_envelope(data)
    except EnvelopeError as e:
        return Verdict(False, reason=str(e))
    key = keyring.keys.get(dev)
    if key is None:
        if dev in keyring.refused:
            return Verdict(False, dev, reason="device %s is %s" % (dev, keyring.refused[dev]))
        return Verdict(False, dev, reason="unknown device %s (not in the registry or key given)" % dev,
                       unknown=True)
    der = _der(sig)
    if der is None:
        return Verdict(False, dev, reason="signature r or s is out of range [1, n-1]")
    try:
        key.verify(der, tbs, _ES256)
    except InvalidSignature:
        return Verdict(False, dev, reason="signature does not match the message and public key")
    try:
        obj = decode_payload(payload)
        if type(obj) is dict and "seq" in obj:
            schema.check_summary(obj, dev, now, max_ahead)
            return Verdict(True, dev, obj["seq"], "summary", obj)
        if type(obj) is dict and "kind" in obj:
            schema.check_manifest(obj, dev)
            return Verdict(True, dev, None, "manifest", obj, mh=hashlib.sha256(payload).digest()[:schema.MH_LEN])
        return Verdict(False, dev, reason="payload is neither a summary nor a manifest")
    except (PayloadError, schema.SchemaError) as e:
        return Verdict(False, dev, reason=str(e))
