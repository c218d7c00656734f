"""Simulated devices that take updates, at the protocol level (CPython only).

    results = asyncio.run(run_fleet(city, host, port, ca_key, release_keys, bad=set_of_ids, until=...))

Each device of a FleetCity (provisioning/demo/fleet.py: its own key, certificate from the fleet's
CA, registered district) holds its own mutual-TLS MQTT session and speaks the update topics of
docs/wire-format.md, "Updates", as a device does: it subscribes to its ota/down and its
district's ota/order, asks for the order on connect, checks every order (agent.ota.docs: the
rollout certificate against the CA, district, seq, window, membership) and every release (pinned
release keys, seq, class), downloads the artefact in 4 KiB blocks with CRC and a running
SHA-256, re-requests after `retry_s`, and signs every status with its device key.

What it does not do is install: the trial is `trial_s` of waiting, after which a device in `bad`
(the crash-looping release) reports rolled_back / crash_loop and never retries that release,
and any other reports confirmed and runs the release (its `sw`). The real device side (the Pi
updater, the board slots) is tested on its own; this stands in for a fleet of them.
"""
import asyncio
import hashlib
import struct
import time
import zlib

from agent.core import cbor
from agent.crypto import verifying_key_from_sec1
from agent.net import mqtt_codec
from agent.net.mqtt_packets import Connack, Publish
from agent.net.mqtt_parser import Parser
from agent.ota import docs
from provisioning.demo.fleet import PREFIX, _context

BLOCK = 4096
BLOCKS_PER_REQ = 4


class OtaDevice:
    def __init__(self, city, d, ca_key, release_keys, bad=False, retry_s=2.0, trial_s=0.2, classes=("cpython3",)):
        self.city, self.d, self.ca_key, self.release_keys = city, d, ca_key, list(release_keys)
        self.bad, self.retry_s, self.trial_s, self.classes = bad, retry_s, trial_s, list(classes)
        self.sw = 0  # release seq running now (0: factory)
        self.last_order = None
        self.refused = 0  # highest release seq refused or rolled back (never retried automatically)
        self.done = set()  # hashes of the releases installed, refused or rolled back: not fetched again
        self.order = None  # the order acted on
        self.rel = None  # (release map, hash) being downloaded
        self.off, self.sha, self.want_until = 0, None, 0
        self.phase = "idle"  # idle | release | download | trial
        self.states = []  # every status sent: (state, reason)
        self.first = {}  # state -> monotonic s it was first reported
        self.orders_seen = []  # (where, order seq) of every order that arrived: "order" (the district topic) or
                               # "down" (the answer to its request)
        self.pid = 0
        self.writer = None
        self.sent_bytes = self.received_bytes = 0

    def topic(self, leaf):
        return "%s/%s/%s/ota/%s" % (PREFIX, self.d.district, self.d.dev, leaf)

    def _send(self, topic, payload, retain=False):
        self.pid = self.pid % 65535 + 1
        pkt = mqtt_codec.publish(topic, payload, qos=1, retain=retain, packet_id=self.pid)
        self.sent_bytes += len(pkt)
        self.writer.write(pkt)

    def request(self, **req):
        self._send(self.topic("req"), cbor.dumps(req))

    def status(self, state, reason="", off=0):
        rseq, release, size = (self.rel[0]["seq"], self.rel[1], self.rel[0]["size"]) if self.rel else (0, b"", 0)
        self.states.append((state, reason))
        self.first.setdefault(state, time.monotonic())
        self._send(self.topic("status"), docs.make_status(self.d.key, self.d.dev, state, reason, rseq, release, off,
                                                          size, self.sw, int(time.time())), retain=True)

    # -- what arrives ------------------------------------------------------------------------------
    def on_message(self, topic, payload):
        kind, body = payload[:1], payload[1:]
        try:
            if kind == b"O":
                self.on_order(body, topic.rsplit("/", 1)[-1])
            elif kind == b"R" and self.phase == "release":
                self.on_release(body)
            elif kind == b"B" and self.phase == "download":
                self.on_block(body)
        except docs.Refused as e:
            self.fail("refused", e.reason)

    def fail(self, state, reason):
        if self.rel is not None:
            self.refused = max(self.refused, self.rel[0]["seq"])
            self.done.add(self.rel[1])
        self.status(state, reason)
        self.rel, self.phase = None, "idle"

    def on_order(self, cose, via="down"):
        from agent.core import cose as cose_mod

        try:
            self.orders_seen.append((via, cbor.loads(cose_mod.decode1(cose).payload).get("seq")))
        except Exception:  # noqa: BLE001 - a malformed order is refused below, with its reason
            pass
        try:
            o = docs.check_order(cose, self.ca_key, verifying_key_from_sec1, self.d.dev, self.d.district,
                                 int(time.time()), self.last_order)
        except docs.Refused as e:
            if e.reason != "stale_order":  # the retained order and the answer to "order" are the same one
                self.status("refused", e.reason)
            return
        self.last_order = o["seq"]
        if o["release"] == b"":  # stop: abandon what has not reached its trial
            if self.phase in ("release", "download"):
                self.status("refused", "stopped")
                self.rel, self.phase = None, "idle"
            return
        if not docs.includes(o, self.d.dev) or self.phase == "trial":
            return
        if (self.rel is not None and self.rel[1] == o["release"]) or o["release"] in self.done:
            return  # already at it, or done with it
        self.order, self.phase = o, "release"
        self.request(op="release", r=o["release"])

    def on_release(self, cose):
        self.rel = None
        r = docs.check_release(cose, self.order, self.release_keys, verifying_key_from_sec1, self.classes, self.sw,
                               self.refused, int(time.time()))
        self.rel = (r, self.order["release"])
        self.off, self.sha, self.phase = 0, hashlib.sha256(), "download"
        self.status("queued")
        self.ask_blocks()

    def ask_blocks(self):
        self.want_until = min(self.rel[0]["size"], self.off + BLOCK * BLOCKS_PER_REQ)
        self.request(op="blk", r=self.rel[1], off=self.off, n=BLOCKS_PER_REQ)

    def on_block(self, body):
        h8, off, crc = body[:8], *struct.unpack(">II", body[8:16])
        data = body[16:]
        if h8 != self.rel[1][:8] or off != self.off or zlib.crc32(data) != crc:
            return  # a duplicate or a damaged block: asked again on the next timeout
        if off + len(data) > self.rel[0]["size"]:
            return self.fail("refused", "bad_size")
        if off == 0:
            self.status("downloading", off=0)
        self.sha.update(data)
        self.off += len(data)
        if self.off == self.rel[0]["size"]:
            if self.sha.digest() != self.rel[0]["sha256"]:
                return self.fail("refused", "bad_digest")
            self.status("verifying", off=self.off)
            self.phase = "trial"
            self.status("trial", off=self.off)
            asyncio.get_running_loop().call_later(self.trial_s, self.after_trial)
        elif self.off >= self.want_until:
            self.ask_blocks()

    def after_trial(self):
        if self.bad:
            self.fail("rolled_back", "crash_loop")
            return
        self.sw = self.rel[0]["seq"]
        self.done.add(self.rel[1])
        self.status("confirmed", off=self.rel[0]["size"])
        self.rel, self.phase = None, "idle"

    def on_timeout(self):
        """Nothing arrived for retry_s: ask again for what is missing."""
        if self.phase == "release":
            self.request(op="release", r=self.order["release"])
        elif self.phase == "download":
            self.ask_blocks()
        elif self.phase == "idle" and self.last_order is None:
            self.request(op="order")

    # -- the session -------------------------------------------------------------------------------
    async def run(self, host, port, stop, gate):
        async with gate:
            reader, self.writer = await asyncio.open_connection(host, port, ssl=_context(self.city.cafile, self.d),
                                                                server_hostname="localhost")
        parser = Parser()
        self.writer.write(mqtt_codec.connect(self.d.dev, keepalive=600, clean_session=True))
        self.writer.write(mqtt_codec.subscribe(1, [(self.topic("down"), 1),
                                                   ("%s/%s/ota/order" % (PREFIX, self.d.district), 1)]))
        self.request(op="order")
        try:
            while not stop.is_set():
                try:
                    data = await asyncio.wait_for(reader.read(65536), self.retry_s)
                except asyncio.TimeoutError:
                    self.on_timeout()
                    continue
                if not data:
                    raise ConnectionError("%s: the broker closed the connection" % self.d.dev)
                self.received_bytes += len(data)
                parser.feed(data)
                while True:
                    ev = parser.next_event()
                    if ev is None:
                        break
                    if isinstance(ev, Connack) and ev.return_code:
                        raise ConnectionError("%s: CONNACK %d" % (self.d.dev, ev.return_code))
                    if isinstance(ev, Publish):
                        if ev.qos:
                            self.writer.write(mqtt_codec.puback(ev.packet_id))
                        self.on_message(ev.topic, bytes(ev.payload))
                await self.writer.drain()
        finally:
            self.writer.close()


async def run_fleet(city, host, port, ca_sec1, release_keys, bad=(), until=None, retry_s=2.0, trial_s=0.2,
                    handshakes=32, timeout=120.0):
    """Run every device of the city until until(devices) is true or `timeout` s; -> the OtaDevices."""
    ca_key = verifying_key_from_sec1(ca_sec1)
    devs = [OtaDevice(city, d, ca_key, release_keys, d.dev in bad, retry_s, trial_s) for d in city.devices]
    stop = asyncio.Event()
    gate = asyncio.Semaphore(handshakes)
    tasks = [asyncio.ensure_future(dv.run(host, port, stop, gate)) for dv in devs]
    end = time.monotonic() + timeout
    try:
        while time.monotonic() < end and not (until and until(devs)):
            failed = [t for t in tasks if t.done() and t.exception() is not None]
            if failed:
                raise failed[0].exception()
            await asyncio.sleep(0.1)
    finally:
        stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)
    return devs


