"""A simulated fleet: thousands of devices, each with its own key and certificate (CPython only).

    city = FleetCity.create(folder, devices=2000, rng=os.urandom)   # CA, certificates, registry export
    results = asyncio.run(publish(city, host, port, rate=500, per_device=2))

Every device is what a provisioned pole is to the city: a P-256 key (its identity and its COSE
signing key), a certificate with CN = its device id from a CA made for the run, a manifest, and
signed summaries published at QoS 1 over its own mutual-TLS MQTT connection under
civicmote/v1/<district>/<id>/. Device keys live in this process; for TLS they are also written,
owner-only, into FOLDER/devices/ (the ssl module loads keys from files). The CA's passphrase is
random and never written. One asyncio loop drives every connection (the agent's MQTT codec and
parser, not a client library), so one process can hold thousands of them.
"""
import asyncio
import json
import os
import secrets
import ssl
import time
from pathlib import Path

from agent import crypto
from agent.core import cbor, cose, summary
from agent.net import mqtt_codec
from agent.net.mqtt_packets import Connack, Puback
from agent.net.mqtt_parser import Parser
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
        writer.write(mqtt_codec.connect(d.dev, keepalive=600, clean_session=True))
        conn = _Conn(reader, writer)
        ack = await _expect(reader, conn.parser, Connack, timeout)
        if ack.return_code != 0:
            raise ConnectionError("%s: CONNACK %d" % (d.dev, ack.return_code))
        await conn.publish(d.topic("manifest"), d.manifest(), timeout)
        return conn


async def publish(city, host, port, rate, per_device, timeout=30.0, handshakes=64):
    """Connect every device (mutual TLS; `port` may be a list: device i uses port[i % len]), send
    its manifest, then `per_device` summaries each at a total of `rate` per second, spread evenly. -> {"sent": {(dev, seq): (published_at, acked_at)},
    "errors": [str], "connect_s": s, "publish_s": s}."""
    gate = asyncio.Semaphore(handshakes)
    t = time.monotonic()
    ports = port if isinstance(port, (list, tuple)) else [port]  # a cluster: devices spread over its nodes
    conns = await asyncio.gather(*[_connect(city, d, host, ports[i % len(ports)], gate, timeout)
                                   for i, d in enumerate(city.devices)],
                                 return_exceptions=True)
    connect_s = time.monotonic() - t
    errors = ["%s: %s" % (d.dev, c) for d, c in zip(city.devices, conns) if isinstance(c, BaseException)]
    sent = {}
    loop = asyncio.get_running_loop()
    start = loop.time() + 0.2
    n = len(city.devices)

    async def run(i, d, conn):
        for k in range(per_device):
            at = start + (k * n + i) / rate
            delay = at - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            seq = k + 1
            payload = d.summary(seq)
            published = time.time()
            await conn.publish(d.topic("summary"), payload, timeout)
            sent[(d.dev, seq)] = (published, time.time())

    live = [(i, d, c) for i, (d, c) in enumerate(zip(city.devices, conns)) if not isinstance(c, BaseException)]
    t = time.monotonic()
    done = await asyncio.gather(*[run(i, d, c) for i, d, c in live], return_exceptions=True)
    publish_s = time.monotonic() - t
    errors += ["%s: %s" % (d.dev, r) for (_, d, _), r in zip(live, done) if isinstance(r, BaseException)]
    for _, _, c in live:
        try:
            c.writer.write(mqtt_codec.disconnect())
            c.writer.close()
        except Exception:
            pass
    return {"sent": sent, "errors": errors, "connect_s": connect_s, "publish_s": publish_s}
