"""Helpers for the whole-agent delivery tests: a tiny simulated board, a device folder, an
in-process collector on a real broker, a fake broker on a chosen port, a simulated clock."""
import json
import socket
import threading
import time
from pathlib import Path

from mqtt_fakes import FakeBroker

from agent.net.transport import Backoff
from provisioning.city.collector import Collector
from provisioning.city.subscription import Subscription
from provisioning.city.verifier import KeyRing

START = 1750000000  # simulated Unix time of the first step (a window boundary for small windows)


def tiny_board(window_s=5):
    """Two emulated sensors read every second, one environmental and one personal metric."""
    return {
        "board": "tiny", "runtime": "cpython", "chip": "sim", "window_s": window_s,
        "buses": {"i2c0": {"type": "i2c", "backing": "emulated"}, "gpio": {"type": "pin", "backing": "emulated"}},
        "sensors": {"env": {"driver": "bme280", "bus": "i2c0", "period_s": 1},
                    "pir": {"driver": "pir", "bus": "gpio", "period_s": 1}},
        "metrics": {
            "temperature": {"sensor": "env", "reading": "temperature_c", "unit": "degC", "class": "environmental",
                            "resolution": "0.1"},
            "motion": {"sensor": "pir", "reading": "motion_events", "unit": "events", "class": "personal",
                       "dp": {"mechanism": "count", "epsilon": "1/2", "hi": 10, "k": 5, "daily_epsilon": "100000"}},
        },
    }


def make_device(folder, window_s=5, district="north"):
    """`civicmote device init` for a tiny board in folder; -> (device_id, public key SEC1 bytes)."""
    from provisioning.cli import main

    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    board = folder.parent / (folder.name + "-board.json")
    board.write_text(json.dumps(tiny_board(window_s)))
    assert main(["device", "init", "--device-dir", str(folder), "--board", str(board), "--district", district,
                 "--json"]) == 0
    record = json.loads((folder / "device.json").read_text())
    return record["device_id"], bytes.fromhex(record["public_key"])


class InProcessCollector:
    """A Collector behind a real Subscription, polled from the test's own thread."""

    def __init__(self, port, pubs, store=None, client_id="test-collector"):
        ring = KeyRing()
        for pub in pubs:
            ring.add_public_key(pub)
        self.collector = Collector(ring, store, max_ahead=None)  # agents on --fast clocks run ahead
        self.events = []
        self.sub = Subscription("127.0.0.1", port, client_id, ["civicmote/v1/+/+/summary", "civicmote/v1/+/+/manifest"],
                                self._on_message, timeout=2.0, backoff=Backoff(base=0.2, cap=1.0))
        self.poll_until(lambda: self.sub.connected, 10, "the collector could not connect")
        self.poll(0.2)  # let the SUBACK arrive before anyone publishes

    def _on_message(self, topic, payload):
        self.events += self.collector.handle(topic, payload)

    def poll(self, wait=0.0):
        self.sub.poll(time.monotonic(), wait)

    def poll_until(self, pred, timeout, what, between=None):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if between is not None:
                between()
            self.poll(0.01)
            if pred():
                return
        raise AssertionError("%s within %ss; events: %r" % (what, timeout, self.events[-5:]))

    def accepted(self):
        """Seqs of accepted summaries, in the order they arrived."""
        return [e["seq"] for e in self.events if e["event"] == "summary"]

    def of(self, kind):
        return [e for e in self.events if e["event"] == kind]

    def close(self):
        self.sub.close()
        self.collector.close()


class SimClock:
    """Wall clock for the agent: one simulated second per step, network deadlines on real time."""

    def __init__(self, start=START):
        self.s = start

    def step(self, agent):
        now = self.s
        self.s += 1
        return agent.step(now, now * 1000, time.monotonic())


def run_windows(agent, clock, n, pace=0.0, between=None):
    """Step until n more windows closed; -> the seqs closed. pace: real seconds slept per step."""
    seqs = []
    target = agent.closed + n
    while agent.closed < target:
        seq = clock.step(agent)
        if seq is not None:
            seqs.append(seq)
        if between is not None:
            between()
        if pace:
            time.sleep(pace)
    return seqs


def drain(agent, collector, pred, timeout=20.0):
    """Flush the agent (no new windows) and poll the collector until pred() and the outbox is empty."""
    collector.poll_until(lambda: pred() and agent.outbox.depth == 0, timeout, "delivery did not complete",
                         between=lambda: agent.flush(time.monotonic()))


class FakeBrokerAt(FakeBroker):
    """mqtt_fakes.FakeBroker on a chosen port, so a real broker can later take the same address.
    Its mode may change while it runs ("silent": never a CONNACK; "no_puback": CONNACK only)."""

    def __init__(self, port, mode="silent"):
        self.mode = mode
        self.srv = socket.socket()
        self.srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.srv.bind(("127.0.0.1", port))
        self.srv.listen(64)
        self.port = port
        self.received, self.packets, self.conns = [], [], []
        self._stop = False
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()
