"""Helpers for the Raspberry Pi updater tests (issue 23): signed releases made with the real
agent/ota code, a staged folder as the agent leaves it, the updater as a process, and a
miniature systemd that runs the generated units (provisioning/device/pi_units.py) as written.

    keys = Signers(ca_private_key)       release keys, the rollout key (CA-certified), strangers
    art = bundle_bytes(mutate={...})     this worktree's agent/ and provisioning/ as a bundle
    rel = keys.release(seq, art); order = keys.order(rel, "north")
    stage(device_dir, rel, order, art)   DIR/ota/stage/{release.cose,order.cose,artefact,ready}
    run_updater(root, dev_dir, "tick")   python -m provisioning.device.updater, as a process
"""
import json
import os
import shlex
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from agent.ota import bundle, docs

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
DISTRICT = "north"


def keypair():
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    from agent.crypto.cpython_backend import SigningKey

    k = ec.generate_private_key(ec.SECP256R1())
    pub = k.public_key().public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    return SigningKey(k), pub


class Signers:
    """Two pinned release keys, the city's rollout key certified by the CA, and a stranger."""

    def __init__(self, ca_private_key):
        from agent.crypto.cpython_backend import SigningKey

        self.release_keys = [keypair(), keypair()]
        self.ca = SigningKey(ca_private_key)
        self.rollout, self.rollout_pub = keypair()
        self.cert = docs.make_rollout_cert(self.ca, "city-rollout", self.rollout_pub, int(time.time()) + 86400)
        self.stranger = keypair()
        self.order_seq = 0

    def pinned(self):
        return docs.dump_release_keys([pub for _, pub in self.release_keys])

    def release(self, seq, artefact, key=None, classes=("cpython3",), size=None, digest=None, **kw):
        import hashlib

        k, pub = key or self.release_keys[0]
        return docs.make_release(k, pub, seq, "0.%d" % seq, "agent", list(classes),
                                 len(artefact) if size is None else size,
                                 digest or hashlib.sha256(artefact).digest(), docs.STATE_FORMAT, b"\x01" * 8, **kw)

    def order(self, release, district=DISTRICT, key=None, cert=None, pct=100, devices=None, exp_in=3600):
        self.order_seq += 1
        now = int(time.time())
        return docs.make_order(key or self.rollout, cert or self.cert, "city-rollout", self.order_seq,
                               docs.doc_hash(release), district, pct, b"saltsalt", now - 60, now + exp_in, devices)


def code_files(mutate=None):
    """[(path, bytes)] of this worktree's agent/ and provisioning/ packages; mutate: {path: bytes}."""
    out = []
    for top in ("agent", "provisioning"):
        for p in sorted((ROOT / top).rglob("*")):
            if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc":
                out.append((p.relative_to(ROOT).as_posix(), p.read_bytes()))
    mutate = dict(mutate or {})
    out = [(path, mutate.pop(path, data)) for path, data in out]
    return out + sorted(mutate.items())


def bundle_bytes(mutate=None):
    return bundle.pack(code_files(mutate))


def patched(path, old, new):
    """{path: the worktree file with `old` replaced by `new`} (asserting it was there)."""
    text = (ROOT / path).read_text()
    assert old in text, (path, old)
    return {path: text.replace(old, new, 1).encode()}


def stage(device_dir, release, order, artefact, ready=True):
    d = Path(device_dir) / "ota" / "stage"
    d.mkdir(parents=True, exist_ok=True)
    (d / "release.cose").write_bytes(release)
    (d / "order.cose").write_bytes(order)
    (d / "artefact").write_bytes(artefact)
    if ready:
        (d / "ready").write_bytes(b"")


def updater_argv(root, device_dir, action, *extra):
    return [PY, "-m", "provisioning.device.updater", action, "--root", str(root), "--device-dir", str(device_dir)] + \
        [str(a) for a in extra]


def run_updater(root, device_dir, action, *extra, env=None, timeout=60):
    """(exit code, [JSON events], stderr) of one updater run (from this worktree's code)."""
    p = subprocess.run(updater_argv(root, device_dir, action, *extra), capture_output=True, text=True, cwd=str(ROOT),
                       env=dict(os.environ, **(env or {})), timeout=timeout)
    events = [json.loads(ln) for ln in p.stdout.splitlines() if ln.startswith("{")]
    return p.returncode, events, p.stderr


def init_root(root, device_dir):
    code, events, err = run_updater(root, device_dir, "init", "--from", ROOT)
    assert code == 0, err
    return events


def state(root):
    return json.loads((Path(root) / "state.json").read_text())


def current(root):
    return os.readlink(str(Path(root) / "current"))


def result(device_dir):
    p = Path(device_dir) / "ota" / "pi_result"
    return json.loads(p.read_text()) if p.exists() else None


def _unit_lines(text, key):
    return [ln[len(key) + 1:] for ln in text.splitlines() if ln.startswith(key + "=")]


def _exec(line):
    while line and line[0] in "-+@:!":
        line = line[1:]
    return shlex.split(line)


class MiniSystemd:
    """Runs the agent unit and the updater's service/path/timer as systemd would, for tests:
    ExecStartPre then ExecStart in WorkingDirectory, restarted restart_s after any exit
    (Restart=always); a restart request (the file `restart_file`, which the updater's
    --restart-cmd touches) stops the agent (SIGTERM, SIGKILL after stop_s) and starts it again;
    the updater service runs when the path unit's file exists and every check_s seconds."""

    def __init__(self, units, logdir, restart_s=0.3, check_s=0.5, stop_s=1.0, env=None):
        agent, upd, path = units["civicmote.service"], units["civicmote-update.service"], units["civicmote-update.path"]
        self.pre = [_exec(x) for x in _unit_lines(agent, "ExecStartPre")]
        self.start_argv = _exec(_unit_lines(agent, "ExecStart")[0])
        self.cwd = _unit_lines(agent, "WorkingDirectory")[0]
        self.update_argv = _exec(_unit_lines(upd, "ExecStart")[0])
        self.update_cwd = _unit_lines(upd, "WorkingDirectory")[0]
        self.path = _unit_lines(path, "PathExists")[0]
        self.logdir = Path(logdir)
        self.logdir.mkdir(parents=True, exist_ok=True)
        self.restart_file = self.logdir / "restart-request"
        self.restart_s, self.check_s, self.stop_s = restart_s, check_s, stop_s
        self.env = dict(os.environ, **(env or {}))
        self.env.pop("PYTHONPATH", None)
        self.proc = None
        self.starts = []  # (monotonic s, release folder the agent started in)
        self.exits = []  # exit codes of agent processes
        self.updates = []  # [JSON events] of each updater run
        self.boot_events = []
        self.paused = False
        self._stop = threading.Event()
        self._thread = None
        self._log = open(self.logdir / "agent.log", "ab")

    def start(self):
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()
        return self

    def _run(self, argv, cwd):
        p = subprocess.run(argv, cwd=cwd, env=self.env, capture_output=True, text=True, timeout=120)
        ev = [json.loads(ln) for ln in p.stdout.splitlines() if ln.startswith("{")]
        if p.returncode not in (0, 1):
            self._log.write(("updater exit %d: %s\n" % (p.returncode, p.stderr)).encode())
        return ev

    def _start_agent(self):
        for argv in self.pre:
            self.boot_events.append(self._run(argv, self.cwd))
        self.proc = subprocess.Popen(self.start_argv, cwd=self.cwd, env=self.env, stdout=self._log, stderr=self._log)
        self.starts.append((time.monotonic(), os.path.realpath(self.cwd)))

    def _stop_agent(self):
        p = self.proc
        if p is None or p.poll() is not None:
            return
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(self.stop_s)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()

    def _loop(self):
        next_check = time.monotonic() + self.check_s
        exited_at = None
        while not self._stop.is_set():
            if self.paused:
                time.sleep(0.05)
                continue
            if self.restart_file.exists():
                self.restart_file.unlink()
                self._stop_agent()
                self.exits.append(self.proc.returncode if self.proc else None)
                self.proc = None
                self._start_agent()
            elif self.proc is None:
                self._start_agent()
            elif self.proc.poll() is not None:
                if exited_at is None:
                    exited_at = time.monotonic()
                    self.exits.append(self.proc.returncode)
                elif time.monotonic() - exited_at >= self.restart_s:
                    exited_at = None
                    self._start_agent()
            if os.path.exists(self.path) or time.monotonic() >= next_check:
                next_check = time.monotonic() + self.check_s
                self.updates.append(self._run(self.update_argv, self.update_cwd))
            time.sleep(0.05)

    def running_release(self):
        """The release folder the live agent process runs from (its resolved cwd), or None."""
        p = self.proc
        if p is None or p.poll() is not None:
            return None
        try:
            return os.readlink("/proc/%d/cwd" % p.pid)
        except OSError:
            return None

    def events(self, name):
        return [e for run in self.updates + self.boot_events for e in run if e.get("event") == name]

    def power_cut(self):
        """SIGKILL the agent and stop supervising (the machine is off); start() again to boot."""
        self.stop(kill=True)

    def stop(self, kill=False):
        self._stop.set()
        if self._thread:
            self._thread.join(30)
        if self.proc is not None and self.proc.poll() is None:
            if kill:
                self.proc.kill()
                self.proc.wait()
            else:
                self._stop_agent()
        self._stop = threading.Event()
