"""A small city for the web page's tests: a registry and a collector store filled through the real
Collector with summaries signed by real device keys, on the sim board's manifest.

    city = make_city(tmp_path, now)   -> City with .store, .registry, .active, .revoked, .empty, .now
The active device ("north") has 24 h of 5-minute windows ending at `now` (rounded down to 5
minutes) with hourly personal counts (some suppressed, one withheld), a gap of 3 missing
windows, a rejected message and an `online` status; the revoked one ("harbour") has an hour of
data and is revoked in the registry; the empty one ("north") is registered and has sent nothing;
a stranger's summary is held (signed by a device the collector's key ring does not know yet).
"""
import json
import math
import os
from pathlib import Path

from agent import crypto
from agent.core import cose, summary
from agent.board import load_profile
from agent.privacy.manifest import board_manifest, payload as manifest_payload
from agent.store import identity
from provisioning.city.collector import Collector
from provisioning.city.verifier import KeyRing
from provisioning.pki.registry import Registry

ROOT = Path(__file__).resolve().parents[1]
BOARD = json.loads((ROOT / "boards" / "sim.json").read_text())
PROFILE = load_profile(str(ROOT / "boards" / "sim.json"))
WINDOW = 300
MISSING = (40, 41, 42)  # seqs lost in transit on the active device


class SimDevice:
    def __init__(self, district):
        self.key = crypto.generate_signing_key(os.urandom)
        self.dev, self.pub = identity.public_identity(self.key)
        self.district = district
        self.manifest = board_manifest(PROFILE, self.dev)
        self.mh = summary.manifest_hash(manifest_payload(self.manifest))

    def topic(self, kind):
        return "civicmote/v1/%s/%s/%s" % (self.district, self.dev, kind)

    def signed_manifest(self):
        return cose.sign1(manifest_payload(self.manifest), self.key, self.dev.encode())

    def signed_summary(self, seq, t1, q=0):
        return cose.sign1(summary.encode(summary.build(self.dev, seq, t1 - WINDOW, t1, metrics(seq, t1), self.mh,
                                                       health={"up": seq * WINDOW, "q": q, "err": seq // 100,
                                                               "net": 1, "deg": 0})),
                          self.key, self.dev.encode())

    def record(self, contact="sensors@city.example, 555-0100"):
        measures = [{"metric": n, "unit": m["unit"], "class": m["class"]} for n, m in sorted(BOARD["metrics"].items())]
        return {"device_id": self.dev, "public_key": self.pub.hex(), "district": self.district, "board": "sim",
                "target": "sim://" + self.dev, "location": "Market Square, pole 7", "contact": contact,
                "measures": measures}


def metrics(seq, t1):
    """Released values of one window; deterministic in seq so tests can recompute them."""
    day = 2 * math.pi * ((t1 - 15 * 3600) % 86400) / 86400  # warmest at 15:00 UTC
    temp = round(100 + 35 * math.sin(day + math.pi / 2)) + seq % 3  # 6.5 .. 13.7 degC in steps of 0.1
    m = {"temperature": [temp, temp - 4, temp + 5], "humidity": [60 + seq % 20], "pressure": [10120 + seq % 9],
         "co2": [410 + seq % 30, 450 + seq % 30], "pm2_5": [5 + seq % 11, 9 + seq % 11],
         "pm10": [9 + seq % 13, 15 + seq % 13], "noise": [520 + seq % 150, 400, 800 + seq % 90]}
    if seq % 17 == 5:
        m["humidity"] = [None]  # an empty window
    if t1 % 3600 == 0:
        hour = t1 // 3600
        m["footfall"] = {"suppressed": True} if hour % 6 == 0 else {"n": 20 + hour % 40}
        m["presence"] = {"withheld": "budget"} if hour % 11 == 0 else {"n": 30 + hour % 25}
    return m


class City:
    pass


class _Collectors:
    """The same messages into several stores (the first one's events are returned)."""

    def __init__(self, ring, stores):
        self.all = [Collector(ring, s) for s in stores]

    def handle(self, topic, payload, received_at):
        return [c.handle(topic, payload, received_at=received_at) for c in self.all][0]

    def close(self):
        for c in self.all:
            c.close()


def make_city(tmp_path, now, also=()):
    """also: more stores (e.g. a postgresql:// URL) that receive every message city.store does."""
    city = City()
    city.now = now
    city.store = str(tmp_path / "city.db")
    city.registry = str(tmp_path / "registry.db")
    city.active, city.revoked, city.empty = SimDevice("north"), SimDevice("harbour"), SimDevice("north")
    reg = Registry(city.registry, create=True)
    for d in (city.active, city.revoked, city.empty):
        reg.register(d.record())
    reg.set_status(city.revoked.dev, "revoked", "key compromised")
    ring = KeyRing()
    for d in (city.active, city.revoked, city.empty):
        ring.add_public_key(d.pub)
    c = _Collectors(ring, [city.store] + list(also))
    end = now - now % WINDOW
    a = city.active
    c.handle(a.topic("manifest"), a.signed_manifest(), received_at=end - 86400)
    c.handle(a.topic("status"), b"online", received_at=end - 86400)
    city.windows = []
    for i in range(288):
        seq, t1 = 1000 + i, end - 86400 + WINDOW * (i + 1)
        if i in MISSING:
            continue
        c.handle(a.topic("summary"), a.signed_summary(seq, t1, q=i % 4), received_at=t1 + 1)
        city.windows.append((seq, t1))
    bad = bytearray(a.signed_summary(5000, end))
    bad[-1] ^= 1
    c.handle(a.topic("summary"), bytes(bad), received_at=end)
    r = city.revoked
    c.handle(r.topic("manifest"), r.signed_manifest(), received_at=end - 7200)
    for i in range(12):
        c.handle(r.topic("summary"), r.signed_summary(i + 1, end - 7200 + WINDOW * (i + 1)), received_at=end - 3600)
    c.handle(r.topic("status"), b"offline", received_at=end - 3600)
    city.stranger = SimDevice("north")  # provisioned after the collector's registry export: held
    [held] = c.handle(city.stranger.topic("summary"), city.stranger.signed_summary(1, end), received_at=end)
    assert held["event"] == "held", held
    c.close()
    reg.close()
    city.ring = ring
    return city
