"""A city that updates a MicroPython board, for tests/test_ota_board.py and bench/bench_ota_board.py.

    city = OtaCity(folder, interpreter="native").start()   BoardCity (CA, provisioned board,
                    Mosquitto) + a pinned release key in the board's folder, the ACL lines of the
                    update topics, a rollout key the CA certifies, and the block server
                    (provisioning/city/ota_blocks.py) on its own MQTT session as the city's service
    rel = city.release(bundle_bytes, seq)      signed by the release key, into the artefact store
    city.order(rel, seq)                       signed by the rollout key, retained for district north
    board = city.board_process().start()   board_main.start() as main.py runs it, restarted when it
                                               restarts itself (exit 75) as a board resets
    board.kill()                               a power cut (SIGKILL)
    board_bundle(folder, patch)                the board's .mpy set as a bundle, optionally changed
"""
import hashlib
import json
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import mpy_port
from board_city import BoardCity, sim_board
from provision_support import PASSPHRASE

ROOT = Path(__file__).resolve().parent.parent
RESTART = 75  # the board script's exit code for machine.reset()

BOARD_START = """
import sys
from agent.runtime import board_main
def _reset():
    sys.exit(%d)
board_main.start('/civicmote', restart=_reset)
""" % RESTART

OTA_ACL_DEVICE = ("topic read {p}/{d}/ota/order", "topic read {p}/{d}/{dev}/ota/down",
                  "topic write {p}/{d}/{dev}/ota/req", "topic write {p}/{d}/{dev}/ota/status")
OTA_ACL_CITY = ("topic write {p}/+/+/ota/down", "topic write {p}/+/ota/order")


def board_bundle(folder, patch=None):
    """(bundle bytes, files) of the agent's .mpy set (what `provision --port` installs), paths
    agent/...; patch: {path under agent/: new source text} for a changed version."""
    from agent.ota import bundle
    from provisioning.field import deploy

    root = ROOT / "agent"
    if patch:
        tree = Path(tempfile.mkdtemp(prefix="bundle-", dir=folder)) / "agent"
        shutil.copytree(ROOT / "agent", tree, ignore=shutil.ignore_patterns("__pycache__"))
        for rel, text in patch.items():
            (tree / rel).write_text(text)
        root = tree
    files = deploy.compile_agent(deploy.mpy_cross_abi(), agent_root=root)
    entries = sorted(("agent/" + k[len(deploy.REMOTE_LIB) + 1:], v) for k, v in files.items())
    return bundle.pack(entries), entries


class OtaCity(BoardCity):
    def __init__(self, folder, interpreter="native", grace_s=20, health_windows=3, retry_s=2, window_s=1,
                 chips=False):
        BoardCity.__init__(self, folder, board=sim_board(window_s), chips=chips, interpreter=interpreter)
        self.grace_s, self.health_windows, self.retry_s = grace_s, health_windows, retry_s
        self.blocks = None

    def start(self):
        from agent.crypto.cpython_backend import SigningKey
        from agent.ota import docs
        from provisioning.city.ota_blocks import ArtefactStore, BlockServer, Orders
        from provisioning.pki.ca import load_ca

        BoardCity.start(self)
        self.stop_broker()
        self._acl()
        self.start_broker()
        rng = os.urandom
        self.release_key = SigningKey.generate(rng)
        (self.device / "release_keys").write_bytes(docs.dump_release_keys([self.release_key.public_key().to_sec1()]))
        cfg = json.loads((self.device / "config.json").read_text())
        cfg.update(ota_health_windows=self.health_windows, ota_start_grace_s=self.grace_s, ota_retry_s=self.retry_s)
        (self.device / "config.json").write_text(json.dumps(cfg))
        ca = load_ca(str(self.folder / "ca"), PASSPHRASE)
        self.rollout_key = SigningKey.generate(rng)
        self.rollout_cert = docs.make_rollout_cert(SigningKey(ca.key), "city-rollout",
                                                   self.rollout_key.public_key().to_sec1(), int(time.time()) + 86400)
        self.ca_signer = SigningKey(ca.key)
        self.store = ArtefactStore(self.folder / "store")
        self.orders = Orders()
        self.server = BlockServer(self.store, self.orders)
        self.start_blocks()
        return self

    def _acl(self):
        acl = self.broker_dir / "acl"
        lines, out = acl.read_text().splitlines(), []
        p, d = "civicmote/v1", "north"
        for ln in lines:
            out.append(ln)
            if ln == "topic write %s/+/+/receipt" % p:
                out += [x.format(p=p) for x in OTA_ACL_CITY]
            if ln == "topic read %s/%s/%s/receipt" % (p, d, self.device_id):
                out += [x.format(p=p, d=d, dev=self.device_id) for x in OTA_ACL_DEVICE]
        acl.write_text("\n".join(out) + "\n")

    def start_blocks(self):
        from provisioning.city.ota_blocks import serve

        b = self.broker_dir
        tls = {"cafile": str(b / "ca.crt"), "certfile": str(b / "collector.crt"), "keyfile": str(b / "collector.key")}
        ready, self._stop_blocks = threading.Event(), threading.Event()
        self.blocks = threading.Thread(target=serve, args=(self.server, "127.0.0.1", self.port, tls),
                                       kwargs={"orders": self.orders, "ready": ready.set, "stop": self._stop_blocks,
                                               "client_id": "ota-blocks-%d" % os.getpid()}, daemon=True)
        self.blocks.start()
        if not ready.wait(30):
            raise RuntimeError("the block server did not connect")

    def release(self, data, seq, classes=None, key=None, size=None, **kw):
        """A release of data (bytes) signed by the city's release key (or key), kept in the store."""
        from agent.ota import docs

        key = key or self.release_key
        rel = docs.make_release(key, key.public_key().to_sec1(), seq, "0.%d" % seq, "agent",
                                classes or ["mpy%d" % self.mpy_abi()], len(data) if size is None else size,
                                hashlib.sha256(data).digest(), docs.STATE_FORMAT, b"\x00" * 8, **kw)
        self.store.add(rel, data)
        return rel

    def mpy_abi(self):
        """sys.implementation._mpy of the board's interpreter (its device class is mpy<that>)."""
        if not hasattr(self, "_abi"):
            r = mpy_port.run(["import sys\nprint('ABI', sys.implementation._mpy)\n"], maps=(), cwd="/flash",
                             port=self.interpreter, timeout=60)
            self._abi = int(r.stdout.split("ABI")[1].split()[0])
        return self._abi

    def order(self, rel, seq, pct=100, **kw):
        from agent.ota import docs

        now = int(time.time())
        o = docs.make_order(self.rollout_key, self.rollout_cert, "city-rollout", seq, docs.doc_hash(rel) if rel else b"",
                            kw.pop("district", "north"), pct, b"saltsalt", kw.pop("nb", now - 60),
                            kw.pop("exp", now + 3600), **kw)
        self.orders.set("north", o)
        self.server.publish_order("north")
        return o

    def board_process(self, heap=None):
        return Board(self, heap)

    def state(self):
        """The board's OTA state and journal, read from its folder on the host."""
        from agent.ota.board_slots import Journal
        from agent.ota.state import OtaState

        return OtaState(str(self.device)), Journal(str(self.device))

    def stop(self):
        if self.blocks is not None:
            self._stop_blocks.set()
            self.blocks.join(10)
            self.blocks = None
        BoardCity.stop(self)


class Board:
    """The board process: started again whenever it resets itself (exit 75), until stop()."""

    def __init__(self, city, heap=None, script=BOARD_START):
        self.city, self.heap, self.script = city, heap, script
        self.proc = None
        self.starts = 0
        self.resets = 0
        self.out = []  # every run's output
        self._tmp = None
        self._keep = False
        self._watch = None

    def start(self):
        self._keep = True
        self._spawn()
        self._watch = threading.Thread(target=self._watcher, daemon=True)
        self._watch.start()
        return self

    def _spawn(self):
        self._tmp = tempfile.mkdtemp(prefix="otaboard-")
        log = open(os.path.join(self._tmp, "out.txt"), "w")
        script = os.path.join(self._tmp, "board.py")
        with open(script, "w") as f:
            f.write(self.script)
        cmd = mpy_port._native_cmd([script], self.city.maps(), None, self.heap, self._tmp, self.city.interpreter)
        self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=self._tmp)
        self._log = log
        self.starts += 1

    def _collect(self):
        self._log.close()
        with open(os.path.join(self._tmp, "out.txt")) as f:
            self.out.append(f.read())
        shutil.rmtree(self._tmp, ignore_errors=True)

    def _watcher(self):
        while self._keep:
            p = self.proc
            if p.poll() is None:
                time.sleep(0.1)
                continue
            if not self._keep:
                break
            self._collect()
            if p.returncode == RESTART:
                self.resets += 1
                self._spawn()
            else:
                self._keep = False

    def text(self):
        cur = ""
        if self.proc is not None and self._tmp and os.path.exists(os.path.join(self._tmp, "out.txt")):
            with open(os.path.join(self._tmp, "out.txt")) as f:
                cur = f.read()
        return "".join(self.out) + cur

    def kill(self):
        """A power cut: SIGKILL now; start() again for the next power-on."""
        self._keep = False
        if self._watch is not None:
            self._watch.join(5)
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)
            self._collect()

    stop = kill


def wait_for(pred, timeout, board=None, what="condition"):
    end = time.time() + timeout
    while time.time() < end:
        if pred():
            return True
        if board is not None and not board._keep and board.proc.poll() is not None:
            raise AssertionError("the board stopped (exit %s) before %s:\n%s" % (board.proc.returncode, what,
                                                                                board.text()[-3000:]))
        time.sleep(0.1)
    raise AssertionError("timed out waiting for %s%s" % (what, ":\n" + board.text()[-3000:] if board else ""))
