"""What devices send the rollout service: where it came from, and device-signed `ota/status` checked (CPython only).

    kind, district, dev = parse_topic(prefix, topic)            # or None: not ours
    st = StatusChecker(ring).check(payload, dev, district)       # or raise Refused(reason)

A status is believed only as the collector believes a summary: the kid an active device of the
registry's key ring, the signature valid under that device's key, the payload a status
(agent.ota.docs.open_status) naming the same device, published under that device's own topic
and its registered district. Requests (`ota/req`) are not signed: the broker's ACL says who may
write a device's `ota/req`, and they only ask for public data (the block server parses them).
"""
from cryptography.hazmat.primitives import serialization


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


class StatusChecker:
    """check(payload, dev, district) -> the status map of a status dev signed, published on its own
    topic under its registered district; raise Refused. ring: the registry's KeyRing."""

    def __init__(self, ring):
        self.ring = ring
        self._keys = {}  # device_id -> agent verifying key (made once)

    def check(self, payload, dev, district):
        from agent.crypto import verifying_key_from_sec1
        from agent.ota import docs

        ring = self.ring
        pub = ring.keys.get(dev)
        if pub is None:
            raise Refused("device %s is %s" % (dev, ring.refused.get(dev, "not in the registry")))
        if ring.districts.get(dev) not in (None, district):
            raise Refused("published under district %r, but %s is in district %r" % (district, dev,
                                                                                   ring.districts.get(dev)))
        key = self._keys.get(dev)
        if key is None:
            key = self._keys[dev] = verifying_key_from_sec1(pub.public_bytes(
                serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint))
        try:
            return docs.open_status(bytes(payload), key, dev)
        except docs.Refused as e:
            raise Refused("status %s: %s" % (e.reason, e))
