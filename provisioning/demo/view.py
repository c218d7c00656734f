"""The city side of `make demo`: the collector fed by a live subscription, drawn as a table (CPython only).

It is the real Collector (verification against the registry export, de-duplication, gaps,
SQLite store) and the real Subscription (mutual TLS with the collector identity that
`civicmote broker-config` wrote); only the drawing is demo-specific.
"""
import time
from pathlib import Path

from rich.table import Table

from agent.board import load_profile
from agent.core import rational
from provisioning.city.collector import Collector
from provisioning.demo.rawcost import raw_stream_bytes
from provisioning.pki.registry_export import load_export
from provisioning.city.subscription import Subscription
from provisioning.city.verifier import KeyRing
from provisioning.language import catalogue, manifest_words

PREFIX = "civicmote/v1"
SHOWN = ("temperature", "pm2_5", "noise", "footfall", "presence")
SUPPRESSED = "suppressed"  # the manifest's own word for it (manifest_words.counts_explained says what it means)


class CollectorFeed:
    def __init__(self, export, host, port, broker_dir, store, protocol=5):
        self.collector = Collector(load_export(str(export), KeyRing()), str(store))
        self.events = []
        b = Path(broker_dir)
        tls = {"cafile": str(b / "ca.crt"), "certfile": str(b / "collector.crt"), "keyfile": str(b / "collector.key")}
        self.sub = Subscription(host, port, "civicmote-demo-collector",
                                [PREFIX + "/+/+/summary", PREFIX + "/+/+/manifest", PREFIX + "/+/+/status"], self._on_message, tls=tls,
                                protocol=protocol)
        self.manifests = {}
        self._res = {}

    def _on_message(self, topic, payload):
        self.events.extend(self.collector.handle(topic, payload))

    def poll(self, wait=0.1):
        """Pump the subscription; -> the collector's new events."""
        self.sub.poll(time.monotonic(), wait=wait)
        out, self.events = self.events, []
        for ev in out:
            if ev["event"] == "manifest":
                self.manifests[ev["device_id"]] = ev
        return out

    def stop(self):
        """Close the subscription; -> totals over all devices."""
        self.sub.close()
        devs = self.collector.devices()
        totals = {"duplicates": 0, "rejected": 0, "bytes": 0, "accepted": 0}
        for d in devs.values():
            for k in totals:
                totals[k] += d.get(k) or 0
        totals["devices"] = devs
        self.collector.close()
        return totals

    # -- drawing -------------------------------------------------------------------------

    def resolution(self, dev, name):
        """The step of a metric's released integers, from the device's verified manifest."""
        if dev not in self._res:
            m = self.collector.devices().get(dev, {}).get("manifest")
            if not m:
                return None
            self._res[dev] = {e["name"]: rational.parse(e["resolution"]) for e in m["metrics"] if "resolution" in e}
        return self._res[dev].get(name)

    def values(self, ev):
        m = ev["m"]
        cells = []
        for name in SHOWN:
            v = m.get(name)
            if v is None:
                cells.append("")
            elif isinstance(v, dict):
                cells.append("%s" % v["n"] if "n" in v else (SUPPRESSED if v.get("suppressed") else v.get("withheld", "?")))
            elif v[0] is None:
                cells.append("-")
            else:
                res = self.resolution(ev["device_id"], name)
                cells.append("%g" % (v[0] * res[0] / res[1]) if res else str(v[0]))
        return cells

    def table(self, rows, expected, received):
        t = Table(title="verified summaries: %d of %d" % (received, expected), title_justify="left")
        for col in ("device", "seq", "window (UTC)", "temp °C", "PM2.5 µg/m³", "noise dB(A)", "people/h (DP)",
                    "phones/h (DP)", "bytes", "signature"):
            t.add_column(col, justify="right" if col not in ("device", "window (UTC)") else "left")
        for ev in rows:
            t.add_row(ev["device_id"], str(ev["seq"]), _window(ev), *self.values(ev), str(ev["bytes"]),
                      "[green]verified[/green]" if ev.get("mh_ok", True) else "[yellow]verified, old manifest[/yellow]")
        return t

    def line(self, ev):
        return "   %s seq %-3d %s  temp %s  PM2.5 %s  noise %s  people/h %s  phones/h %s  %d bytes  verified" % (
            ev["device_id"], ev["seq"], _window(ev), *self.values(ev), ev["bytes"])

    def manifest(self, dev):
        """The device's verified manifest, or None before it arrived."""
        return self.collector.devices().get(dev, {}).get("manifest")

    def manifest_text(self, dev, lang="en"):
        m = self.manifest(dev)
        return manifest_words.describe(m, catalogue.load(lang)) if m else "(no manifest received from %s)" % dev

    def counts_explained(self, dev, lang="en"):
        """One line on what a noisy or suppressed count means, in the manifest's words."""
        m = self.manifest(dev)
        return manifest_words.counts_explained(m, catalogue.load(lang)) if m else ""

    @staticmethod
    def raw_stream_bytes(board_path, seconds, start_s):
        return raw_stream_bytes(load_profile(str(board_path)), seconds, start_s * 1000)


def _window(ev):
    return "%s-%s" % (time.strftime("%m-%d %H:%M", time.gmtime(ev["t0"])), time.strftime("%H:%M", time.gmtime(ev["t1"])))
