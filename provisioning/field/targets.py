"""Where a Linux device lives: a local folder, or a board reached over ssh (CPython only).

Both targets offer the same operations, so provisioning is one flow (DirTarget here, SSHTarget in
ssh_target.py; the systemd unit and the helpers both use are here):
    prepare(board_json)     make the device folder, put the board profile (and, over ssh, the agent) there
    civicmote(argv)         run a civicmote command *on the device* and return its JSON records
    read_file(name)         a file of the device folder, or None (read_files(names): several)
    install(files)          write {name: bytes} into the device folder
    install_unit()          install civicmote.service into systemd on a real Pi; say what happened
    forget_identity()       delete the device key and what derives from it (for --rekey)
The private key is only ever touched by `civicmote device ...` running on the device.
"""
import io
import json
import os
import shlex
import subprocess
import sys
import tarfile
from pathlib import Path

# The agent's systemd unit is made in provisioning/device/pi_units.py (the Pi's root updater writes
# the same unit); the ssh target installs it from here.
from provisioning.device.pi_units import UNIT_GROUPS, UNIT_USER, unit_text  # noqa: F401
from provisioning.errors import (EXIT_ENVIRONMENT, EXIT_FAILED, EXIT_USAGE, EnvironmentProblem, ProvisioningError)

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
  if $S install -m 0644 "$d/civicmote.service" /etc/systemd/system/civicmote.service && $S systemctl daemon-reload \
     && $S systemctl enable civicmote.service >/dev/null 2>&1 && $S systemctl restart civicmote.service; then
    sleep %(settle)d  # Type=notify: started means the agent said READY; it must also stay up
    if systemctl is-active --quiet civicmote.service \
       && [ "$(systemctl show -p NRestarts --value civicmote.service)" = 0 ]; then echo 'installed: civicmote.service running'
    else echo 'failed: civicmote.service does not stay up; see journalctl -u civicmote'; fi
  else echo 'failed: could not install civicmote.service (root or passwordless sudo needed)'; fi
fi"""
UNIT_SETTLE_S = 5
UNIT_DOWN = "failed: civicmote.service does not stay up"


def _device_argv(where, argv):
    """{'action': init|pop|show, '--opt': value} of a `device ACTION --opt value ...` argv."""
    argv = [a for a in argv if a != "--json"]
    if len(argv) < 2 or argv[0] != "device" or argv[1] not in ("init", "pop", "show") or len(argv) % 2:
        raise ProvisioningError("%s: not a device-side command: %s" % (where, " ".join(argv)), EXIT_USAGE)
    opts = dict(zip(argv[2::2], argv[3::2]))
    opts["action"] = argv[1]
    return opts


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
        """Run `civicmote device init|pop|show` as the device side, in this process; its JSON records.

        The same device-side actions the command runs on a Pi, called directly (not through the
        command line, which sits above this module), with the command's errors and exit codes."""
        from agent.errors import AgentError, ConfigError, DecodeError
        from provisioning.device import actions

        opts = _device_argv(self.name, argv)
        try:
            if opts["action"] == "init":
                rec = actions.init(opts["--device-dir"], opts["--board"], opts.get("--district"))
            elif opts["action"] == "pop":
                rec = actions.pop(opts["--device-dir"], opts["--challenge"])
            else:
                rec = actions.show(opts["--device-dir"])
        except ProvisioningError as e:
            raise ProvisioningError("%s: %s" % (self.name, e), e.exit_code)
        except (ConfigError, DecodeError) as e:
            raise ProvisioningError("%s: %s" % (self.name, e), EXIT_USAGE)
        except AgentError as e:
            raise ProvisioningError("%s: %s" % (self.name, e), EXIT_FAILED)
        except OSError as e:
            raise _space_or_env(self.name, e)
        return [rec]

    def read_file(self, name):
        try:
            return (self.path / name).read_bytes()
        except FileNotFoundError:
            return None
        except OSError as e:
            raise EnvironmentProblem("%s: cannot read %s (%s)" % (self.name, name, e.strerror))

    def read_files(self, names):
        return {n: self.read_file(n) for n in names}

    def install(self, files):
        from agent import compat

        for name, data in sorted(files.items()):
            try:
                compat.write_file_atomic(str(self.path / name), data)
            except OSError as e:
                raise _space_or_env(self.name, e)

    def install_unit(self):
        script = _UNIT_SCRIPT % {"dir": shlex.quote(self.name), "settle": UNIT_SETTLE_S}
        return _unit_result(self.name, subprocess.run(["sh", "-c", script], capture_output=True, text=True))

    def forget_identity(self):
        for name in IDENTITY_FILES:
            try:
                (self.path / name).unlink()
            except FileNotFoundError:
                pass


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
