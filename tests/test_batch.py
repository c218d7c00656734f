"""`civicmote batch FILE.csv`: 50 simulated devices, JSON lines, failures, re-runs, the progress bar."""

import pytest
from cli_helpers import cli, json_failure, json_lines, run_cli
from provision_support import PASSPHRASE, env, write_board

from provisioning.pki import ca as ca_mod
from provisioning.pki.registry import Registry

N = 50


@pytest.fixture
def plan(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("CIVICMOTE_CA_PASSPHRASE", PASSPHRASE)
    monkeypatch.setenv("CIVICMOTE_REGISTRY", str(tmp_path / "registry.db"))
    assert cli(capsys, "ca", "init", "--dir", tmp_path / "ca")[0] == 0
    write_board(tmp_path)
    rows = ["board,target,district,location"]
    for i in range(N):
        rows.append("board.json,devices/d%02d,%s,pole %d" % (i, ("north", "south")[i % 2], i))
    csv = tmp_path / "fleet.csv"
    csv.write_text("\n".join(rows) + "\n")
    return tmp_path, csv


def test_fifty_devices_with_json_lines_then_rerun_skips(plan, capsys, monkeypatch):
    tmp, csv = plan
    unlocks = []
    real = ca_mod.load_ca
    monkeypatch.setattr(ca_mod, "load_ca", lambda *a: unlocks.append(1) or real(*a))
    code, out, err = cli(capsys, "batch", csv, "--ca", tmp / "ca", "--json")
    assert code == 0, err
    lines = json_lines(out)
    rows, summary = lines[:-1], lines[-1]
    assert len(rows) == N and all(r["status"] == "provisioned" and r["ok"] for r in rows)
    assert summary["summary"] is True and summary["provisioned"] == N and summary["failed"] == 0
    assert len(unlocks) == 1, "the CA key must be decrypted once per batch"
    reg = Registry(tmp / "registry.db")
    assert len(reg.list(status="active")) == N
    assert reg.list(district="south")[0]["location"].startswith("pole ")
    assert len({r["device_id"] for r in rows}) == N
    code, out, err = cli(capsys, "batch", csv, "--ca", tmp / "ca", "--json")
    again = json_lines(out)
    assert code == 0 and again[-1]["skipped"] == N and again[-1]["provisioned"] == 0


def test_failures_do_not_stop_the_batch(plan, capsys):
    tmp, csv = plan
    (tmp / "bad.json").write_text('{"board": "x"}')
    csv.write_text("board,target,district\nboard.json,devices/ok1,north\nbad.json,devices/bad,north\n"
                   "board.json,ssh://nobody@127.0.0.1:1/x,north\nboard.json,devices/ok2,north\n")
    code, out, err = cli(capsys, "batch", csv, "--ca", tmp / "ca", "--json")
    assert code == 1
    lines = json_lines(out)
    assert [r["status"] for r in lines[:-1]] == ["provisioned", "failed", "failed", "provisioned"]
    assert lines[1]["exit_code"] == 2 and "missing" in lines[1]["error"]
    assert lines[2]["exit_code"] == 3 and "unreachable" in lines[2]["error"]
    assert lines[-1]["failed"] == 2 and [f["line"] for f in lines[-1]["failures"]] == [3, 4]
    # Fix the profile; the re-run skips what is done and finishes the rest.
    write_board(tmp)
    (tmp / "bad.json").write_text((tmp / "board.json").read_text())
    code, out, err = cli(capsys, "batch", csv, "--ca", tmp / "ca", "--json")
    assert [r["status"] for r in json_lines(out)[:-1]] == ["skipped", "provisioned", "failed", "skipped"]


def test_wrong_passphrase_stops_the_batch_once(plan, capsys, monkeypatch):
    tmp, csv = plan
    monkeypatch.setenv("CIVICMOTE_CA_PASSPHRASE", "nope nope nope")
    code, out, err = cli(capsys, "batch", csv, "--ca", tmp / "ca", "--json")
    assert code == 2 and "wrong CA passphrase" in err and err.count("\n") == 1
    assert Registry(tmp / "registry.db").list() == []


def test_bad_csv_names_the_line(tmp_path, capsys):
    csv = tmp_path / "x.csv"
    csv.write_text("board,target\nb.json,devices/a\n")
    code, out, err = cli(capsys, "batch", csv, "--registry", tmp_path / "r.db")
    assert code == 2 and "district" in err
    csv.write_text("board,target,district\nb.json,,north\n")
    code, out, err = cli(capsys, "batch", csv, "--registry", tmp_path / "r.db")
    assert code == 2 and "x.csv:2" in err and "target" in err


def test_progress_bar_on_a_terminal(plan):
    """The installed script under a pseudo-terminal draws rich's bar and prints the summary."""
    import os
    import pty
    import subprocess

    tmp, csv = plan
    csv.write_text("board,target,district\n" + "".join("board.json,devices/t%d,north\n" % i for i in range(3)))
    master, slave = pty.openpty()
    e = env(tmp)
    e["COLUMNS"] = "100"
    from cli_helpers import CIVICMOTE

    p = subprocess.Popen([CIVICMOTE, "batch", str(csv), "--ca", str(tmp / "ca")], stdin=slave, stdout=slave,
                         stderr=slave, env=e, close_fds=True)
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 4096)
        except OSError:
            break
        if not data:
            break
        chunks.append(data)
    assert p.wait(60) == 0
    os.close(master)
    text = b"".join(chunks).decode(errors="replace")
    assert "provisioning" in text and "3/3" in text  # rich's bar with its M/N column
    assert "3 device(s): 3 provisioned" in text


def test_plain_lines_without_a_terminal(plan):
    tmp, csv = plan
    csv.write_text("board,target,district\nboard.json,devices/p0,north\n")
    p = run_cli("batch", csv, "--ca", tmp / "ca", env=env(tmp))
    assert p.returncode == 0, p.stderr
    assert "line 2 devices/p0: provisioned cm" in p.stdout and "1 provisioned" in p.stdout


@pytest.mark.parametrize("text,where,words", [
    ("board,target,distrct\nboard.json,devices/a,north\n", ":1:", "unknown column 'distrct'"),
    ('board,target,district\nboard.json,"devices/a,north\nboard.json,devices/b,north\nboard.json,devices/c,north\n',
     ":2:", "unbalanced quote"),
    ("board,target,district\nboard.json,devices/a,north\nboard.json,devices/b,north\nboard.json,devices/a,south\n",
     ":4:", "line 2"),
    ("board,target,district\nboard.json,devices/a,north,extra\n", ":2:", "4 fields but the header has 3"),
])
def test_strict_csv_is_refused_before_anything_is_done(plan, capsys, text, where, words):
    tmp, csv = plan
    csv.write_text(text)
    code, out, err = cli(capsys, "batch", csv, "--ca", tmp / "ca", "--json")
    assert code == 2 and "fleet.csv" + where in err and words in err, err
    assert json_failure(out, 2)["error"] in err and not (tmp / "devices").exists()
    assert not (tmp / "registry.db").exists() or Registry(tmp / "registry.db").list() == []


def test_jobs_provision_in_parallel_with_the_same_results(plan, capsys):
    tmp, csv = plan
    code, out, err = cli(capsys, "batch", csv, "--ca", tmp / "ca", "--json", "--jobs", "4")
    assert code == 0, err
    lines = json_lines(out)
    assert sorted(r["line"] for r in lines[:-1]) == list(range(2, N + 2))
    assert lines[-1]["provisioned"] == N and lines[-1]["ok"] is True
    assert len(Registry(tmp / "registry.db").list(status="active")) == N
    code, out, err = cli(capsys, "batch", csv, "--jobs", "0")
    assert code == 2 and "--jobs" in err


def test_sigterm_ends_with_a_summary_and_no_unrecorded_certificate(plan):
    """SIGTERM mid-batch: devices in flight finish, the rest are not started, the summary line comes,
    and every certificate on a device folder is the one the registry holds for it."""
    import json
    import signal
    import subprocess

    from cli_helpers import CIVICMOTE

    tmp, csv = plan
    p = subprocess.Popen([CIVICMOTE, "batch", str(csv), "--ca", str(tmp / "ca"), "--json", "--jobs", "2"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env(tmp))
    first = p.stdout.readline()
    assert json.loads(first)["status"] == "provisioned"
    p.send_signal(signal.SIGTERM)
    rest, err = p.communicate(timeout=60)
    lines = json_lines(first + rest)
    summary = lines[-1]
    assert p.returncode == 130, err
    assert summary["summary"] is True and summary["interrupted"] is True and summary["ok"] is False
    assert summary["not_started"] > 0 and summary["provisioned"] + summary["not_started"] == N
    assert "interrupted (SIGTERM)" in err
    reg = Registry(tmp / "registry.db")
    held = {d["device_id"]: d["certificate"] for d in reg.list()}
    on_disk = list((tmp / "devices").glob("*/device.crt"))
    assert len(held) >= len(on_disk) == summary["provisioned"]
    for crt in on_disk:
        dev = json.loads((crt.parent / "device.json").read_text())["device_id"]
        assert held[dev] == crt.read_text()
