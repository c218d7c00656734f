"""`civicmote provision --target ssh://USER@HOST:PORT/DIR` against a real OpenSSH server on loopback.

The test starts its own sshd (generated host key, one authorised key, a free port) and points
the system's OpenSSH client at it with an ssh_config file ($CIVICMOTE_SSH_CONFIG). The
"board" is this machine; the agent is shipped to DIR/app and run there by the remote python.
"""
import getpass
import json
import os
import shutil
import subprocess
import sys
import time

import pytest
from cli_helpers import cli
from provision_support import PASSPHRASE, free_port, write_board

from provisioning.pki.registry import Registry

SSHD = "/usr/sbin/sshd"


def _sshd_usable():
    return os.path.exists(SSHD) and shutil.which("ssh") and shutil.which("ssh-keygen") and os.geteuid() == 0


pytestmark = pytest.mark.skipif(not _sshd_usable(), reason="needs root, /usr/sbin/sshd and the OpenSSH client "
                                                           "(apt install openssh-server openssh-client)")


@pytest.fixture
def sshd(tmp_path, monkeypatch):
    d = tmp_path / "sshd"
    d.mkdir()
    os.makedirs("/run/sshd", exist_ok=True)  # sshd's privilege-separation directory
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(d / "host_key")], check=True)
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(d / "client_key")], check=True)
    shutil.copy(d / "client_key.pub", d / "authorized_keys")
    os.chmod(d, 0o700)
    port = free_port()
    (d / "sshd_config").write_text(
        "Port %d\nListenAddress 127.0.0.1\nHostKey %s\nAuthorizedKeysFile %s\nPasswordAuthentication no\n"
        "KbdInteractiveAuthentication no\nPermitRootLogin prohibit-password\nStrictModes no\nUsePAM no\n"
        "PidFile %s\nSubsystem sftp internal-sftp\nAcceptEnv LANG\n"
        % (port, d / "host_key", d / "authorized_keys", d / "sshd.pid"))
    (d / "ssh_config").write_text(
        "Host *\n  IdentityFile %s\n  IdentitiesOnly yes\n  StrictHostKeyChecking no\n  UserKnownHostsFile /dev/null\n"
        "  LogLevel ERROR\n" % (d / "client_key"))
    proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(d / "sshd_config")], stderr=open(d / "sshd.log", "w"))
    monkeypatch.setenv("CIVICMOTE_SSH_CONFIG", str(d / "ssh_config"))
    # The board's python: this venv's, so the shipped agent runs with a recent `cryptography`.
    monkeypatch.setenv("CIVICMOTE_REMOTE_PYTHON", sys.executable)
    monkeypatch.setenv("CIVICMOTE_CA_PASSPHRASE", PASSPHRASE)
    monkeypatch.setenv("CIVICMOTE_REGISTRY", str(tmp_path / "registry.db"))
    deadline = time.time() + 10
    while time.time() < deadline:
        r = subprocess.run(["ssh", "-F", str(d / "ssh_config"), "-p", str(port), "-o", "BatchMode=yes",
                            "%s@127.0.0.1" % getpass.getuser(), "true"], capture_output=True)
        if r.returncode == 0:
            break
        if proc.poll() is not None:
            pytest.skip("sshd could not run here: %s" % (d / "sshd.log").read_text()[-300:])
        time.sleep(0.1)
    else:
        proc.terminate()
        pytest.skip("sshd did not accept our key: %s" % (d / "sshd.log").read_text()[-300:])
    yield port
    proc.terminate()
    proc.wait(5)


def test_provision_over_ssh_then_noop_then_rekey(tmp_path, capsys, sshd):
    assert cli(capsys, "ca", "init", "--dir", tmp_path / "ca")[0] == 0
    remote = tmp_path / "board-disk" / "civicmote"
    url = "ssh://%s@127.0.0.1:%d%s" % (getpass.getuser(), sshd, remote)
    argv = ["provision", "--board", write_board(tmp_path), "--district", "harbour", "--target", url,
            "--ca", tmp_path / "ca", "--broker", "mqtts://localhost:8883", "--json"]
    code, out, err = cli(capsys, *argv)
    assert code == 0, err
    r = json.loads(out)
    assert r["status"] == "provisioned" and r["target"] == url
    # Everything landed on the board, made there: key, PEM, certificate, config, unit, the agent.
    for f in ("device.key", "device.pem", "device.crt", "ca.crt", "config.json", "civicmote.service",
              "app/agent/__init__.py", "app/provisioning/cli/__init__.py"):
        assert (remote / f).exists(), f
    assert json.loads((remote / "device.json").read_text())["device_id"] == r["device_id"]
    assert "PYTHONPATH=%s/app" % remote in (remote / "civicmote.service").read_text()
    assert r["systemd"].startswith("skipped")
    rec = Registry(tmp_path / "registry.db").get(r["device_id"])
    assert rec["target"] == url and rec["status"] == "active"
    code, out, err = cli(capsys, *argv)
    assert code == 0 and json.loads(out)["status"] == "unchanged"
    code, out, err = cli(capsys, *(argv + ["--rekey"]))
    assert code == 0, err
    new = json.loads(out)
    assert new["device_id"] != r["device_id"] and new["retired"] == [r["device_id"]]


def test_unreachable_target_is_an_environment_error(tmp_path, capsys, sshd):
    assert cli(capsys, "ca", "init", "--dir", tmp_path / "ca")[0] == 0
    dead = free_port()
    code, out, err = cli(capsys, "provision", "--board", write_board(tmp_path), "--district", "harbour",
                         "--target", "ssh://root@127.0.0.1:%d/tmp/x" % dead, "--ca", tmp_path / "ca")
    assert code == 3
    assert err.count("\n") == 1 and "unreachable" in err and "re-run" in err
    assert Registry(tmp_path / "registry.db").list() == []
