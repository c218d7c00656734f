"""City-side verification of signed messages (CPython only).

A message is accepted only if it is a well-formed COSE_Sign1 whose kid names a known device,
whose signature verifies under that device's key, and whose payload is a well-formed summary
or manifest of that same device. Every rejection carries a reason naming what failed.
"""
from agent import crypto
from agent.core import cose, summary
from agent.core.identity import device_id as derive_device_id
from agent.errors import AgentError


class Verdict:
    def __init__(self, ok, device_id=None, seq=None, kind=None, payload=None, reason=None):
        self.ok = ok
        self.device_id = device_id
        self.seq = seq
        self.kind = kind
        self.payload = payload
        self.reason = reason

    def as_dict(self):
        d = {"ok": self.ok, "device_id": self.device_id, "seq": self.seq, "kind": self.kind}
        if not self.ok:
            d["reason"] = self.reason
        return d


class KeyRing:
    """device_id -> verifying key, plus the devices that must be refused and why."""

    def __init__(self):
        self.keys = {}
        self.refused = {}  # device_id -> reason (e.g. "revoked")

    def add_public_key(self, sec1):
        dev = derive_device_id(sec1)
        self.keys[dev] = crypto.verifying_key_from_sec1(sec1)
        return dev

    def refuse(self, dev, reason):
        self.refused[dev] = reason

    def lookup(self, dev):
        if dev in self.refused:
            raise _Reject("device %s is %s" % (dev, self.refused[dev]))
        key = self.keys.get(dev)
        if key is None:
            raise _Reject("unknown device %s (not in the registry or key given)" % dev)
        return key


class _Reject(Exception):
    pass


def verify_message(data, keyring):
    """Check one message; never raises for bad input, returns a Verdict with a reason instead."""
    dev = None
    try:
        msg = cose.decode1(data)
        dev = msg.kid_text()
        key = keyring.lookup(dev)
        payload = msg.verify(key)
        kind, seq, body = classify(payload, dev)
        return Verdict(True, dev, seq, kind, body)
    except _Reject as e:
        return Verdict(False, dev, reason=str(e))
    except AgentError as e:
        return Verdict(False, dev, reason=str(e))


def classify(payload, dev):
    """(kind, seq, decoded payload) for a verified payload; raises AgentError if it is neither."""
    from agent.core import cbor
    from agent.errors import DecodeError

    obj = cbor.loads(payload, max_depth=12)
    if isinstance(obj, dict) and "seq" in obj:
        s = summary.decode(payload)
        if s["dev"] != dev:
            raise DecodeError("summary.dev %s differs from the signer %s" % (s["dev"], dev))
        return "summary", s["seq"], s
    if isinstance(obj, dict) and obj.get("kind") == "manifest":
        if obj.get("dev") != dev:
            raise DecodeError("manifest.dev %r differs from the signer %s" % (obj.get("dev"), dev))
        return "manifest", None, obj
    raise DecodeError("payload is neither a summary nor a manifest")
