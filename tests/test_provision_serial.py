"""Issue 7 end to end: a blank virtual board -> provisioned with the real CLI -> the agent runs
on it -> its signed summaries, read back over the raw REPL, verify against the registry."""
import json
import time

import pytest
from cli_helpers import cli, json_lines, run_cli
from provision_support import PASSPHRASE

from provisioning.field.serial_board import BoardSession
from provisioning.field.serial_target import fetch_outbox
from provisioning.field.virtual_board import VirtualBoard

BOARD = "boards/virtual.json"
WIFI_PASSWORD = "n0t-to-be-printed-7f3a"


@pytest.fixture
def site(tmp_path, monkeypatch):
    env = {"CIVICMOTE_CA_PASSPHRASE": PASSPHRASE, "CIVICMOTE_REGISTRY": str(tmp_path / "registry.db"),
           "CIVICMOTE_WIFI_PASSWORD": WIFI_PASSWORD}
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    p = run_cli("ca", "init", "--dir", tmp_path / "ca", "--json")
    assert p.returncode == 0, p.stderr
    return tmp_path


def provision_args(site, port, *extra):
    return ("provision", "--board", BOARD, "--port", port, "--district", "north", "--ca", site / "ca",
            "--wifi-ssid", "city-iot", "--json") + extra


def test_blank_virtual_board_to_verified_summaries(site):
    with VirtualBoard(site / "flash") as board:
        t0 = time.monotonic()
        p = run_cli(*provision_args(site, board.port), timeout=300)
        took = time.monotonic() - t0
        assert p.returncode == 0, p.stderr
        rec = json.loads(p.stdout)
        assert rec["status"] == "provisioned" and rec["device_id"].startswith("cm")
        assert rec["target"].startswith("serial:") and board.uid in rec["target"]
        assert rec["deploy"]["files_copied"] == rec["deploy"]["files"] > 50
        assert rec["deploy"]["mpy_abi"] == "6.3" and rec["deploy"]["raw_repl_attempts"] == 1
        print("provision (blank board): %.1f s, %d bytes copied" % (took, rec["deploy"]["bytes_copied"]))
        assert WIFI_PASSWORD not in p.stdout + p.stderr

        flash = board.flash_dir
        assert json.loads((flash / "civicmote" / "wifi.json").read_text()) == {"ssid": "city-iot",
                                                                                "password": WIFI_PASSWORD}
        for name in ("device.key", "device.pem", "device.crt", "ca.crt", "config.json", "board.json",
                     "privacy.ledger"):
            assert (flash / "civicmote" / name).exists(), name
        assert (flash / "main.py").read_bytes() == open("boards/virtual/main.py", "rb").read()
        assert sorted(p.name for p in (flash / "lib" / "agent").rglob("*.py")) == []  # compiled only

        # The agent on the board, three windows with the emulated buses and a simulated clock.
        with BoardSession.open(board.port) as s:
            start = int(time.time()) // 300 * 300 + 1
            out = s.exec("from agent.runtime import board_main\n"
                         "a = board_main.run(transport=None, clock=board_main.SimClock(%d, 10), windows=3, "
                         "sleep=lambda ms: None)\nprint(a.closed, a.outbox.depth, a.dev)" % start, timeout=120)
            closed, depth, dev = out.decode().split()
            assert (closed, depth, dev) == ("3", "3", rec["device_id"])
            summaries = fetch_outbox(s, site / "outbox")
        assert [seq for seq, _ in summaries] == [1, 2, 3]

        # Re-running changes nothing on the board and needs no CA passphrase; it pins the release
        # key given (docs/updates.md) in the board's device folder.
        release_key = "04" + "6b17d1f2e12c4247f8bce6e563a440f277037d812deb33a0f4a13945d898c296" \
                             "4fe342e2fe1a7f9b8ee7eb4a7c0f9e162bce33576b315ececbb6406837bf51f5"  # P-256's G
        p = run_cli(*provision_args(site, board.port, "--release-key", release_key), timeout=300,
                    env=_env_without_passphrase())
        assert p.returncode == 0, p.stderr
        again = json.loads(p.stdout)
        assert again["status"] == "unchanged" and again["deploy"]["files_copied"] == 0
        from agent.ota import docs

        assert docs.load_release_keys(str(flash / "civicmote" / "release_keys")) == [bytes.fromhex(release_key)]

    msgs = []
    for seq, data in summaries:
        f = site / ("%d.cose" % seq)
        f.write_bytes(data)
        msgs.append(f)
    export = run_cli("registry", "export", "--json")
    assert export.returncode == 0, export.stderr
    (site / "registry.json").write_text(export.stdout)
    v = run_cli("verify", "--registry", site / "registry.json", "--json", *msgs)
    assert v.returncode == 0, v.stdout + v.stderr
    lines = json_lines(v.stdout)
    assert [(x["ok"], x["device_id"], x["seq"]) for x in lines] == [(True, rec["device_id"], s) for s in (1, 2, 3)]
    # and a flipped bit does not verify
    bad = bytearray(summaries[0][1])
    bad[-5] ^= 1
    (site / "bad.cose").write_bytes(bytes(bad))
    v = run_cli("verify", "--registry", site / "registry.json", "--json", site / "bad.cose")
    assert v.returncode == 1 and json_lines(v.stdout)[0]["ok"] is False


def one_line_err(err):
    assert err.startswith("civicmote: error: ") and err.count("\n") == 1, err
    return err


def _env_without_passphrase():
    import os

    env = dict(os.environ)
    env.pop("CIVICMOTE_CA_PASSPHRASE", None)
    return env


def test_interrupted_at_any_step_rerun_completes(site, capsys, monkeypatch):
    """Pull the plug during the copy, then at the proof of possession: the same command finishes."""
    from provisioning.field import serial_board
    from provisioning.field import serial_target

    monkeypatch.setenv("CIVICMOTE_SERIAL_TIMEOUT", "2")

    with VirtualBoard(site / "flash") as board:
        calls = {"n": 0}
        real = serial_board.BoardSession.write_file

        def unplug_on_tenth(self, path, data):
            calls["n"] += 1
            if calls["n"] == 10:
                board.kill()
            return real(self, path, data)

        serial_board.BoardSession.write_file = unplug_on_tenth
        try:
            code, out, err = cli(capsys, *provision_args(site, board.port), "--json")
        finally:
            serial_board.BoardSession.write_file = real
        assert code == 3, err
        assert "stopped answering" in err and err.count("\n") == 1
        copied = list((board.flash_dir / "lib" / "agent").rglob("*.mpy"))
        assert 0 < len(copied) < 60  # cut halfway
        board.start()
        real_civicmote = serial_target.SerialTarget.civicmote

        def unplug_at_pop(self, argv):
            if argv[:2] == ["device", "pop"]:
                board.kill()
            return real_civicmote(self, argv)

        monkeypatch.setattr(serial_target.SerialTarget, "civicmote", unplug_at_pop)
        code, out, err = cli(capsys, *provision_args(site, board.port))
        assert code == 3 and "stopped answering" in one_line_err(err)
        monkeypatch.setattr(serial_target.SerialTarget, "civicmote", real_civicmote)
        assert (board.flash_dir / "civicmote" / "device.key").exists()  # made on the board before the cut
        key = (board.flash_dir / "civicmote" / "device.key").read_bytes()
        board.start()
        code, out, err = cli(capsys, *provision_args(site, board.port))
        assert code == 0, err
        assert (board.flash_dir / "civicmote" / "device.key").read_bytes() == key  # the identity is kept
        rec = json.loads(out)
        assert rec["status"] == "provisioned" and rec["deploy"]["files_copied"] == 0  # the copy was finished before
        from provisioning.field.deploy import portable_modules

        assert len(list((board.flash_dir / "lib" / "agent").rglob("*.mpy"))) == len(portable_modules())
        assert not list(board.flash_dir.rglob("*.part"))
        code, out, err = cli(capsys, *provision_args(site, board.port))
        assert code == 0 and json.loads(out)["status"] == "unchanged"


def test_batch_accepts_serial_ports(site, capsys):
    with VirtualBoard(site / "flash") as board:
        csv = site / "devices.csv"
        csv.write_text("board,target,district\n%s,serial:%s,north\n" % (__import__("os").path.abspath(BOARD),
                                                                       board.port))
        code, out, err = cli(capsys, "batch", csv, "--ca", site / "ca", "--json")
        assert code == 0, err
        rows = json_lines(out)
        assert rows[0]["status"] == "provisioned" and rows[-1]["provisioned"] == 1
        code, out, err = cli(capsys, "batch", csv, "--ca", site / "ca", "--json")
        assert code == 0 and json_lines(out)[0]["status"] == "skipped"
