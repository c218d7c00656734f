"""`civicmote provision --target ssh://USER@HOST:PORT/DIR` against a real OpenSSH server on loopback.

The test starts its own sshd (tests/ssh_support.py) and points the system's OpenSSH client at it
with an ssh_config file ($CIVICMOTE_SSH_CONFIG). The "board" is this machine, and its Python is a
stock one: a venv with the standard library only (no cryptography, no paho), as on a fresh
Raspberry Pi OS image. Provisioning ships the agent there, has the device connect to a real
Mosquitto with its own certificate before saying "provisioned", and the shipped agent then
delivers summaries that verify.
"""
import json
import shutil
import subprocess

import pytest
from cli_helpers import cli, json_lines
from provision_support import PASSPHRASE, Mosquitto, free_port, write_board
from ssh_support import SKIP_REASON, LocalSSHD, bare_python, sshd_usable

from provisioning.pki.registry import Registry

pytestmark = pytest.mark.skipif(not sshd_usable(), reason=SKIP_REASON)


@pytest.fixture
def sshd(tmp_path, monkeypatch):
    s = LocalSSHD(tmp_path / "sshd")
    if s.error:
        s.stop()
        pytest.skip(s.error)
    monkeypatch.setenv("CIVICMOTE_SSH_CONFIG", str(s.config))
    monkeypatch.setenv("CIVICMOTE_REMOTE_PYTHON", bare_python(tmp_path / "stock-python"))
    monkeypatch.setenv("CIVICMOTE_CA_PASSPHRASE", PASSPHRASE)
    monkeypatch.setenv("CIVICMOTE_REGISTRY", str(tmp_path / "registry.db"))
    yield s
    s.stop()


@pytest.fixture
def broker(tmp_path, capsys, sshd):
    if not shutil.which("mosquitto") and not shutil.which("/usr/sbin/mosquitto"):
        pytest.skip("needs Mosquitto")
    assert cli(capsys, "ca", "init", "--dir", tmp_path / "ca")[0] == 0
    Registry(tmp_path / "registry.db", create=True).close()
    port = free_port()
    code, out, err = cli(capsys, "broker-config", "--ca", tmp_path / "ca", "--out", tmp_path / "broker",
                         "--port", port, "--bind", "127.0.0.1", "--user", "root", "--json")
    assert code == 0, err
    m = Mosquitto(tmp_path / "broker" / "mosquitto.conf", port)
    yield port, m
    m.stop()


def test_stock_python_device_is_checked_then_delivers_verified_summaries(tmp_path, capsys, sshd, broker):
    port, mosquitto = broker
    remote = tmp_path / "board-disk" / "civicmote"
    url = sshd.url(remote)
    argv = ["provision", "--board", write_board(tmp_path), "--district", "harbour", "--target", url,
            "--ca", tmp_path / "ca", "--broker", "mqtts://localhost:%d" % port, "--json"]
    code, out, err = cli(capsys, *argv)
    assert code == 0, err
    r = json.loads(out)
    assert r["status"] == "provisioned" and r["target"] == url
    # The device connected to the broker with its own certificate, on the standard library alone.
    assert r["broker_check"]["connected"] is True and r["broker_check"]["transport"] == "stdlib"
    for f in ("device.key", "device.pem", "device.crt", "ca.crt", "config.json", "civicmote.service",
              "app/agent/__init__.py", "app/provisioning/cli/__init__.py"):
        assert (remote / f).exists(), f
    assert json.loads((remote / "device.json").read_text())["device_id"] == r["device_id"]
    assert "PYTHONPATH=%s/app" % remote in (remote / "civicmote.service").read_text()
    assert r["systemd"].startswith("skipped")
    rec = Registry(tmp_path / "registry.db").get(r["device_id"])
    assert rec["target"] == url and rec["status"] == "active"

    # The unit's command, run over ssh with the stock Python: summaries reach Mosquitto.
    unit = (remote / "civicmote.service").read_text()
    exec_start = [ln for ln in unit.splitlines() if ln.startswith("ExecStart=")][0][len("ExecStart="):]
    run = "cd %s && PYTHONPATH=%s/app %s --windows 2 --fast --out %s/sent --drain 10 --json" % (
        remote, remote, exec_start, remote)
    p = subprocess.run(["ssh", "-F", str(sshd.config), "-p", str(sshd.port), "-o", "BatchMode=yes",
                        "%s@127.0.0.1" % sshd.user, run], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    stopped = json_lines(p.stdout)[-1]
    assert stopped["event"] == "stopped" and stopped["delivered"] >= 2 and stopped["queued"] == 0
    code, out, err = cli(capsys, "registry", "export", "--json")
    (tmp_path / "registry.json").write_text(out)
    sent = sorted((remote / "sent").glob("*.cose"))
    code, out, err = cli(capsys, "verify", "--registry", tmp_path / "registry.json", *sent, "--json")
    assert code == 0, out + err
    assert all(v["ok"] for v in json_lines(out)) and len(json_lines(out)) == len(sent) >= 3

    # Re-running changes nothing and checks again; a revoked device is refused by the broker (exit 4).
    code, out, err = cli(capsys, *argv)
    assert code == 0 and json.loads(out)["status"] == "unchanged" and json.loads(out)["broker_check"]["connected"]
    assert cli(capsys, "registry", "revoke", r["device_id"])[0] == 0
    assert cli(capsys, "broker-config", "--ca", tmp_path / "ca", "--out", tmp_path / "broker", "--port", port,
               "--bind", "127.0.0.1", "--user", "root")[0] == 0
    mosquitto.reload()
    p = subprocess.run(["ssh", "-F", str(sshd.config), "-p", str(sshd.port), "-o", "BatchMode=yes",
                        "%s@127.0.0.1" % sshd.user, "cd %s && PYTHONPATH=%s/app %s -m provisioning.cli device check "
                        "--device-dir %s --timeout 5" % (remote, remote, exec_start.split()[0], remote)],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 4, p.stderr
    assert "refused" in p.stderr and r["device_id"] in p.stderr
    # The agent itself, stopping with summaries the broker would not take: exit 4 and why, on stderr.
    p = subprocess.run(["ssh", "-F", str(sshd.config), "-p", str(sshd.port), "-o", "BatchMode=yes",
                        "%s@127.0.0.1" % sshd.user, run.replace("--windows 2", "--windows 1").replace(
                            "--drain 10", "--drain 3")], capture_output=True, text=True, timeout=120)
    assert p.returncode == 4, p.stderr
    assert "not delivered: the broker" in p.stderr and "refused the device" in p.stderr
    assert json_lines(p.stdout)[-1]["undelivered_reason"].startswith("the broker")


def test_provision_without_check_then_noop_then_rekey(tmp_path, capsys, sshd):
    assert cli(capsys, "ca", "init", "--dir", tmp_path / "ca")[0] == 0
    remote = tmp_path / "board-disk" / "civicmote"
    url = sshd.url(remote)
    argv = ["provision", "--board", write_board(tmp_path), "--district", "harbour", "--target", url,
            "--ca", tmp_path / "ca", "--broker", "mqtts://localhost:%d" % free_port(), "--json"]
    code, out, err = cli(capsys, *argv)
    assert code == 3 and "cannot reach the broker" in err
    # The certificate issued before the failed check is in the registry: nothing is left unaccounted for.
    reg = Registry(tmp_path / "registry.db")
    assert [d["status"] for d in reg.list()] == ["active"]
    code, out, err = cli(capsys, *(argv + ["--no-check"]))
    assert code == 0, err
    r = json.loads(out)
    assert r["status"] == "unchanged" and "broker_check" not in r
    code, out, err = cli(capsys, *(argv + ["--no-check", "--rekey"]))
    assert code == 0, err
    new = json.loads(out)
    assert new["device_id"] != r["device_id"] and new["retired"] == [r["device_id"]]
    assert Registry(tmp_path / "registry.db").get(r["device_id"])["status"] == "revoked"


def test_unreachable_target_is_an_environment_error(tmp_path, capsys, sshd):
    assert cli(capsys, "ca", "init", "--dir", tmp_path / "ca")[0] == 0
    dead = free_port()
    code, out, err = cli(capsys, "provision", "--board", write_board(tmp_path), "--district", "harbour",
                         "--target", "ssh://root@127.0.0.1:%d/tmp/x" % dead, "--ca", tmp_path / "ca")
    assert code == 3
    assert err.count("\n") == 1 and "unreachable" in err and "re-run" in err
    assert Registry(tmp_path / "registry.db").list() == []


def test_profile_for_another_runtime_is_refused_before_anything_is_written(tmp_path, capsys, sshd):
    board = json.loads((write_board(tmp_path)).read_text())
    board["runtime"] = "micropython"
    (tmp_path / "mpy.json").write_text(json.dumps(board))
    remote = tmp_path / "untouched"
    code, out, err = cli(capsys, "provision", "--board", tmp_path / "mpy.json", "--district", "harbour",
                         "--target", sshd.url(remote), "--ca", tmp_path / "ca")
    assert code == 2 and "runs micropython" in err and "--port" in err
    assert not remote.exists()


def test_batch_over_ssh_in_parallel_checks_every_device(tmp_path, capsys, sshd, broker):
    port, _ = broker
    write_board(tmp_path)
    rows = ["board,target,district"] + ["board.json,%s,north" % sshd.url(tmp_path / ("pole%d" % i)) for i in range(3)]
    (tmp_path / "fleet.csv").write_text("\n".join(rows) + "\n")
    code, out, err = cli(capsys, "batch", tmp_path / "fleet.csv", "--ca", tmp_path / "ca", "--jobs", "3",
                         "--broker", "mqtts://localhost:%d" % port, "--json")
    assert code == 0, err
    lines = json_lines(out)
    assert lines[-1]["provisioned"] == 3 and lines[-1]["ok"] is True
    assert all(r["broker_check"]["connected"] for r in lines[:-1])
    assert not list(tmp_path.glob("civicmote-ssh-*"))  # each shared connection was closed
