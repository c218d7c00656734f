"""A simulated fleet: thousands of devices, each with its own key and certificate (CPython only).

    city = FleetCity.create(folder, devices=2000, rng=os.urandom)   # CA, certificates, registry export
    results = asyncio.run(publish(city, host, port, rate=500, per_device=2))

Every device is what a provisioned pole is to the city: a P-256 key (its identity and its COSE
signing key), a certificate with CN = its device id from a CA made for the run, a manifest, and
signed summaries published at QoS 1 over its own mutual-TLS MQTT connection under
civicmote/v1/<district>/<id>/. Device keys live in this process; for TLS they are also written,
owner-only, into FOLDER/devices/ (the ssl module loads keys from files). The CA's passphrase is
random and never written. One asyncio loop drives every connection (the agent's MQTT codec and
parser, not a client library), so one process can hold thousands of them. Given several
broker nodes, a device that loses its connection moves to the next node and resends what was
not acknowledged, as a real device's outbox does; the report counts reconnects and resends.
"""
import asyncio
import json
import os
import random
import secrets
import ssl
import time
from pathlib import Path

from agent import crypto
from agent.core import cbor, cose, summary
from agent.net import mqtt_codec
from agent.net.mqtt_packets import Connack, Puback
from agent.net.mqtt_parser import Parser
from agent.net.transport import Backoff
from agent.store import identity
from provisioning.city import broker_config
from provisioning.pki import ca as pki_ca

PREFIX = "civicmote/v1"
T0 = 1767225600  # 2026-01-01 00:00 UTC: windows are numbered from here
WINDOW_S = 300
METRICS = [{"name": "noise_laeq", "unit": "dBA", "window": WINDOW_S, "class": "environmental"},  # sorted by name
           {"name": "pm2_5", "unit": "ug/m3", "window": WINDOW_S, "class": "environmental"},
           {"name": "temperature", "unit": "degC", "window": WINDOW_S, "class": "environmental"}]


class SimDevice:
    def __init__(self, key, district, folder):
        self.key = key
        self.dev, self.pub = identity.public_identity(key)
        self.district = district
        self.certfile = str(Path(folder) / (self.dev + ".crt"))
        self.keyfile = str(Path(folder) / (self.dev + ".key"))
        m = {"kind": "manifest", "v": 1, "dev": self.dev, "board": "fleet-sim", "metrics": METRICS}
        self.manifest_payload = cbor.dumps(m)
        self.mh = summary.manifest_hash(self.manifest_payload)

    def topic(self, kind):
        return "%s/%s/%s/%s" % (PREFIX, self.district, self.dev, kind)

    def manifest(self):
        return cose.sign1(self.manifest_payload, self.key, self.dev.encode())

    def summary(self, seq, boot=1):
        n = sum(self.dev.encode()) + seq
        m = {"temperature": [150 + n % 100, 140 + n % 90, 170 + n % 110], "pm2_5": [n % 40, n % 30, n % 60],
             "noise_laeq": [550 + n % 200]}
        s = summary.build(self.dev, seq, T0 + WINDOW_S * seq, T0 + WINDOW_S * (seq + 1), m, self.mh,
                          health={"boot": boot, "up": WINDOW_S * seq, "q": 0})
        return cose.sign1(summary.encode(s), self.key, self.dev.encode())


class FleetCity:
    """The fleet and the city's side of its trust: CA, broker folder, registry export."""

    def __init__(self, folder, devices, ca):
        self.folder = Path(folder)
        self.devices = devices
        self.ca = ca
        self.cafile = str(self.folder / "ca" / "ca.crt")
        self.export = str(self.folder / "registry-export.json")
        self.broker_dir = self.folder / "broker"

    @classmethod
    def create(cls, folder, devices, districts=8, rng=os.urandom):
        folder = Path(folder)
        dev_dir = folder / "devices"
        dev_dir.mkdir(parents=True, exist_ok=True)
        ca, _ = pki_ca.init_ca(folder / "ca", secrets.token_hex(16), common_name="civicmote fleet CA")
        fleet = []
        for i in range(devices):
            d = SimDevice(crypto.generate_signing_key(rng), "district%02d" % (i % districts), dev_dir)
            cert = ca.issue_device(d.pub, d.dev)
            _write(d.certfile, cert.encode())
            _write(d.keyfile, identity.tls_key_pem(d.key), private=True)
            d.certificate = cert
            fleet.append(d)
        city = cls(folder, fleet, ca)
        records = [{"device_id": d.dev, "public_key": d.pub.hex(), "status": "active", "district": d.district,
                    "board": "fleet-sim", "certificate": d.certificate, "updated": time.time()} for d in fleet]
        _write(city.export, json.dumps({"version": 1, "devices": records}).encode())
        city.records = records
        return city

    def broker_config(self, port, user=None):
        """broker-config's Mosquitto folder for this fleet; -> its summary dict."""
        return broker_config.write(self.ca, self.records, self.broker_dir, port=port, bind="127.0.0.1", user=user)


def _write(path, data, private=False):
    """A plain write (a throw-away fleet needs no fsync); keys owner-only from the first byte."""
    fd = os.open(str(path), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600 if private else 0o644)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def _context(cafile, d):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_verify_locations(cafile)
    ctx.load_cert_chain(d.certfile, d.keyfile)
    return ctx


async def _expect(reader, parser, kind, timeout):
    while True:
        ev = parser.next_event()
        if ev is not None:
            if isinstance(ev, kind):
                return ev
            continue
        data = await asyncio.wait_for(reader.read(4096), timeout)
        if not data:
            raise ConnectionError("the broker closed the connection")
        parser.feed(data)


class _Conn:
    def __init__(self, reader, writer):
        self.reader, self.writer, self.parser, self.pid = reader, writer, Parser(), 0

    async def publish(self, topic, payload, timeout):
        self.pid = self.pid % 65535 + 1
        self.writer.write(mqtt_codec.publish(topic, payload, qos=1, packet_id=self.pid))
        ack = await _expect(self.reader, self.parser, Puback, timeout)
        if ack.packet_id != self.pid:
            raise ConnectionError("PUBACK for %d, expected %d" % (ack.packet_id, self.pid))


async def _connect(city, d, host, port, gate, timeout):
    async with gate:  # at most so many TLS handshakes at once
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(host, port, ssl=_context(city.cafile, d), server_hostname="localhost"), timeout)
    try:
        writer.write(mqtt_codec.connect(d.dev, keepalive=600, clean_session=True))
        conn = _Conn(reader, writer)
        ack = await _expect(reader, conn.parser, Connack, timeout)
        if ack.return_code != 0:
            raise ConnectionError("%s: CONNACK %d" % (d.dev, ack.return_code))
        await conn.publish(d.topic("manifest"), d.manifest(), timeout)
        return conn
    except BaseException:
        writer.close()
        raise


class _Device:
    """One simulated device's session: its list of broker nodes, its connection and its outbox.

    Like a real device: its one unacknowledged summary stays in the outbox until a PUBACK; a
    lost connection (closed, reset, no answer within `timeout`) is dropped and the device
    connects again, to the next node of its list, after a backoff with jitter, then resends it
    (the city de-duplicates by (device, seq)). It gives up a summary only after `retry_for` s."""

    def __init__(self, city, d, host, ports, first, gate, timeout, retry_for, rng):
        self.city, self.d, self.host, self.ports, self.node = city, d, host, ports, first
        self.gate, self.timeout, self.retry_for = gate, timeout, retry_for
        self.backoff = Backoff(base=0.5, cap=5.0, rng=rng)
        self.conn = None
        self.nodes_used = []  # the ports it was connected to, in order
        self.tried = False
        self.reconnects = self.resends = 0
        self.failures = []  # what each lost connection said

    async def connect(self):
        port = self.ports[self.node % len(self.ports)]
        again, self.tried = self.tried, True
        self.conn = await _connect(self.city, self.d, self.host, port, self.gate, self.timeout)
        self.reconnects += again
        self.nodes_used.append(port)

    def drop(self, e):
        self.failures.append("%s: %s" % (type(e).__name__, e) if str(e) else type(e).__name__)
        if self.conn is not None:
            self.conn.writer.close()
        self.conn = None
        self.node += 1  # that node may be gone: the next one of the list

    async def send(self, payload):
        """Publish until acknowledged (reconnecting as needed); raises once retry_for has passed."""
        loop = asyncio.get_running_loop()
        give_up = loop.time() + self.retry_for
        tries = 0
        while True:
            try:
                if self.conn is None:
                    await self.connect()
                if tries:
                    self.resends += 1
                tries += 1
                await self.conn.publish(self.d.topic("summary"), payload, self.timeout)
                self.backoff.succeeded()
                return
            except (OSError, EOFError, ConnectionError, asyncio.TimeoutError, ssl.SSLError) as e:
                self.drop(e)
                delay = self.backoff.failed(loop.time())
                if loop.time() + delay > give_up:
                    raise ConnectionError("gave up after %d tries: %s" % (tries, self.failures[-1]))
                await asyncio.sleep(delay)

    def close(self):
        if self.conn is not None:
            try:
                self.conn.writer.write(mqtt_codec.disconnect())
                self.conn.writer.close()
            except Exception:
                pass


async def publish(city, host, port, rate, per_device, timeout=30.0, handshakes=64, retry_for=120.0, rng=None):
    """Connect every device (mutual TLS; `port` may be a list, a cluster's nodes: device i starts
    on port[i % len] and moves to the next on a lost connection), send its manifest, then
    `per_device` summaries each at a total of `rate` per second, spread evenly; a summary not
    acknowledged is resent after reconnecting (see _Device). -> {"sent": {(dev, seq): (first
    published_at, acked_at)}, "published": {(dev, seq)} (sent at least once), "errors": [str]
    (devices that gave up), "reconnects", "resends": counts, "lost": [str] (every lost
    connection, "dev: why"), "nodes": {dev: [the ports it connected to, in order]}, "connect_s",
    "publish_s": s}."""
    gate = asyncio.Semaphore(handshakes)
    rng = rng or random.Random().random
    t = time.monotonic()
    ports = list(port) if isinstance(port, (list, tuple)) else [port]
    devs = [_Device(city, d, host, ports, i, gate, timeout, retry_for, rng) for i, d in enumerate(city.devices)]

    async def first_connect(dv):  # a device that cannot connect now tries again from its publish loop
        try:
            await dv.connect()
        except (OSError, EOFError, ConnectionError, asyncio.TimeoutError, ssl.SSLError) as e:
            dv.drop(e)

    await asyncio.gather(*[first_connect(dv) for dv in devs])
    connect_s = time.monotonic() - t
    sent, published = {}, set()
    loop = asyncio.get_running_loop()
    start = loop.time() + 0.2
    n = len(devs)

    async def run(i, dv):
        for k in range(per_device):
            delay = start + (k * n + i) / rate - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            seq = k + 1
            published.add((dv.d.dev, seq))
            at = time.time()
            await dv.send(dv.d.summary(seq))
            sent[(dv.d.dev, seq)] = (at, time.time())

    t = time.monotonic()
    done = await asyncio.gather(*[run(i, dv) for i, dv in enumerate(devs)], return_exceptions=True)
    publish_s = time.monotonic() - t
    errors = ["%s: %s" % (dv.d.dev, r) for dv, r in zip(devs, done) if isinstance(r, BaseException)]
    for dv in devs:
        dv.close()
    return {"sent": sent, "published": published, "errors": errors,
            "reconnects": sum(dv.reconnects for dv in devs), "resends": sum(dv.resends for dv in devs),
            "lost": ["%s: %s" % (dv.d.dev, f) for dv in devs for f in dv.failures],
            "nodes": {dv.d.dev: dv.nodes_used for dv in devs},
            "connect_s": connect_s, "publish_s": publish_s}
