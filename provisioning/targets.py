"""Where a Linux device lives: a local folder, or a board reached over ssh (CPython only).

Both targets offer the same operations, so provisioning is one flow:
    prepare(board_json)     make the device folder, put the board profile (and, over ssh, the agent) there
    civicmote(argv)         run a civicmote command *on the device* and return its JSON records
    read_file(name)         a file of the device folder, or None
    install(files)          write {name: bytes} into the device folder
    install_unit()          install civicmote.service into systemd on a real Pi; say what happened
    forget_identity()       delete the device key and what derives from it (for --rekey)
The private key is only ever touched by `civicmote device ...` running on the device.
"""
import contextlib
import io
import json
import os
import shlex
import subprocess
import sys
import tarfile
from pathlib import Path
from urllib.parse import urlsplit

from provisioning.errors import EXIT_ENVIRONMENT, EnvironmentProblem, ProvisioningError, UsageError

UNIT_FILE = "civicmote.service"
IDENTITY_FILES = ("device.key", "device.pem", "device.crt")
SSH_DEFAULT_DIR = "/var/lib/civicmote"
SSH_CONFIG_ENV = "CIVICMOTE_SSH_CONFIG"  # an ssh_config file for the OpenSSH client (-F)
REMOTE_PYTHON_ENV = "CIVICMOTE_REMOTE_PYTHON"
SSH_TIMEOUT_S = 120

# Install the unit only on a real Raspberry Pi running systemd; otherwise say why not.
_UNIT_SCRIPT = """d=%(dir)s
if ! grep -qs 'Raspberry Pi' /proc/device-tree/model; then echo 'skipped: not a Raspberry Pi'
elif [ ! -d /run/systemd/system ]; then echo 'skipped: systemd is not running'
else S=; [ "$(id -u)" = 0 ] || S='sudo -n'
  u=$(sed -n 's/^User=//p' "$d/civicmote.service")
  [ "$u" != civicmote ] || id -u civicmote >/dev/null 2>&1 || $S useradd --system --no-create-home --shell /usr/sbin/nologin civicmote
  $S chown -R "$u:" "$d"
  $S install -m 0644 "$d/civicmote.service" /etc/systemd/system/civicmote.service && $S systemctl daemon-reload \
  && $S systemctl enable --now civicmote.service >/dev/null 2>&1 && echo 'installed: civicmote.service enabled' \
  || echo 'failed: could not install civicmote.service (root or passwordless sudo needed)'
fi"""


def parse_target(text, base=None):
    """A target from '--target': 'ssh://USER@HOST[:PORT][/DIR]' or a folder path (relative to base)."""
    if text.startswith("ssh://"):
        return SSHTarget.from_url(text)
    if "://" in text or text.startswith("/dev/tty") or text.upper().startswith("COM"):
        raise UsageError("--target %s: --target takes a folder or ssh://USER@HOST; for a MicroPython board on a "
                         "serial port use 'civicmote provision --port %s'" % (text, text))
    p = Path(text)
    if base is not None and not p.is_absolute():
        p = Path(base) / p
    return DirTarget(p)


def _fail(where, code, err):
    line = [ln for ln in err.strip().splitlines() if ln.strip()]
    line = line[-1] if line else "exit status %d" % code
    if line.startswith("civicmote: error: "):
        line = line[len("civicmote: error: "):]
    return ProvisioningError("%s: %s" % (where, line), code if code in (1, 2, 3, 4) else EXIT_ENVIRONMENT)


def _records(where, stdout):
    try:
        return [json.loads(ln) for ln in stdout.splitlines() if ln.strip()]
    except ValueError:
        raise EnvironmentProblem("%s: the device side printed something that is not JSON; is civicmote there the "
                                 "same version?" % where)


UNIT_USER = "civicmote"
# Groups a Raspberry Pi OS image has for the buses the agent reads (I2C sensors, serial PM sensors,
# GPIO PIR); BLE goes through BlueZ over D-Bus and needs none.
UNIT_GROUPS = "i2c dialout gpio"


def unit_text(device_id, device_dir, python, broker=None, pythonpath=None):
    """The systemd unit: started after the clock is synchronised (windows and the privacy day need
    it), restarted forever, a watchdog the agent must feed (sd_notify WATCHDOG=1), and run as a
    dedicated unprivileged user that can write only its own state folder."""
    cmd = [python, "-m", "provisioning.cli", "run", "--device-dir", device_dir]
    if broker:
        cmd += ["--broker", broker]
    state = device_dir.rstrip("/")
    homes = [p for p in (python or "", pythonpath or "", state) if p.startswith("/home/")]
    # A Python in someone's home (0700 on Raspberry Pi OS) is readable only by that person: run as them.
    user = homes[0].split("/")[2] if homes else UNIT_USER
    lines = ["[Unit]", "Description=civicmote sensor agent (device %s)" % device_id,
             "Wants=network-online.target time-sync.target",
             "After=network-online.target time-sync.target", "StartLimitIntervalSec=0", "",
             "[Service]", "Type=notify", "NotifyAccess=main", "ExecStart=" + " ".join(shlex.quote(c) for c in cmd)]
    if pythonpath:
        lines.append("Environment=PYTHONPATH=%s" % pythonpath)
    lines += ["WorkingDirectory=%s" % device_dir, "Restart=always", "RestartSec=5", "WatchdogSec=120",
              "TimeoutStopSec=45",  # the agent drains its outbox for up to 30 s when stopped
              "User=%s" % user, "Group=%s" % user, "SupplementaryGroups=%s" % UNIT_GROUPS, "UMask=0077"]
    if state.startswith("/var/lib/") and "/" not in state[len("/var/lib/"):]:
        lines.append("StateDirectory=%s" % state[len("/var/lib/"):])  # systemd creates it, owned by User
        lines.append("StateDirectoryMode=0700")
    else:
        lines.append("ReadWritePaths=%s" % device_dir)
    lines += ["NoNewPrivileges=yes", "ProtectSystem=strict",
              "ProtectHome=%s" % ("read-only" if homes else "yes"),
              "PrivateTmp=yes", "ProtectClock=yes", "ProtectKernelTunables=yes", "ProtectKernelModules=yes",
              "ProtectKernelLogs=yes", "ProtectControlGroups=yes", "ProtectHostname=yes", "RestrictSUIDSGID=yes",
              "RestrictRealtime=yes", "RestrictNamespaces=yes", "LockPersonality=yes", "CapabilityBoundingSet=",
              "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6 AF_NETLINK", "SystemCallArchitectures=native",
              "", "[Install]", "WantedBy=multi-user.target", ""]
    return "\n".join(lines)


class DirTarget:
    """A device folder on this machine (a simulated device, or the Pi you are logged in to)."""

    def __init__(self, path):
        self.path = Path(path).absolute()
        self.name = str(self.path)
        self.device_dir = str(self.path)
        self.python = sys.executable
        self.pythonpath = None

    def prepare(self, board_json):
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            os.chmod(self.path, 0o700)
        except OSError as e:
            raise EnvironmentProblem("%s: cannot create the device folder (%s)" % (self.name, e.strerror))
        self.install({"board.json": board_json})

    def civicmote(self, argv):
        """Run `civicmote argv --json` in this process, as the device side; return its JSON records."""
        from provisioning.cli import main

        out, err = io.StringIO(), io.StringIO()
        try:
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                code = main(list(argv) + ["--json"])
        except OSError as e:
            raise _space_or_env(self.name, e)
        except SystemExit as e:
            code = e.code
        if code:
            raise _fail(self.name, code, err.getvalue())
        return _records(self.name, out.getvalue())

    def read_file(self, name):
        try:
            return (self.path / name).read_bytes()
        except FileNotFoundError:
            return None
        except OSError as e:
            raise EnvironmentProblem("%s: cannot read %s (%s)" % (self.name, name, e.strerror))

    def install(self, files):
        from agent import compat

        for name, data in sorted(files.items()):
            try:
                compat.write_file_atomic(str(self.path / name), data)
            except OSError as e:
                raise _space_or_env(self.name, e)

    def install_unit(self):
        return _unit_result(self.name, subprocess.run(["sh", "-c", _UNIT_SCRIPT % {"dir": shlex.quote(self.name)}],
                                                      capture_output=True, text=True))

    def forget_identity(self):
        for name in IDENTITY_FILES:
            try:
                (self.path / name).unlink()
            except FileNotFoundError:
                pass


class SSHTarget:
    """A Linux board over the system's OpenSSH client (keys or an agent; never a password prompt)."""

    def __init__(self, user, host, port=None, device_dir=SSH_DEFAULT_DIR):
        self.user, self.host, self.port, self.device_dir = user, host, port, device_dir
        self.name = "ssh://%s@%s%s%s" % (user, host, ":%d" % port if port else "", device_dir)
        self.python = os.environ.get(REMOTE_PYTHON_ENV) or "python3"
        self.pythonpath = device_dir + "/app"

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

    def _ssh(self, command, stdin=None):
        argv = ["ssh", "-o", "BatchMode=yes", "-o", "ConnectTimeout=10"]
        cfg = os.environ.get(SSH_CONFIG_ENV)
        if cfg:
            argv += ["-F", cfg]
        if self.port:
            argv += ["-p", str(self.port)]
        argv += ["%s@%s" % (self.user, self.host), "--", command]
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
        """Make the folder and ship the agent (agent/ and provisioning/, sources only) and the profile."""
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w:gz") as tar:
            for pkg in ("agent", "provisioning"):
                root = Path(__import__(pkg).__file__).parent
                for f in sorted(root.rglob("*.py")):
                    tar.add(str(f), arcname="app/%s/%s" % (pkg, f.relative_to(root)))
            _add_bytes(tar, "board.json", board_json)
        d = self._q(self.device_dir)
        code, out, err = self._ssh("mkdir -p %s && chmod 700 %s && rm -rf %s/app && tar -xzf - -C %s --no-same-owner"
                                   % (d, d, d, d), buf.getvalue())
        if code:
            raise _fail(self.name, code, err)

    def civicmote(self, argv):
        cmd = "cd %s && PYTHONPATH=%s %s -m provisioning.cli %s --json" % (
            self._q(self.device_dir), self._q(self.pythonpath), self._q(self.python),
            " ".join(shlex.quote(a) for a in argv))
        code, out, err = self._ssh(cmd)
        if code:
            raise _fail(self.name, code, err)
        return _records(self.name, out)

    def read_file(self, name):
        path = self._q(self.device_dir + "/" + name)
        code, out, err = self._ssh("if [ -e %s ]; then cat %s; else exit 44; fi" % (path, path))
        if code == 44:
            return None
        if code:
            raise _fail(self.name, code, err)
        return out.encode()

    def install(self, files):
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            for name, data in sorted(files.items()):
                _add_bytes(tar, name, data)
        code, out, err = self._ssh("tar -xf - -C %s --no-same-owner" % self._q(self.device_dir), buf.getvalue())
        if code:
            raise _fail(self.name, code, err)

    def install_unit(self):
        code, out, err = self._ssh(_UNIT_SCRIPT % {"dir": self._q(self.device_dir)})
        return _unit_result(self.name, subprocess.CompletedProcess([], code, out, err))

    def forget_identity(self):
        names = " ".join(self._q(self.device_dir + "/" + n) for n in IDENTITY_FILES)
        code, out, err = self._ssh("rm -f %s" % names)
        if code:
            raise _fail(self.name, code, err)


def _add_bytes(tar, name, data):
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o644
    tar.addfile(info, io.BytesIO(data))


def _space_or_env(where, e):
    import errno

    if e.errno == errno.ENOSPC:
        return EnvironmentProblem("%s: no space left on the device; free some space and re-run" % where)
    return EnvironmentProblem("%s: %s" % (where, e.strerror or e))


def _unit_result(where, proc):
    """(installed, note) from the unit script's one line."""
    line = (proc.stdout or "").strip().splitlines()
    line = line[-1] if line else "failed: %s" % ((proc.stderr or "").strip() or "no answer")
    return line.startswith("installed"), line
