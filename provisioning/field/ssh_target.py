"""A Linux board over ssh as a provisioning target (CPython only).

The operations of provisioning.field.targets (prepare, civicmote, read_file(s), install,
install_unit, forget_identity), plus check(): `device check` run on the board. Everything goes
over the system's OpenSSH client with the user's keys or agent (never a password prompt), and
over ONE connection per device (ControlMaster, closed by close()); steps that print nothing
(shipping the agent, installing files, forgetting a key) travel in the same session as the next
step, so a device costs five sessions with its broker check.
"""
import io
import json
import os
import shlex
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path
from urllib.parse import urlsplit

from provisioning.errors import EnvironmentProblem, UsageError
from provisioning.field.targets import (IDENTITY_FILES, REMOTE_PYTHON_ENV, SSH_CONFIG_ENV, SSH_DEFAULT_DIR,
                                        SSH_TIMEOUT_S, UNIT_SETTLE_S, _UNIT_SCRIPT, _add_bytes, _fail, _records,
                                        _unit_result)


class SSHTarget:
    """A Linux board over the system's OpenSSH client (keys or an agent; never a password prompt)."""

    def __init__(self, user, host, port=None, device_dir=SSH_DEFAULT_DIR):
        self.user, self.host, self.port, self.device_dir = user, host, port, device_dir
        self.name = "ssh://%s@%s%s%s" % (user, host, ":%d" % port if port else "", device_dir)
        self.python = os.environ.get(REMOTE_PYTHON_ENV) or "python3"
        self.pythonpath = device_dir + "/app"
        self._control_dir = None  # one OpenSSH connection (ControlMaster) for every step; close() ends it
        self._pending = None  # (command, stdin) of steps that travel with the next session

    @classmethod
    def from_url(cls, url):
        u = urlsplit(url)
        try:
            port = u.port
        except ValueError:
            raise UsageError("--target %s: bad port" % url)
        if not u.hostname or not u.username:
            raise UsageError("--target %s: expected ssh://USER@HOST[:PORT][/DIR]" % url)
        return cls(u.username, u.hostname, port, u.path if u.path not in ("", "/") else SSH_DEFAULT_DIR)

    def _base_argv(self):
        argv = ["ssh", "-o", "BatchMode=yes", "-o", "ConnectTimeout=10"]
        cfg = os.environ.get(SSH_CONFIG_ENV)
        if cfg:
            argv += ["-F", cfg]
        if self.port:
            argv += ["-p", str(self.port)]
        if self._control_dir is None:
            self._control_dir = tempfile.mkdtemp(prefix="civicmote-ssh-")
        # The first step logs in and keeps the connection; later steps ride on it (no new login).
        argv += ["-o", "ControlMaster=auto", "-o", "ControlPath=%s/cm" % self._control_dir,
                 "-o", "ControlPersist=%d" % SSH_TIMEOUT_S]
        return argv + ["%s@%s" % (self.user, self.host)]

    def close(self):
        """End the shared connection (if one was opened) and remove its socket folder."""
        if self._control_dir is None:
            return
        base = self._base_argv()
        subprocess.run(base[:-1] + ["-O", "exit", base[-1]], capture_output=True, timeout=10)
        shutil.rmtree(self._control_dir, ignore_errors=True)
        self._control_dir = None

    def _defer(self, command, stdin=None):
        """Queue a step that prints nothing; it rides in front of the next command (one session less)."""
        if self._pending and stdin is not None and self._pending[1] is not None:
            self._flush()
        prev_cmd, prev_in = self._pending or (None, None)
        self._pending = ("%s && %s" % (prev_cmd, command) if prev_cmd else command, stdin if stdin is not None
                         else prev_in)

    def _flush(self):
        if self._pending:
            code, out, err = self._ssh("true")
            if code:
                raise _fail(self.name, code, err)

    def _ssh(self, command, stdin=None):
        if self._pending:
            (pending, pending_in), self._pending = self._pending, None
            if stdin is not None and pending_in is not None:
                self._pending = (pending, pending_in)
                self._flush()
            else:
                command, stdin = "%s && { %s\n}" % (pending, command), stdin if stdin is not None else pending_in
        argv = self._base_argv() + ["--", command]
        try:
            p = subprocess.run(argv, input=stdin, capture_output=True, timeout=SSH_TIMEOUT_S)
        except FileNotFoundError:
            raise EnvironmentProblem("ssh: the OpenSSH client is not installed; install it (apt install "
                                     "openssh-client) and re-run")
        except subprocess.TimeoutExpired:
            raise EnvironmentProblem("%s: no answer within %d s; check the board and re-run" % (self.name, SSH_TIMEOUT_S))
        err = p.stderr.decode(errors="replace")
        if p.returncode == 255:
            last = [ln for ln in err.strip().splitlines() if ln.strip()]
            raise EnvironmentProblem("%s: unreachable (%s); check the address, the network and ssh keys, then re-run"
                                     % (self.name, last[-1] if last else "ssh failed"))
        if "No space left on device" in err:
            raise EnvironmentProblem("%s: no space left on the device; free some space and re-run" % self.name)
        return p.returncode, p.stdout.decode(errors="replace"), err

    def _q(self, path):
        return shlex.quote(path)

    def prepare(self, board_json):
        """Make the folder and ship the agent (agent/ and provisioning/, sources only) and the profile.

        Sent together with the next step (`device init`): one ssh session for both."""
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w:gz") as tar:
            for pkg in ("agent", "provisioning"):
                root = Path(__import__(pkg).__file__).parent
                for f in sorted(root.rglob("*.py")):
                    tar.add(str(f), arcname="app/%s/%s" % (pkg, f.relative_to(root)))
            _add_bytes(tar, "board.json", board_json)
        d = self._q(self.device_dir)
        self._defer("mkdir -p %s && chmod 700 %s && rm -rf %s/app && tar -xzf - -C %s --no-same-owner"
                    % (d, d, d, d), buf.getvalue())

    def _civicmote_cmd(self, argv):
        return "cd %s && PYTHONPATH=%s %s -m provisioning.cli %s --json" % (
            self._q(self.device_dir), self._q(self.pythonpath), self._q(self.python),
            " ".join(shlex.quote(str(a)) for a in argv))

    def civicmote(self, argv):
        code, out, err = self._ssh(self._civicmote_cmd(argv))
        if code:
            raise _fail(self.name, code, err)
        return _records(self.name, out)

    def read_file(self, name):
        return self.read_files([name])[name]

    def read_files(self, names):
        """{name: bytes or None} for files of the device folder, in one session."""
        script = "import json,os,sys\nr={}\nfor n in sys.argv[1:]:\n try:\n  r[n]=open(n,'rb').read().hex()\n " \
                 "except FileNotFoundError:\n  r[n]=None\nprint(json.dumps(r))"
        code, out, err = self._ssh("cd %s && %s -c %s %s" % (self._q(self.device_dir), self._q(self.python),
                                                              shlex.quote(script), " ".join(map(self._q, names))))
        if code:
            raise _fail(self.name, code, err)
        try:
            got = json.loads(out.strip().splitlines()[-1])
        except (ValueError, IndexError):
            raise EnvironmentProblem("%s: could not read %s from the device" % (self.name, ", ".join(names)))
        return {n: bytes.fromhex(got[n]) if got.get(n) is not None else None for n in names}

    def install(self, files):
        """Queued: the files go with the next step (install_unit) in one session."""
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            for name, data in sorted(files.items()):
                _add_bytes(tar, name, data)
        self._defer("tar -xf - -C %s --no-same-owner" % self._q(self.device_dir), buf.getvalue())

    def install_unit(self):
        code, out, err = self._ssh(_UNIT_SCRIPT % {"dir": self._q(self.device_dir), "settle": UNIT_SETTLE_S})
        if code and not out.strip():  # the files queued before the script did not land
            raise _fail(self.name, code, err)
        return _unit_result(self.name, subprocess.CompletedProcess([], code, out, err))

    def check(self, timeout_s):
        """`device check` on the device: its agent connects to the broker with its own certificate."""
        return self.civicmote(["device", "check", "--device-dir", self.device_dir, "--timeout", str(timeout_s)])[0]

    def forget_identity(self):
        names = " ".join(self._q(self.device_dir + "/" + n) for n in IDENTITY_FILES)
        self._defer("rm -f %s" % names)
