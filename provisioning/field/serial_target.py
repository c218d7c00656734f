"""A MicroPython board on a serial port as a provisioning target (CPython only).

The same operations as provisioning.field.targets.DirTarget / SSHTarget, so `civicmote provision
--port PORT` is the same flow as for a Linux board:
    prepare(board_json)   deploy the agent (.mpy, only what changed), boot.py/main.py for the
                          board, board.json and wifi.json into /civicmote on the board
    civicmote(argv)       `device init` and `device pop` run ON THE BOARD through the raw REPL:
                          the key is generated there from os.urandom and never leaves it
    read_file / install / install_unit / forget_identity
The target's name (kept in the registry) is the board's machine.unique_id(), so the same board
is recognised whichever port it appears on.
"""
import hashlib
import json
import os
import time
from pathlib import Path

from provisioning.field import deploy as deploy_mod
from provisioning.errors import UsageError
from provisioning.field.serial_board import DEFAULT_ATTEMPTS, DEFAULT_TIMEOUT, BoardSession

ROOT = Path(__file__).resolve().parents[2]
DEVICE_DIR = "/civicmote"
WIFI_FILE = "wifi.json"
SKIP_FILES = ("civicmote.service",)  # a board starts the agent from main.py, not systemd
IDENTITY_FILES = ("device.key", "device.pem", "device.crt")
TIMEOUT_ENV = "CIVICMOTE_SERIAL_TIMEOUT"
KEYGEN_TIMEOUT = 120  # seconds: P-256 key generation in pure Python on a slow board

# The device side of `device init` and `device pop`, run on the board: the same portable code a
# Linux device runs (agent.runtime.device.init_device, agent.store.identity.answer_pop).
_INIT = """
import json
from agent.runtime.device import init_device
rec = init_device(%(dir)r, %(board)r, %(district)r, %(now)d)
rec['device_dir'] = %(dir)r
print(json.dumps(rec))
"""

_POP = """
import json
from agent.store import identity
print(json.dumps(identity.answer_pop(%(dir)r, %(challenge)r)))
"""


def boot_files(board_name):
    """{board path: bytes} of boards/<board>/boot.py and main.py (none if the board has none)."""
    folder = ROOT / "boards" / board_name
    return {"/" + p.name: p.read_bytes() for p in sorted(folder.glob("*.py"))} if folder.is_dir() else {}


def wifi_json(ssid, password):
    if password is None:
        raise UsageError("--wifi-ssid %s: set CIVICMOTE_WIFI_PASSWORD to the network's password (empty for an open "
                         "network); it is written to the board and never printed" % ssid)
    return json.dumps({"ssid": ssid, "password": password}).encode()


class SerialTarget:
    """A MicroPython board at `port`. Connects on first use; close() when done."""

    def __init__(self, port, wifi=None, force=False, timeout=None, attempts=DEFAULT_ATTEMPTS, progress=None):
        self.port = port
        self.wifi = wifi  # (ssid, password) or None
        self.force = force
        # Seconds of silence that end a step ($CIVICMOTE_SERIAL_TIMEOUT, default 10).
        self.timeout = timeout or float(os.environ.get(TIMEOUT_ENV) or DEFAULT_TIMEOUT)
        self.attempts = attempts
        self.progress = progress
        self.device_dir = DEVICE_DIR
        self.python = None
        self.pythonpath = None
        self.deployed = None  # the deploy record of the last prepare()
        self._board = None
        self._name = None

    @property
    def board(self):
        if self._board is None:
            self._board = BoardSession.open(self.port, timeout=self.timeout, attempts=self.attempts)
        return self._board

    @property
    def name(self):
        """serial:<unique id>: the board, wherever it is plugged in."""
        if self._name is None:
            uid = self.board.info().get("uid")
            self._name = "serial:" + (uid or self.port)
        return self._name

    def close(self):
        if self._board is not None:
            self._board.close()
            self._board = None

    def _path(self, name):
        return self.device_dir + "/" + name

    def prepare(self, board_json):
        try:
            board_name = json.loads(board_json)["board"]
        except (ValueError, KeyError, TypeError):
            raise UsageError("the board profile has no 'board' name")
        extra = boot_files(board_name)
        extra[self._path("board.json")] = board_json
        if self.wifi:
            extra[self._path(WIFI_FILE)] = wifi_json(*self.wifi)
        self.deployed = deploy_mod.deploy(self.board, extra=extra, force=self.force, progress=self.progress)

    def civicmote(self, argv):
        """Run the device side of `civicmote device init|pop` on the board; its JSON records."""
        args = list(argv)

        def opt(flag):
            return args[args.index(flag) + 1] if flag in args else None

        if args[:2] == ["device", "init"]:
            board = json.loads(self.board.read_file(self._path("board.json")) or b"{}").get("board")
            code = _INIT % {"dir": self.device_dir, "now": int(time.time()), "district": opt("--district"),
                            "board": board}
        elif args[:2] == ["device", "pop"]:
            try:
                challenge = bytes.fromhex(opt("--challenge") or "")
            except ValueError:
                raise UsageError("--challenge: not hex")
            code = _POP % {"dir": self.device_dir, "challenge": challenge}
        else:
            raise UsageError("a MicroPython board runs only 'device init' and 'device pop', not %r" % " ".join(args))
        out = self.board.exec(code, timeout=KEYGEN_TIMEOUT)
        return [json.loads(out.decode().strip().splitlines()[-1])]

    def read_file(self, name):
        return self.board.read_file(self._path(name))

    def install(self, files):
        files = {self._path(n): d for n, d in files.items() if n not in SKIP_FILES}
        have = self.board.sha256_many(sorted(files))
        for path in sorted(files):
            if have[path] != hashlib.sha256(files[path]).hexdigest():
                self.board.write_file(path, files[path])

    def install_unit(self):
        return False, "skipped: a MicroPython board starts the agent from main.py"

    def forget_identity(self):
        self.board.remove([self._path(n) for n in IDENTITY_FILES])


def fetch_outbox(board, dest, device_dir=DEVICE_DIR):
    """Copy the board's outbox (signed summaries waiting for the broker) to the host folder dest
    and return [(seq, COSE_Sign1 bytes)] read through the agent's own Outbox (CRC-checked)."""
    from agent.store.outbox import Outbox

    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    root = device_dir + "/outbox"
    for path in sorted(board.tree(root)):
        data = board.read_file(path)
        if data is not None:
            (dest / path[len(root) + 1:]).write_bytes(data)
    box = Outbox(str(dest), max_bytes=1 << 30, max_count=1 << 20)
    return box.peek(box.depth)
