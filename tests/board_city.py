"""A city and a MicroPython board on this machine, for the native-port tests and benches.

    city = BoardCity(folder).start()     CA, a device provisioned with the real `provision`
                                         code (--target DIR), `broker-config`, Mosquitto
    city.collect(count, seconds)         `civicmote collect` (mutual TLS, registry export)
    city.run_board(windows, heap=...)    the agent's .mpy on the native unix port, driven by
                                         agent.runtime.board_main.run with a real clock
    city.stop()

The board sees its device folder at /civicmote and the compiled agent at /lib/agent, as a
Pico W or ESP32 provisioned with `--port` does. Its TLS stack is the port's mbedTLS, which
parses only DER (tests/test_board_native.py proves it). BoardCity(..., interpreter="frozen")
or "frozen32" runs the unix firmware `make firmware` builds instead: the agent is frozen into
it (code in flash), so nothing is mapped at /lib/agent.
"""
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import mpy_port
from broker import free_port
from provision_support import PASSPHRASE, Mosquitto

ROOT = Path(__file__).resolve().parent.parent
CIVICMOTE = str(Path(sys.executable).parent / "civicmote")
WINDOW_S = 1  # a short window: real clock, seconds per test

# Runs on the board: the agent as main.py runs it (real clock), then until the outbox drains.
BOARD_SCRIPT = """
import gc, time
from agent.runtime import board_main
gc.collect()
a = board_main.run('/civicmote', windows=%(windows)d)
end = time.time() + %(drain_s)d
while (a.outbox.depth or a.delivered < a.closed) and time.time() < end:
    now_s, now_ms = board_main.real_clock()
    a.step(now_s, now_ms)
    time.sleep_ms(50)
gc.collect()
print('BOARD', a.closed, a.delivered, a.outbox.depth, a.net_errors, gc.mem_alloc(), gc.mem_free())
r = a.receipts
print('RECEIPTS', r.accepted, r.refused, r.hi if r.hi is not None else -1) if r is not None else None
"""


def ledger_blocker():
    """Why a board-sized heap cannot run the agent yet, or None. The privacy ledger's read of
    up to 64 KiB at once (f.read(65537): MicroPython allocates it in full) is fixed by issue 14
    (agent/privacy/ledger.py is theirs); until that is merged no capped heap has 64 KiB free in one piece."""
    if "f.read(_MAX_BYTES + 1)" in (ROOT / "agent" / "privacy" / "ledger.py").read_text():
        return "agent/privacy/ledger.py still reads 64 KiB at once (issue 14 bounds that read)"
    return None


def sim_board(window_s=WINDOW_S):
    """boards/sim.json as a MicroPython board with a short window."""
    board = json.loads((ROOT / "boards" / "sim.json").read_text())
    board["runtime"] = "micropython"
    board["window_s"] = window_s
    return board


def cli(*argv, env=None, check=True):
    p = subprocess.run([CIVICMOTE] + [str(a) for a in argv], capture_output=True, text=True, env=env, timeout=120)
    if check and p.returncode:
        raise RuntimeError("civicmote %s: exit %d: %s" % (argv[0], p.returncode, p.stderr.strip()))
    return p


class BoardCity:
    def __init__(self, folder, board=None, chips=False, interpreter="native"):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.board = board or sim_board()
        self.env = dict(os.environ, CIVICMOTE_CA_PASSPHRASE=PASSPHRASE)
        self.port = free_port()
        self.device = self.folder / "device"
        self.broker_dir = self.folder / "broker"
        self.mosquitto = None
        self.chips = chips  # True: the sim board's chips run outside it (provisioning/field/chip_server.py)
        self.chip_server = None
        self.agent_mpy = None
        self.interpreter = interpreter  # mpy_port's: "native", "frozen" or "frozen32"

    def start(self):
        f = self.folder
        (f / "board.json").write_text(json.dumps(self.board))
        cli("ca", "init", "--dir", f / "ca", "--json", env=self.env)
        out = cli("provision", "--board", f / "board.json", "--district", "north", "--target", self.device,
                  "--ca", f / "ca", "--registry", f / "registry.db", "--broker", "mqtts://127.0.0.1:%d" % self.port,
                  "--json", env=self.env).stdout
        self.device_id = json.loads(out)["device_id"]
        cli("broker-config", "--ca", f / "ca", "--registry", f / "registry.db", "--out", self.broker_dir,
            "--port", self.port, "--bind", "127.0.0.1", "--user", "root", "--json", env=self.env)
        (f / "export.json").write_text(cli("registry", "export", "--registry", f / "registry.db", "--json").stdout)
        self.agent_mpy = mpy_port.compile_agent(f / "mpy")
        if self.chips:
            self.start_chips()
        self.start_broker()
        return self

    def start_chips(self):
        """Serve the board's emulated chips from this process and tell the board where (config.json)."""
        from agent.board import load_profile
        from provisioning.field.chip_server import ChipServer

        self.chip_server = ChipServer(load_profile(str(self.device / "board.json"))).start()
        cfg = json.loads((self.device / "config.json").read_text())
        cfg["chips"] = self.chip_server.url
        (self.device / "config.json").write_text(json.dumps(cfg))

    def start_broker(self):
        self.mosquitto = Mosquitto(self.broker_dir / "mosquitto.conf", self.port)

    def stop_broker(self):
        if self.mosquitto is not None:
            self.mosquitto.stop()
            self.mosquitto = None

    def collect(self, count, seconds, store=None, receipts=False):
        """Start `civicmote collect` (stops after count summaries or seconds); returns the Popen.
        receipts: also sign receipts to the board (collector.receipt, one a second at most)."""
        b = self.broker_dir
        argv = [CIVICMOTE, "collect", "--broker", "mqtts://127.0.0.1:%d" % self.port, "--registry",
                self.folder / "export.json", "--tls-ca", b / "ca.crt", "--tls-cert", b / "collector.crt",
                "--tls-key", b / "collector.key", "--count", count, "--duration", seconds, "--json"]
        if store:
            argv += ["--store", store]
        if receipts:
            argv += ["--receipt-cert", b / "collector.receipt", "--receipt-interval", "1"]
        return subprocess.Popen([str(a) for a in argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def maps(self):
        return ((self.agent_mpy, "/lib/agent"), (self.device, "/civicmote"))

    def board_script(self, windows, drain_s=15):
        return BOARD_SCRIPT % {"windows": windows, "drain_s": drain_s}

    def start_board(self, windows, heap=None, drain_s=15):
        """The board agent in the background; returns (Popen, tmp folder to remove)."""
        tmp = tempfile.mkdtemp(prefix="board-")
        return mpy_port.start_native([self.board_script(windows, drain_s)], tmp, maps=self.maps(), cwd=None,
                                     heap=heap, port=self.interpreter), tmp

    def run_board(self, windows, heap=None, drain_s=15, timeout=180):
        """Run the board agent to the end: (closed, delivered, depth, net_errors, alloc, free) or raise."""
        proc, tmp = self.start_board(windows, heap, drain_s)
        try:
            out, err = proc.communicate(timeout=timeout)
        finally:
            if proc.poll() is None:
                proc.kill()
            shutil.rmtree(tmp, ignore_errors=True)
        return parse_board(out, err)

    def stop(self):
        self.stop_broker()
        if self.chip_server is not None:
            self.chip_server.stop()
            self.chip_server = None


class BoardFailed(RuntimeError):
    pass


def parse_board(out, err):
    for line in out.splitlines():
        if line.startswith("BOARD "):
            return tuple(int(x) for x in line.split()[1:])
    raise BoardFailed("the board run did not finish:\n%s\n%s" % (out[-2000:], err[-2000:]))


def collected(proc, timeout=60):
    """The accepted summaries' seqs and the final record of a `civicmote collect` run."""
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=10)
    records = [json.loads(ln) for ln in out.splitlines() if ln.strip()]
    return records, err


def wait_until(pred, timeout):
    end = time.time() + timeout
    while time.time() < end:
        if pred():
            return True
        time.sleep(0.1)
    return pred()
