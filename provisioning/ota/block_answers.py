"""Answers to a device's `ota/req`: its order, a release, blocks (CPython only).

INTERIM: the device side's block server, provisioning/city/ota_blocks.py (issue 23d), has this
same interface and replaces this module when both are merged (import BlockServer from there and
delete this file); the rollout service only constructs it and calls handle().

    srv = BlockServer(artefacts, order_for, prefix, admit, on_request)
    for topic, payload in srv.handle(topic, payload, now): publish(topic, payload, qos=1, retain=False)

artefacts: release(h) -> COSE bytes or None, size(h) -> bytes or None, read(h, off, n) -> bytes;
order_for(district, dev) -> order COSE or None; admit(district, dev, h, off) -> bool (False: a
block request stays unanswered, the download cap); on_request(district, dev, req, now).
Replies (docs/wire-format.md, "Updates") go to PREFIX/{district}/{dev}/ota/down: b"O" + order,
b"R" + release, b"B" + hash[:8] + u32 BE offset + u32 BE CRC-32 + data (4096 bytes, the last one
shorter). A malformed request, an unknown release, an offset off a block boundary or past the
end gets no answer.
"""
import struct
import zlib

from agent.core import cbor
from agent.errors import AgentError

BLOCK = 4096
MAX_N = 4
MAX_REQUEST = 128


def parse_request(payload):
    if len(payload) > MAX_REQUEST:
        raise ValueError("request of %d bytes" % len(payload))
    req = cbor.loads(bytes(payload), max_depth=2, max_items=8)
    if not isinstance(req, dict) or req.get("op") not in ("order", "release", "blk"):
        raise ValueError("request: op must be order, release or blk")
    if req["op"] != "order" and not (isinstance(req.get("r"), bytes) and len(req["r"]) == 32):
        raise ValueError("request: r must be a 32-byte release hash")
    if req["op"] == "blk":
        off, n = req.get("off"), req.get("n")
        if not _uint(off) or off % BLOCK or not _uint(n) or not 1 <= n <= MAX_N:
            raise ValueError("request: off must be a multiple of %d, n 1..%d" % (BLOCK, MAX_N))
    return req


class BlockServer:
    def __init__(self, store, order_for, prefix="civicmote/v1", admit=None, on_request=None):
        self.store, self.order_for, self.prefix = store, order_for, prefix.rstrip("/")
        self.admit, self.on_request = admit, on_request
        self.served = {"O": 0, "R": 0, "B": 0}
        self.bytes_out = self.refused = 0

    def handle(self, topic, payload, now=None):
        head, tail = self.prefix + "/", "/ota/req"
        parts = topic[len(head):-len(tail)].split("/") if topic.startswith(head) and topic.endswith(tail) else []
        if len(parts) != 2 or not all(parts):
            return []
        district, dev = parts
        try:
            req = parse_request(payload)
        except (AgentError, ValueError):
            self.refused += 1
            return []
        if self.on_request is not None:
            self.on_request(district, dev, req, now)
        down = "%s/%s/%s/ota/down" % (self.prefix, district, dev)
        out = [(down, body) for body in self._answer(district, dev, req)]
        for _, body in out:
            self.served[body[:1].decode()] += 1
            self.bytes_out += len(body)
        return out

    def _answer(self, district, dev, req):
        if req["op"] == "order":
            order = self.order_for(district, dev)
            return [b"O" + bytes(order)] if order else []
        h = req["r"]
        if req["op"] == "release":
            rel = self.store.release(h)
            return [b"R" + bytes(rel)] if rel else []
        size, off = self.store.size(h), req["off"]
        if size is None or off >= size or (self.admit is not None and not self.admit(district, dev, h, off)):
            return []
        out = []
        for at in range(off, min(size, off + req["n"] * BLOCK), BLOCK):
            data = self.store.read(h, at, BLOCK)
            out.append(b"B" + h[:8] + struct.pack(">II", at, zlib.crc32(data) & 0xFFFFFFFF) + data)
        return out


def _uint(v):
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0
