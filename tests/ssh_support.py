"""A local OpenSSH server on loopback for the ssh provisioning tests, and a "stock" device Python.

`LocalSSHD(dir)` starts its own sshd (generated host key, one authorised key, a free port) and
writes an ssh_config file for the system's OpenSSH client; tests point civicmote at it with
$CIVICMOTE_SSH_CONFIG. `bare_python(dir)` makes a venv without pip and without the system's
site-packages: a Python 3 with the standard library only, like a stock Raspberry Pi OS image
where nothing was pip-installed. docs/provisioning.md ("Testing ssh provisioning locally")
shows the same by hand.
"""
import getpass
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from provision_support import free_port

SSHD = "/usr/sbin/sshd"


def sshd_usable():
    return bool(os.path.exists(SSHD) and shutil.which("ssh") and shutil.which("ssh-keygen") and os.geteuid() == 0)


SKIP_REASON = "needs root, /usr/sbin/sshd and the OpenSSH client (apt install openssh-server openssh-client)"


class LocalSSHD:
    def __init__(self, d):
        d = Path(d)
        d.mkdir(parents=True, exist_ok=True)
        self.dir = d
        os.makedirs("/run/sshd", exist_ok=True)  # sshd's privilege-separation directory
        for name in ("host_key", "client_key"):
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(d / name)], check=True)
        shutil.copy(d / "client_key.pub", d / "authorized_keys")
        os.chmod(d, 0o700)
        self.port = free_port()
        self.user = getpass.getuser()
        (d / "sshd_config").write_text(
            "Port %d\nListenAddress 127.0.0.1\nHostKey %s\nAuthorizedKeysFile %s\nPasswordAuthentication no\n"
            "KbdInteractiveAuthentication no\nPermitRootLogin prohibit-password\nStrictModes no\nUsePAM no\n"
            "PidFile %s\nSubsystem sftp internal-sftp\nAcceptEnv LANG\nMaxSessions 50\nMaxStartups 50\n"
            % (self.port, d / "host_key", d / "authorized_keys", d / "sshd.pid"))
        self.config = d / "ssh_config"
        self.config.write_text(
            "Host *\n  IdentityFile %s\n  IdentitiesOnly yes\n  StrictHostKeyChecking no\n"
            "  UserKnownHostsFile /dev/null\n  LogLevel ERROR\n" % (d / "client_key"))
        self.proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(d / "sshd_config")],
                                     stderr=open(d / "sshd.log", "w"))
        self.error = self._wait()

    def _wait(self):
        deadline = time.time() + 10
        while time.time() < deadline:
            r = subprocess.run(["ssh", "-F", str(self.config), "-p", str(self.port), "-o", "BatchMode=yes",
                                "%s@127.0.0.1" % self.user, "true"], capture_output=True)
            if r.returncode == 0:
                return None
            if self.proc.poll() is not None:
                return "sshd could not run here: %s" % (self.dir / "sshd.log").read_text()[-300:]
            time.sleep(0.1)
        return "sshd did not accept our key: %s" % (self.dir / "sshd.log").read_text()[-300:]

    def url(self, remote_dir):
        return "ssh://%s@127.0.0.1:%d%s" % (self.user, self.port, remote_dir)

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def bare_python(d):
    """A Python with the standard library only (no pip, no site-packages): the stock device."""
    d = Path(d)
    if not (d / "bin" / "python3").exists():
        base = getattr(sys, "_base_executable", None) or shutil.which("python3")
        subprocess.run([base, "-m", "venv", "--without-pip", str(d)], check=True)
    py = str(d / "bin" / "python3")
    r = subprocess.run([py, "-c", "import importlib.util as u; print([m for m in ('cryptography', 'paho', "
                        "'serial', 'rich') if u.find_spec(m)])"], capture_output=True, text=True, check=True)
    assert r.stdout.strip() == "[]", "the bare Python sees third-party packages: %s" % r.stdout
    return py


def main(argv=None):
    """`python tests/ssh_support.py DIR`: a local ssh test target until Ctrl-C (docs/provisioning.md)."""
    import signal

    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python tests/ssh_support.py DIR   (as root; DIR holds the sshd's keys and config)",
              file=sys.stderr)
        return 2
    if not sshd_usable():
        print(SKIP_REASON, file=sys.stderr)
        return 3
    d = Path(argv[0]).absolute()
    sshd = LocalSSHD(d / "sshd")
    if sshd.error:
        print(sshd.error, file=sys.stderr)
        sshd.stop()
        return 3
    py = bare_python(d / "stock-python")
    print("export CIVICMOTE_SSH_CONFIG=%s CIVICMOTE_REMOTE_PYTHON=%s" % (sshd.config, py))
    print("# target: %s" % sshd.url(str(d / "board")), flush=True)
    stop = []
    signal.signal(signal.SIGTERM, lambda *a: stop.append(1))
    try:
        while not stop and sshd.proc.poll() is None:
            time.sleep(0.2)
    except KeyboardInterrupt:
        pass
    sshd.stop()
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    sys.exit(main())
