"""A city in one process for the portable update tests: keys, releases, orders, and a block answerer
standing in for provisioning/city/ota_blocks.py (which is CPython only; tests/test_ota_blocks.py
checks the two answer alike), plus the transport and installer the Fetcher is given."""
import binascii
import hashlib
import struct

from agent import crypto
from agent.core import cbor
from agent.ota import docs
from agent.ota.trust import Trust
from support import seeded_rng

DEV = "cmaaaaaaaaaaaaaaaa"
DISTRICT = "north"
NOW = 1800000000
V = crypto.verifying_key_from_sec1


def _keys(seed, n):
    rng = seeded_rng(seed)
    return [crypto.generate_signing_key(rng) for _ in range(n)]


CA, ROLLOUT, REL1, DEVKEY, STRANGER = _keys(b"ota-fetch", 5)
PINNED = [REL1.public_key().to_sec1()]
CERT = docs.make_rollout_cert(CA, "city-rollout", ROLLOUT.public_key().to_sec1(), NOW + 86400)


def artefact(n):
    """n bytes that differ in every block."""
    out = bytearray(n)
    for i in range(0, n, 64):
        out[i:i + 4] = struct.pack(">I", i)
    return bytes(out)


def release(data, seq=5, key=REL1, classes=None, size=None, sha=None, **kw):
    return docs.make_release(key, key.public_key().to_sec1(), seq, "1.%d" % seq, "agent",
                             classes or docs.device_classes(), len(data) if size is None else size,
                             sha or hashlib.sha256(data).digest(), docs.STATE_FORMAT, b"\x01" * 8, **kw)


def order(rel, seq=3, district=DISTRICT, pct=100, **kw):
    return docs.make_order(ROLLOUT, CERT, "city-rollout", seq, docs.doc_hash(rel) if rel else b"", district, pct,
                           b"saltsalt", kw.pop("nb", NOW - 60), kw.pop("exp", NOW + 3600), **kw)


def trust(classes=None):
    return Trust(CA.public_key(), PINNED, V, classes)


class City:
    """Answers the device's requests from one release and its artefact (served: the bytes served
    for it, which a test may make wrong)."""

    def __init__(self, rel, data, order_msg, prefix="civicmote/v1"):
        self.rel, self.data, self.order = rel, data, order_msg
        self.h = docs.doc_hash(rel) if rel else b""
        self.down = "%s/%s/%s/ota/down" % (prefix, DISTRICT, DEV)
        self.silent = False
        self.requests = []

    def answer(self, payload):
        req = cbor.loads(payload)
        self.requests.append(req)
        if self.silent:
            return []
        if req["op"] == "order":
            return [b"O" + self.order] if self.order else []
        if req["r"] != self.h:
            return []
        if req["op"] == "release":
            return [b"R" + self.rel]
        out = []
        for i in range(req["n"]):
            off = req["off"] + i * 4096
            if off >= len(self.data):
                break
            out.append(block(self.h, off, self.data[off:off + 4096]))
        return out


def block(h, off, data, crc=None):
    c = binascii.crc32(data) & 0xFFFFFFFF if crc is None else crc
    return b"B" + h[:8] + struct.pack(">II", off, c) + data


class Wire:
    """The transport interface (agent/net/__init__.py) as far as the Fetcher uses it, wired to a City."""

    def __init__(self, city):
        self.city = city
        self.connected = True
        self.can_publish = True
        self.statuses = []  # the status payloads, decoded (not verified here: test_ota_docs does)
        self.inbox = []

    def publish(self, topic, payload, qos=1, retain=False, now=None):
        if topic.endswith("/ota/status"):
            from agent.core import cose

            self.statuses.append(cbor.loads(cose.decode1(payload).payload))
        elif topic.endswith("/ota/req"):
            for body in self.city.answer(payload):
                self.inbox.append((self.city.down, body))
        return 1

    def states(self):
        return [(s["state"], s["reason"]) for s in self.statuses]


class Installer:
    limit = 512 * 1024

    def __init__(self):
        self.installed = []
        self._trial = None
        self.confirmed = 0

    def install(self, doc, release_cose, part_path):
        with open(part_path, "rb") as f:
            self.installed.append((doc["seq"], hashlib.sha256(f.read()).digest()))

    def trial(self):
        return self._trial

    def confirm(self):
        self.confirmed += 1
        self._trial = None


def drive(f, wire, steps=400, wall=NOW, start=0, dt=1, until=None):
    """Step the fetcher: deliver what the city sent, tick; returns the monotonic time reached."""
    now = start
    for _ in range(steps):
        while wire.inbox:
            topic, body = wire.inbox.pop(0)
            f.offer(topic, body, now)
        f.tick(now, wall, wire)
        now += dt
        if until is not None and until():
            break
    return now
