"""A disk that is full from the first boot on, on a real tmpfs, with `civicmote run` and a real
collector over Mosquitto: nothing is lost silently, and no half-written file is left behind.

- `device init` reserves the outbox ring, its index and the progress file, and refuses (exit 3)
  a disk too small for them;
- with them reserved, a disk full before the first run loses nothing;
- a folder as an older `device init` left it (no ring, no progress) on a full disk: the
  summaries that could not be queued are kept as a run in the sequence file, and reach the city
  as a `gap` in the first summary that gets through."""
import json
import os
import subprocess

import pytest
from broker import Broker
from cli_helpers import CIVICMOTE
from delivery_support import START, InProcessCollector, make_device, tiny_board
from disk_support import fill, mount_tmpfs, umount_lazy


@pytest.fixture
def disks(tmp_path):
    made = []

    def make(size):
        made.append(mount_tmpfs(tmp_path / ("disk%d" % len(made)), size))
        return made[-1]

    yield make
    for mnt in made:
        umount_lazy(mnt)


def _tmp_files(mnt):
    return [str(p) for p in mnt.rglob("*.tmp")]


def _run(d, *extra, broker=None, start=START, windows=3):
    argv = [CIVICMOTE, "run", "--device-dir", str(d), "--fast", "--start", str(start), "--windows", str(windows),
            "--drain", "15"]
    if broker is not None:
        argv += ["--broker", broker]
    return subprocess.run(argv + list(extra), capture_output=True, text=True, timeout=120)


def _signed(out_dir):
    return {int(p.stem) for p in out_dir.glob("*.cose") if p.stem.isdigit()}


def test_init_on_a_disk_too_small_for_the_state_is_refused_with_exit_3(disks, tmp_path):
    mnt = disks("64k")
    board = tmp_path / "board.json"
    board.write_text(json.dumps(tiny_board()))
    r = subprocess.run([CIVICMOTE, "device", "init", "--device-dir", str(mnt / "dev"), "--board", str(board), "--json"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 3, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "no space left" in lines[0] and "KiB" in lines[0] and "Traceback" not in r.stderr
    j = json.loads(r.stdout)
    assert j["ok"] is False and j["exit_code"] == 3 and j["error"] in lines[0]
    assert _tmp_files(mnt) == []


def test_reserved_at_init_a_disk_full_before_the_first_run_loses_nothing(disks, tmp_path):
    mnt = disks("1m")
    d = mnt / "dev"
    dev, pub = make_device(d)
    assert len(list((d / "outbox").glob("seg*"))) == 64 and (d / "outbox" / "index").exists()
    assert (d / "progress").stat().st_size == 128
    fill(mnt)
    r = _run(d, "--out", str(tmp_path / "full"), windows=12)
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
    assert "could not be written" not in r.stderr
    assert _tmp_files(mnt) == []
    os.remove(mnt / "filler")
    with Broker(tmp_path) as b:
        col = InProcessCollector(b.port, [pub])
        try:
            r = _run(d, "--out", str(tmp_path / "back"), broker=b.url, start=START + 5000, windows=3)
            assert r.returncode == 0, r.stderr
            col.poll_until(lambda: len(col.accepted()) >= 15, 30, "everything delivered")
        finally:
            col.close()
    signed = _signed(tmp_path / "full") | _signed(tmp_path / "back")
    assert len(signed) == 15 and set(col.accepted()) == signed
    assert all(g["cause"] == "skipped-at-reboot" for g in col.of("gap"))


def test_an_unreserved_folder_on_a_full_disk_reports_every_lost_summary_as_a_gap(disks, tmp_path):
    mnt = disks("1m")
    d = mnt / "dev"
    dev, pub = make_device(d)
    import shutil

    shutil.rmtree(d / "outbox")  # as a `device init` from before the reservation left the folder
    (d / "progress").unlink()
    fill(mnt)
    r = _run(d, "--out", str(tmp_path / "full"), windows=12)
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
    assert r.stderr.count("could not be written") == 12
    assert _tmp_files(mnt) == [], "half-written files left on the full disk"
    os.remove(mnt / "filler")  # space returns
    with Broker(tmp_path) as b:
        col = InProcessCollector(b.port, [pub])
        try:
            r = _run(d, "--out", str(tmp_path / "back"), broker=b.url, start=START + 5000, windows=3)
            assert r.returncode == 0, r.stderr
            col.poll_until(lambda: len(col.accepted()) >= 3, 30, "the next summaries delivered")
        finally:
            col.close()
    lost = _signed(tmp_path / "full")
    assert len(lost) == 12 and not lost & set(col.accepted())  # none of them reached the city ...
    dropped = [g for g in col.of("gap") if g["cause"] == "dropped-on-device"]
    assert sum(g["count"] for g in dropped) == 12  # ... and every one of them is accounted for there
    assert all(any(g["first"] <= s <= g["last"] for g in dropped) for s in lost)
    assert not [g for g in col.of("gap") if g["cause"] == "missing"]
    assert _tmp_files(mnt) == []


def test_provision_to_a_disk_too_small_for_the_state_exits_3_and_registers_nothing(disks, tmp_path, capsys,
                                                                                 monkeypatch):
    from cli_helpers import cli
    from provision_support import PASSPHRASE, write_board

    monkeypatch.setenv("CIVICMOTE_CA_PASSPHRASE", PASSPHRASE)
    monkeypatch.setenv("CIVICMOTE_REGISTRY", str(tmp_path / "registry.db"))
    assert cli(capsys, "ca", "init", "--dir", tmp_path / "ca")[0] == 0
    mnt = disks("64k")
    code, out, err = cli(capsys, "provision", "--board", write_board(tmp_path), "--district", "north", "--target",
                         mnt / "dev", "--ca", tmp_path / "ca", "--json")
    assert code == 3 and "no space left" in err and "KiB" in err, err
    assert json.loads(out)["exit_code"] == 3
    from provisioning.pki.registry import Registry

    assert Registry(tmp_path / "registry.db").list() == []
    assert _tmp_files(mnt) == []
