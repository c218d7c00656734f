"""The city's OTA block server: answers devices' `ota/req` with orders, releases and blocks (CPython only).

Sans-I/O core, embeddable by the rollout service (provisioning/ota/, issue 23c), which owns the
MQTT session, the orders and the admission policy:

    store = ArtefactStore(folder)                  releases and artefacts, keyed by release hash
    h = store.add(release_cose, artefact_path)     -> the release hash (sha256 of the COSE bytes)
    srv = BlockServer(store, order_for, prefix="civicmote/v1", admit=None, on_request=None)
    srv.REQ_FILTER                                 "civicmote/v1/+/+/ota/req": subscribe to it (QoS 1)
    for topic, payload in srv.handle(topic, payload, now):
        publish(topic, payload, qos=1, retain=False)            every reply: QoS 1, not retained
    srv.order_message(order_cose) -> b"O" + order  the retained payload of PREFIX/{district}/ota/order

The hooks (all optional except order_for):
    order_for(district, dev) -> order COSE bytes, or None        the order in force for this device
                                                                 (answers {"op": "order"})
    admit(district, dev, release_hash, off) -> bool              False: the block request is not
                                                                 answered now (the device asks again
                                                                 after 10 s): the concurrent-download
                                                                 cap. Releases and orders are always answered.
    on_request(district, dev, request map, now) -> None          every well-formed request (the rollout
                                                                 service's "last seen", downloads in progress)

Wire (docs/wire-format.md, "Updates"; /work/notes/ota-spec.md): a request is the CBOR map
{"op": "order"} | {"op": "release", "r": hash32} | {"op": "blk", "r": hash32, "off": uint,
"n": 1..4}; replies go to PREFIX/{district}/{dev}/ota/down as b"O" + order, b"R" + release, or
b"B" + hash[:8] + u32 BE offset + u32 BE CRC-32 of data + data (4096 bytes, the last one
shorter). A block request for an unknown release, an offset not on a block boundary or past the
artefact's end gets no answer (the device counts it as unanswered). The topic names the device:
the broker's ACL lets a device write only its own `ota/req`, so a reply goes to the device that
asked and to no other.

`python -m provisioning.city.ota_blocks --broker mqtts://HOST:PORT --tls-ca ... --tls-cert ...
--tls-key ... --store DIR [--order FILE ...]` runs it alone (tests, a lab): one paho session, the
orders given as files (each published retained to its district and answered on request).
"""
import binascii
import hashlib
import os
import struct
from pathlib import Path

from agent.core import cbor
from agent.errors import AgentError

PREFIX = "civicmote/v1"
BLOCK = 4096  # bytes per block: with its 17-byte head and the topic, under the broker's 16 KiB cap
MAX_N = 4  # blocks per request
MAX_REQUEST = 128  # bytes: a request is about 60


def block_message(release_hash, off, data):
    """b"B" + hash[:8] + u32 offset + u32 CRC-32(data) + data: one block on `ota/down`."""
    return b"B" + bytes(release_hash[:8]) + struct.pack(">II", off, binascii.crc32(data) & 0xFFFFFFFF) + bytes(data)


class ArtefactStore:
    """A folder of releases and their artefacts: HASH.release (the COSE bytes) and HASH.bin, HASH the
    hex SHA-256 of the release's COSE bytes (what an order names). Written beside, renamed in."""

    def __init__(self, folder):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)

    def add(self, release_cose, artefact):
        """Keep a release and its artefact (a path or bytes); returns the release hash (32 bytes).
        The release is not checked here: the device checks it (and `civicmote release show`)."""
        h = hashlib.sha256(bytes(release_cose)).digest()
        base = self.folder / h.hex()
        data = Path(artefact).read_bytes() if isinstance(artefact, (str, Path)) else bytes(artefact)
        for suffix, body in ((".bin", data), (".release", bytes(release_cose))):
            tmp = Path(str(base) + suffix + ".tmp")
            tmp.write_bytes(body)
            os.replace(tmp, str(base) + suffix)
        return h

    def release(self, h):
        """The release's COSE bytes, or None."""
        try:
            return (self.folder / (bytes(h).hex() + ".release")).read_bytes()
        except (OSError, ValueError):
            return None

    def size(self, h):
        try:
            return (self.folder / (bytes(h).hex() + ".bin")).stat().st_size
        except OSError:
            return None

    def read(self, h, off, n):
        with open(self.folder / (bytes(h).hex() + ".bin"), "rb") as f:
            f.seek(off)
            return f.read(n)


def parse_topic(topic, prefix=PREFIX):
    """(district, dev) of PREFIX/{district}/{dev}/ota/req, or None."""
    if not topic.startswith(prefix + "/") or not topic.endswith("/ota/req"):
        return None
    parts = topic[len(prefix) + 1:-len("/ota/req")].split("/")
    if len(parts) != 2 or not all(parts):
        return None
    return parts[0], parts[1]


def parse_request(payload):
    """The request map, checked; raises AgentError/ValueError naming the fault."""
    if len(payload) > MAX_REQUEST:
        raise ValueError("request of %d bytes exceeds %d" % (len(payload), MAX_REQUEST))
    req = cbor.loads(bytes(payload), max_depth=2, max_items=8)
    if not isinstance(req, dict) or req.get("op") not in ("order", "release", "blk"):
        raise ValueError("request: op must be order, release or blk")
    if req["op"] != "order":
        r = req.get("r")
        if not isinstance(r, bytes) or len(r) != 32:
            raise ValueError("request: r must be a 32-byte release hash")
    if req["op"] == "blk":
        off, n = req.get("off"), req.get("n")
        if not isinstance(off, int) or isinstance(off, bool) or off < 0 or off % BLOCK:
            raise ValueError("request: off must be a multiple of %d" % BLOCK)
        if not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= MAX_N:
            raise ValueError("request: n must be 1..%d" % MAX_N)
    return req


class BlockServer:
    """See the module docstring. `served` counts replies by kind ("O", "R", "B"); `bytes_out` the
    payload bytes of every reply; `refused` requests that were malformed."""

    def __init__(self, store, order_for, prefix=PREFIX, admit=None, on_request=None):
        self.store = store
        self.order_for = order_for
        self.prefix = prefix
        self.admit = admit
        self.on_request = on_request
        self.REQ_FILTER = prefix + "/+/+/ota/req"
        self.served = {"O": 0, "R": 0, "B": 0}
        self.bytes_out = 0
        self.refused = 0

    def down_topic(self, district, dev):
        return "%s/%s/%s/ota/down" % (self.prefix, district, dev)

    def order_topic(self, district):
        return "%s/%s/ota/order" % (self.prefix, district)

    @staticmethod
    def order_message(order_cose):
        return b"O" + bytes(order_cose)

    def handle(self, topic, payload, now=None):
        """The replies [(topic, payload)] to one message on REQ_FILTER (none for a bad request)."""
        who = parse_topic(topic, self.prefix)
        if who is None:
            return []
        district, dev = who
        try:
            req = parse_request(payload)
        except (AgentError, ValueError):
            self.refused += 1
            return []
        if self.on_request is not None:
            self.on_request(district, dev, req, now)
        out = self._answer(district, dev, req)
        for _, body in out:
            self.served[body[:1].decode()] += 1
            self.bytes_out += len(body)
        return out

    def _answer(self, district, dev, req):
        down = self.down_topic(district, dev)
        op = req["op"]
        if op == "order":
            order = self.order_for(district, dev)
            return [(down, self.order_message(order))] if order else []
        h = req["r"]
        if op == "release":
            rel = self.store.release(h)
            return [(down, b"R" + rel)] if rel else []
        size = self.store.size(h)
        off = req["off"]
        if size is None or off >= size:
            return []
        if self.admit is not None and not self.admit(district, dev, h, off):
            return []
        out = []
        for i in range(req["n"]):
            at = off + i * BLOCK
            if at >= size:
                break
            out.append((down, block_message(h, at, self.store.read(h, at, BLOCK))))
        return out


# -- standalone: one paho session (tests, a lab; the rollout service embeds BlockServer instead) --

class Orders:
    """Orders by district, for the standalone server: order_for() answers every device of the district."""

    def __init__(self):
        self.by_district = {}

    def set(self, district, order_cose):
        self.by_district[district] = bytes(order_cose)

    def __call__(self, district, dev):
        return self.by_district.get(district)


def serve(server, host, port, tls, client_id="civicmote-ota-blocks", orders=None, ready=None, stop=None):
    """Run server on a paho session until `stop` (a threading.Event) is set, KeyboardInterrupt or
    SIGTERM: subscribe to its requests, publish each district's order retained (orders: an
    Orders), answer every request. publish_order(district) then re-publishes one."""
    import ssl
    import threading

    import paho.mqtt.client as paho

    c = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=True)
    if tls:
        ctx = ssl.create_default_context(cafile=tls["cafile"])
        ctx.load_cert_chain(tls["certfile"], tls["keyfile"])
        c.tls_set_context(ctx)
    c.max_inflight_messages_set(64)
    up = threading.Event()
    lock = threading.Lock()  # paho's publish from this thread and the network thread

    def on_connect(client, userdata, flags, reason, properties):
        client.subscribe(server.REQ_FILTER, 1)
        for district, order in (orders.by_district.items() if orders else ()):
            client.publish(server.order_topic(district), server.order_message(order), 1, True)
        up.set()

    def on_message(client, userdata, msg):
        for topic, body in server.handle(msg.topic, msg.payload):
            client.publish(topic, body, 1, False)

    def publish_order(district):
        with lock:
            c.publish(server.order_topic(district), server.order_message(orders.by_district[district]), 1, True)

    server.publish_order = publish_order

    c.on_connect = on_connect
    c.on_message = on_message
    c.connect(host, port, keepalive=30)
    c.loop_start()
    try:
        up.wait(30)
        if ready is not None:
            ready()
        (stop or threading.Event()).wait()
    finally:
        c.loop_stop()
        c.disconnect()


def main(argv=None):
    import argparse
    import signal
    import sys

    from provisioning.broker_url import parse as parse_broker_url

    ap = argparse.ArgumentParser(description="the city's OTA block server, alone on one MQTT session")
    ap.add_argument("--broker", required=True)
    ap.add_argument("--tls-ca")
    ap.add_argument("--tls-cert")
    ap.add_argument("--tls-key")
    ap.add_argument("--store", required=True, help="the artefact store folder (HASH.release, HASH.bin)")
    ap.add_argument("--order", action="append", default=[], metavar="DISTRICT=FILE",
                    help="an order's COSE bytes for a district (repeatable)")
    ap.add_argument("--prefix", default=PREFIX)
    args = ap.parse_args(argv)
    host, port, use_tls = parse_broker_url(args.broker)
    orders = Orders()
    for spec in args.order:
        district, _, path = spec.partition("=")
        orders.set(district, Path(path).read_bytes())
    tls = {"cafile": args.tls_ca, "certfile": args.tls_cert, "keyfile": args.tls_key} if use_tls else None
    signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))
    server = BlockServer(ArtefactStore(args.store), orders, prefix=args.prefix)
    try:
        serve(server, host, port, tls, orders=orders, ready=lambda: print("ota blocks: serving", flush=True))
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
