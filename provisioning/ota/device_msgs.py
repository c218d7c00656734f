"""What devices send the rollout service, checked: `ota/req` and device-signed `ota/status` (CPython only).

    kind, district, dev = parse_topic(prefix, topic)            # or None: not ours
    st = check_status(payload, ring, dev, district)              # or raise Refused(reason)
    req = check_request(payload)                                 # or raise Refused(reason)

A status is believed only as the collector believes a summary: the one accepted COSE_Sign1
envelope (city/envelope.py), the kid an active device of the registry's key ring, the signature
valid under that device's key, the payload a status (agent.ota.docs) naming the same device,
published under that device's own topic and its registered district. Requests are not signed
(the broker's ACL says who may write a device's `ota/req`); they only ask for public data.
"""
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from agent.core import cbor
from agent.errors import AgentError
from provisioning.city.envelope import EnvelopeError, open_envelope
from provisioning.city.verifier import _der as der_signature

_ES256 = ec.ECDSA(hashes.SHA256())
MAX_REQUEST = 128  # bytes; the largest request is about 60
OPS = ("order", "release", "blk")


class Refused(Exception):
    """A message from a device that is not taken; str(e) says why."""


def parse_topic(prefix, topic):
    """("req" | "status", district, dev) for PREFIX/{district}/{dev}/ota/(req|status), else None."""
    head = prefix.rstrip("/") + "/"
    if not topic.startswith(head):
        return None
    parts = topic[len(head):].split("/")
    if len(parts) != 4 or parts[2] != "ota" or parts[3] not in ("req", "status") or not parts[0] or not parts[1]:
        return None
    return parts[3], parts[0], parts[1]


def check_status(payload, ring, dev, district):
    """The status map of a device-signed status published on dev's topic; raise Refused."""
    from agent.ota import docs

    try:
        kid, body, tbs, sig = open_envelope(payload)
    except EnvelopeError as e:
        raise Refused(str(e))
    if kid != dev:
        raise Refused("status signed by %s, published on the topic of %s" % (kid, dev))
    key = ring.keys.get(dev)
    if key is None:
        raise Refused("device %s is %s" % (dev, ring.refused.get(dev, "not in the registry")))
    if ring.districts.get(dev) not in (None, district):
        raise Refused("published under district %r, but %s is in district %r" % (district, dev,
                                                                               ring.districts.get(dev)))
    der = der_signature(sig)
    try:
        if der is None:
            raise InvalidSignature()
        key.verify(der, tbs, _ES256)
    except InvalidSignature:
        raise Refused("status signature does not match %s's key" % dev)
    try:
        st = docs.open_status(body)
    except AgentError as e:
        raise Refused("status: %s" % e)
    if st["dev"] != dev:
        raise Refused("status about %s, signed by %s" % (st["dev"], dev))
    return st


def check_request(payload):
    """The request map ({"op": ...}); raise Refused naming the fault."""
    if len(payload) > MAX_REQUEST:
        raise Refused("request of %d bytes (at most %d)" % (len(payload), MAX_REQUEST))
    try:
        req = cbor.loads(bytes(payload), max_depth=2, max_items=8, tags=())
    except AgentError as e:
        raise Refused("request: %s" % e)
    if not isinstance(req, dict) or req.get("op") not in OPS:
        raise Refused("request: not a map with op one of %s" % ", ".join(OPS))
    return req
