"""Deploy over serial: bad input gets one clear line, a documented exit code, and a re-run that completes."""
import json
import os

import pytest
from cli_helpers import cli, json_failure
from provision_support import PASSPHRASE

from provisioning.field import deploy as deploy_mod
from provisioning.field.serial_board import BoardSession
from provisioning.field.virtual_board import GarbagePort, SilentPort, VirtualBoard

BOARD = "boards/virtual.json"


@pytest.fixture
def site(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("CIVICMOTE_CA_PASSPHRASE", PASSPHRASE)
    monkeypatch.setenv("CIVICMOTE_REGISTRY", str(tmp_path / "registry.db"))
    monkeypatch.setenv("CIVICMOTE_SERIAL_TIMEOUT", "1")
    assert cli(capsys, "ca", "init", "--dir", tmp_path / "ca")[0] == 0
    return tmp_path


def provision(capsys, site, port, *extra):
    return cli(capsys, "provision", "--board", BOARD, "--port", port, "--district", "north", "--ca", site / "ca",
               "--json", *extra)


def one_line(err):
    assert err.startswith("civicmote: error: ") and err.count("\n") == 1, err
    return err


def test_portable_modules_skip_cpython_only_ones():
    rels = [rel for rel, _ in deploy_mod.portable_modules()]
    assert "core/cbor.py" in rels and "runtime/board_main.py" in rels
    assert "crypto/cpython_backend.py" not in rels and "net/paho_transport.py" not in rels


def test_board_that_does_not_answer(site, capsys):
    with SilentPort() as port:
        code, out, err = provision(capsys, site, port.port)
    assert code == 3 and json_failure(out, 3)["error"] in err
    assert "does not answer (tried 3 times" in one_line(err)


def test_port_that_is_not_micropython(site, capsys):
    with GarbagePort() as port:
        code, out, err = provision(capsys, site, port.port)
    assert code == 3 and json_failure(out, 3)["error"] in err
    assert "not a MicroPython REPL" in one_line(err)


def test_missing_port(site, capsys):
    code, out, err = provision(capsys, site, "/dev/ttyNOPE7")
    assert code == 3 and "no such port" in one_line(err)


def test_firmware_too_old_then_reflashed(site, capsys):
    flash = site / "flash"
    with VirtualBoard(flash, mpy=0x206, version="1.21.0") as board:  # .mpy v6.2
        code, out, err = provision(capsys, site, board.port)
    assert code == 4, err
    assert "loads .mpy v6.2" in one_line(err) and "civicmote flash" in err
    assert not (flash / "lib").exists()  # refused before anything was written
    with VirtualBoard(flash) as board:  # "newer firmware": the same board, real ABI
        code, out, err = provision(capsys, site, board.port)
    assert code == 0, err and json.loads(out)["status"] == "provisioned"


def test_full_filesystem_then_space_freed(site, capsys):
    flash = site / "flash"
    flash.mkdir()
    (flash / "old_logs.bin").write_bytes(os.urandom(40 * 1024))
    with VirtualBoard(flash, capacity=96 * 1024) as board:
        code, out, err = provision(capsys, site, board.port)
    assert code == 3, err
    assert "filesystem has" in one_line(err) and "bytes free" in err
    (flash / "old_logs.bin").unlink()
    with VirtualBoard(flash, capacity=256 * 1024) as board:
        code, out, err = provision(capsys, site, board.port)
    assert code == 0, err


def test_someone_elses_agent_needs_force(site, capsys):
    flash = site / "flash"
    (flash / "lib" / "agent").mkdir(parents=True)
    (flash / "lib" / "agent" / "__init__.py").write_text("# another project's agent\n")
    with VirtualBoard(flash) as board:
        code, out, err = provision(capsys, site, board.port)
        assert code == 4, err
        assert "holds another agent" in one_line(err) and "--force" in err
        assert (flash / "lib" / "agent" / "__init__.py").exists()  # left alone
        code, out, err = provision(capsys, site, board.port, "--force")
        assert code == 0, err
    assert not (flash / "lib" / "agent" / "__init__.py").exists()  # stale module removed
    marker = json.loads((flash / "lib" / "agent" / ".civicmote").read_text())
    assert marker["state"] == "installed" and marker["files"]


def test_deploy_copies_only_what_changed_and_verifies(tmp_path):
    with VirtualBoard(tmp_path / "flash") as board, BoardSession.open(board.port) as s:
        first = deploy_mod.deploy(s)
        target = tmp_path / "flash" / "lib" / "agent" / "core" / "cbor.mpy"
        target.write_bytes(b"corrupted")  # flash rot, or a half-written file from a cut
        s.soft_reset()  # the board reloads its flash from the host folder
        second = deploy_mod.deploy(s)
    assert first["files_copied"] == first["files"] and first["bytes_copied"] > 50000
    assert second["files_copied"] == 1 and second["bytes_copied"] == len(target.read_bytes())
    assert target.read_bytes()[:1] == b"M"  # an .mpy again
