"""One hour of the emulated street through the agent's own sensor path (shared by the person-level
audit and bench/bench_privacy_usefulness.py): the sim board's PIR and Bluetooth scanner, read
on their own periods by the real drivers, feeding a real MetricSet, exactly as Agent.step does.
"""
import json
from pathlib import Path

from agent.board import load_profile, open_sensors
from agent.runtime.metrics import MetricSet

ROOT = Path(__file__).resolve().parent.parent
SIM = ROOT / "boards" / "sim.json"
T0 = 1764241200  # 2025-11-27 11:00 UTC, an hour boundary
HOUR = 3600


def people_board(path=SIM, **dp_overrides):
    """The sim board reduced to its people sensors (motion, ble) and personal metrics, with its
    shipped privacy settings; dp_overrides: {metric: {field: value}} to change a dp block."""
    raw = json.loads(Path(path).read_text())
    keep_sensors = {n: s for n, s in raw["sensors"].items() if s["driver"] in ("pir", "ble_presence")}
    raw["sensors"] = keep_sensors
    raw["buses"] = {n: b for n, b in raw["buses"].items() if n in {s["bus"] for s in keep_sensors.values()}}
    raw["metrics"] = {n: m for n, m in raw["metrics"].items() if m["class"] == "personal"}
    for name, fields in dp_overrides.items():
        raw["metrics"][name]["dp"] = dict(raw["metrics"][name]["dp"], **fields)
    return load_profile(raw, "people board")


class Recorder(MetricSet):
    """A MetricSet that also remembers what it was fed (nonzero counts; identifiers, once each),
    so the same window can be replayed into fresh MetricSets (a bitmap is idempotent and a zero
    adds nothing, so the replay gives the same window state)."""

    def __init__(self, board, rng):
        MetricSet.__init__(self, board, rng)
        self.fed = []
        self._ids = {}

    def feed(self, metric, value):
        if value:
            self.fed.append((metric, value))
        MetricSet.feed(self, metric, value)

    def identifier(self, metric, ident):
        key = (metric, bytes(ident))
        if key not in self._ids:
            self._ids[key] = True
            self.fed.append((metric, key[1]))
        MetricSet.identifier(self, metric, ident)


def run_hour(board, street, rng, t0=T0):
    """Poll the board's sensors once a second over [t0, t0 + 1 h); -> the fed Recorder."""
    metrics = Recorder(board, rng)
    sensors = open_sensors(board, t0 * 1000, identifier_sink=metrics.identifier, street=street)
    for now_s in range(t0, t0 + HOUR):
        readings = sensors.poll(now_s * 1000)
        for metric, value in sensors.metric_values(readings):
            metrics.feed(metric, value)
    return metrics


def replay(board, fed, rng):
    """A fresh MetricSet holding the recorded window."""
    m = MetricSet(board, rng)
    for metric, value in fed:
        if isinstance(value, bytes):
            m.identifier(metric, value)
        else:
            m.feed(metric, value)
    return m


class MemoryLedger:
    """The ledger's charge() without the flash: grants everything, remembers each request."""

    def __init__(self):
        self.requests = []

    def charge(self, requests, now):
        self.requests.append(list(requests))
        return {}
