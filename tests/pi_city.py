"""A city and a Raspberry Pi that updates over the air, all on this machine (issue 23 tests).

    city = PiCity(folder).start()   CA, a device provisioned with the real `provision` (--target
                                    DIR, a tiny CPython board with short windows), broker-config,
                                    Mosquitto, `civicmote collect` signing receipts, release keys
                                    pinned, an install root (ROOT/releases/0 = this worktree's code)
    city.boot()                     the generated units (provisioning/device/pi_units.py) run by
                                    tests/pi_support.MiniSystemd: the agent from ROOT/current
    city.seqs()                     the seqs the collector stored for the device, in order
    city.start_updates()            the ACL lines of the update topics and the block server
                                    (provisioning/city/ota_blocks.py) as the city's service, so the
                                    agent fetches over MQTT (agent/ota/fetch.py, pi_agent.py);
    city.publish(rel, art)          the release in its store, and an order for it, retained
    city.stop()
"""
import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from broker import free_port
from delivery_support import tiny_board
from pi_support import MiniSystemd, Signers, init_root
from provision_support import PASSPHRASE, Mosquitto

from provisioning.device import pi_units

CIVICMOTE = str(Path(sys.executable).parent / "civicmote")
WINDOW_S = 2
HEALTH_WINDOWS = 6  # 12 s: a start takes a few seconds before its first summary here (production: 3 x 300 s)


def cli(*argv, env=None):
    p = subprocess.run([CIVICMOTE] + [str(a) for a in argv], capture_output=True, text=True, env=env, timeout=120)
    if p.returncode:
        raise RuntimeError("civicmote %s: exit %d: %s" % (argv[0], p.returncode, p.stderr.strip()))
    return p


class PiCity:
    def __init__(self, folder, window_s=WINDOW_S, stock=False):
        """stock: the Pi's Python has nothing from pip (no paho, no cryptography): this one with -S."""
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.python = sys.executable
        if stock:
            self.python = str(self.folder / "stock-python3")
            Path(self.python).write_text('#!/bin/sh\nexec %s -S "$@"\n' % sys.executable)
            os.chmod(self.python, 0o755)
        self.window_s = window_s
        self.env = dict(os.environ, CIVICMOTE_CA_PASSPHRASE=PASSPHRASE)
        self.port = free_port()
        self.url = "mqtts://127.0.0.1:%d" % self.port
        self.dev_dir = self.folder / "device"
        self.root = self.folder / "opt"
        self.broker_dir = self.folder / "broker"
        self.mosquitto = self.collector = self.systemd = None

    def start(self):
        f, b = self.folder, self.broker_dir
        (f / "board.json").write_text(json.dumps(tiny_board(self.window_s)))
        cli("ca", "init", "--dir", f / "ca", "--json", env=self.env)
        out = cli("provision", "--board", f / "board.json", "--district", "north", "--target", self.dev_dir,
                  "--ca", f / "ca", "--registry", f / "registry.db", "--broker", self.url, "--no-check", "--json",
                  env=self.env).stdout
        self.device_id = json.loads(out.splitlines()[-1])["device_id"]
        cli("broker-config", "--ca", f / "ca", "--registry", f / "registry.db", "--out", b, "--port", self.port,
            "--bind", "127.0.0.1", "--user", "root", "--json", env=self.env)
        from provisioning.pki.ca import load_ca

        self.keys = Signers(load_ca(f / "ca", PASSPHRASE).key)
        (self.dev_dir / "release_keys").write_bytes(self.keys.pinned())
        cfg = json.loads((self.dev_dir / "config.json").read_text())
        cfg["ota_health_windows"] = HEALTH_WINDOWS
        (self.dev_dir / "config.json").write_text(json.dumps(cfg))
        init_root(self.root, self.dev_dir)
        self.mosquitto = Mosquitto(b / "mosquitto.conf", self.port)
        self.collector = subprocess.Popen(
            [CIVICMOTE, "collect", "--broker", self.url, "--registry", b / "registry.json", "--tls-ca", b / "ca.crt",
             "--tls-cert", b / "collector.crt", "--tls-key", b / "collector.key", "--receipt-cert",
             b / "collector.receipt", "--receipt-interval", "0.3", "--max-ahead", "0", "--store", f / "city.db"],
            stdout=subprocess.DEVNULL, stderr=open(f / "collect.log", "wb"))
        # the device only once the collector listens: a summary it never stored would be a gap
        # that no receipt covers (as tests/test_broker_config.py waits)
        self.wait(lambda: "connected to" in (f / "collect.log").read_text(errors="replace"), 30,
                  "the collector did not connect")
        return self

    def start_updates(self):
        """OTA over the device's MQTT session: the ACL lines of the update topics and the block
        server, exactly as tests/ota_board_support.OtaCity adds them (its methods, on this city)."""
        from ota_board_support import OtaCity

        from provisioning.city.ota_blocks import ArtefactStore, BlockServer, Orders

        OtaCity._acl(self)
        self.mosquitto.reload()
        self.store, self.orders = ArtefactStore(self.folder / "store"), Orders()
        self.server = BlockServer(self.store, self.orders)
        OtaCity.start_blocks(self)

    def publish(self, rel, art):
        self.store.add(rel, art)
        order = self.keys.order(rel)
        self.orders.set("north", order)
        self.server.publish_order("north")
        return order

    def units(self):
        restart = "touch %s" % (self.folder / "systemd" / "restart-request")
        return pi_units.units(self.device_id, str(self.dev_dir), self.python, self.url, root=str(self.root),
                              restart_cmd=restart)

    def boot(self, env=None):
        self.systemd = MiniSystemd(self.units(), self.folder / "systemd", env=env).start()
        return self.systemd

    def seqs(self):
        db = self.folder / "city.db"
        if not db.exists():
            return []
        with sqlite3.connect("file:%s?mode=ro" % db, uri=True, timeout=5) as c:
            try:
                return [r[0] for r in c.execute("SELECT seq FROM summaries WHERE device_id = ? ORDER BY received_at",
                                                (self.device_id,))]
            except sqlite3.OperationalError:
                return []

    def receipt_hi(self):
        from agent.runtime.receipts import last_proof

        p = last_proof(str(self.dev_dir))
        return p["seq"] if p else 0

    def wait(self, pred, timeout, what):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if pred():
                return time.monotonic()
            time.sleep(0.05)
        log = (self.folder / "systemd" / "agent.log")
        tail = log.read_text(errors="replace")[-3000:] if log.exists() else ""
        raise AssertionError("%s within %ss; agent log: %s" % (what, timeout, tail))

    def stop(self):
        if getattr(self, "blocks", None) is not None:
            self._stop_blocks.set()
            self.blocks.join(10)
        if self.systemd:
            self.systemd.stop()
        if self.collector:
            self.collector.terminate()
            try:
                self.collector.wait(20)
            except subprocess.TimeoutExpired:
                self.collector.kill()
        if self.mosquitto:
            self.mosquitto.stop()
