"""Device state as it is really treated in the field, with real processes and real files:
two agents on one folder, a lost or corrupt `seq` file delivered to a real collector over
Mosquitto, and a full disk (a small tmpfs) under a running agent."""
import os
import subprocess
import time

import pytest
from broker import Broker
from cli_helpers import CIVICMOTE
from delivery_support import START, InProcessCollector, make_device
from disk_support import fill, mount_tmpfs, umount_lazy

from agent.runtime import device
from agent.store.outbox import Outbox
from provisioning.city.collector import SEQ_RESET


def _box(path):
    """The device's outbox with the agent's own bounds (smaller ones would drop what it queued)."""
    return Outbox(str(path), device.OUTBOX_BYTES, device.OUTBOX_COUNT)


def _run(d, *extra, broker=None, start=START, windows=3):
    argv = [CIVICMOTE, "run", "--device-dir", str(d), "--fast", "--start", str(start), "--windows", str(windows),
            "--drain", "15"]
    if broker is not None:
        argv += ["--broker", broker]
    return subprocess.run(argv + list(extra), capture_output=True, text=True, timeout=120)


def test_a_second_agent_on_one_folder_is_refused_naming_the_first(tmp_path):
    d = tmp_path / "dev"
    make_device(d, window_s=3600)  # the first agent, on the real clock, closes no window while the second is refused
    first = subprocess.Popen([CIVICMOTE, "run", "--device-dir", str(d)], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE)
    try:
        assert first.stdout.readline().startswith(b"device "), "the first agent did not start"
        second = _run(d)
        assert second.returncode == 4, second.stderr
        lines = second.stderr.strip().splitlines()
        assert len(lines) == 1 and "pid %d" % first.pid in lines[0] and "in use" in lines[0]
        assert _box(d / "outbox").depth == 0  # the ring is reserved at init; the refused agent queued nothing
    finally:
        first.terminate()
        first.wait(30)
    assert first.returncode == 0
    assert _run(d, windows=1).returncode == 0  # the lock went with the process


@pytest.mark.parametrize("damage", ["deleted", "truncated", "corrupted"])
def test_lost_seq_state_never_collides_at_the_collector(tmp_path, damage):
    d = tmp_path / "dev"
    dev, pub = make_device(d)
    with Broker(tmp_path) as b:
        col = InProcessCollector(b.port, [pub])
        try:
            r = _run(d, broker=b.url, windows=3)
            assert r.returncode == 0, r.stderr
            col.poll_until(lambda: len(col.accepted()) == 3, 20, "first run delivered")
            assert _box(d / "outbox").depth == 0  # the outbox is empty: it cannot help
            seq = d / "seq"
            if damage == "deleted":
                seq.unlink()
            elif damage == "truncated":
                seq.write_bytes(seq.read_bytes()[:10])
            else:
                seq.write_bytes(b"\xa5" * len(seq.read_bytes()))
            (d / "progress").unlink()  # and the redundant high-water mark with it
            r = _run(d, broker=b.url, start=START + 10000, windows=3)
            assert r.returncode == 0, r.stderr
            assert "sequence state was lost" in r.stderr
            col.poll_until(lambda: len(col.accepted()) == 6, 20, "second run delivered")
        finally:
            col.close()
    seqs = col.accepted()
    assert seqs == sorted(set(seqs)) and not col.of("duplicate") and not col.of("rejected")
    assert seqs[3] > 1 << 30  # a new era, above every number of the old one
    resets = [g for g in col.of("gap") if g["cause"] == SEQ_RESET]
    assert len(resets) == 1 and resets[0]["first"] == 4 and resets[0]["last"] == seqs[3] - 1


def test_seq_lost_but_progress_intact_continues_the_numbering(tmp_path):
    d = tmp_path / "dev"
    make_device(d)
    assert _run(d, windows=3).returncode == 0
    (d / "seq").unlink()
    r = _run(d, "--out", str(tmp_path / "out"), start=START + 10000, windows=2)
    assert r.returncode == 0, r.stderr
    assert sorted(int(p.stem) for p in (tmp_path / "out").glob("*.cose") if p.stem.isdigit()) == [4, 5]


@pytest.fixture
def small_disk(tmp_path):
    mnt = mount_tmpfs(tmp_path / "disk", "2m")
    yield mnt
    umount_lazy(mnt)


@pytest.mark.parametrize("when", ["mid-window", "seq-reservation"])
def test_a_full_disk_is_degraded_not_a_crash(small_disk, tmp_path, when):
    d = small_disk / "dev"
    dev, pub = make_device(d)
    assert _run(d, "--out", str(tmp_path / "out1"), windows=2).returncode == 0
    if when == "seq-reservation":
        (d / "seq").unlink()  # the next reservation must create the file on a full disk
    fill(small_disk)
    r = _run(d, "--out", str(tmp_path / "out2"), start=START + 1000, windows=70)
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
    os.remove(small_disk / "filler")  # space returns
    r = _run(d, "--out", str(tmp_path / "out3"), start=START + 5000, windows=2)
    assert r.returncode == 0, r.stderr
    with Broker(tmp_path) as b:
        col = InProcessCollector(b.port, [pub])
        try:
            r = _run(d, broker=b.url, start=START + 9000, windows=1)
            assert r.returncode == 0, r.stderr
            col.poll_until(lambda: _box(d / "outbox").depth == 0 and len(col.accepted()) >= 75, 30,
                           "everything delivered")
        finally:
            col.close()
    seqs = col.accepted()
    signed = set()
    for out in ("out2", "out3"):
        signed |= {int(p.stem) for p in (tmp_path / out).glob("*.cose") if p.stem.isdigit()}
    assert signed <= set(seqs) | set(range(1, 3))  # every summary made on the full disk reached the city
    assert len(signed) == 72
    assert not [g for g in col.of("gap") if g["cause"] != "dropped-on-device"] or \
        all(g["cause"] == "skipped-at-reboot" for g in col.of("gap"))


def _released(out_dir):
    from agent.core import cose, summary

    got = {}
    for p in out_dir.glob("*.cose"):
        if p.stem.isdigit():
            s = summary.decode(cose.decode1(p.read_bytes()).payload)
            got[s["seq"]] = s["m"]["motion"]
    return [got[k] for k in sorted(got)]


@pytest.mark.parametrize("tamper", ["deleted", "edited", "older-copy"])
def test_a_tampered_ledger_withholds_personal_metrics_until_the_next_day(tmp_path, tamper):
    d = tmp_path / "dev"
    make_device(d)  # its ledger starts today (real time): the simulated days come after it
    day0 = (int(time.time()) // 86400 + 1) * 86400
    ledger = d / "privacy.ledger"
    old = ledger.read_bytes()
    r = _run(d, "--out", str(tmp_path / "a"), start=day0 + 7200, windows=3)
    assert r.returncode == 0, r.stderr
    assert all("withheld" not in m for m in _released(tmp_path / "a"))
    if tamper == "deleted":
        ledger.unlink()
    elif tamper == "edited":
        from agent.store.slots import SlotFile  # spent: 0, slot CRC fixed up as a careful editor would

        f = SlotFile(str(ledger), 2048)
        body = f.read()
        # the one budget per person per day (issue 11) is charged under the key "person"
        f.write(body.replace(body[body.index(b'"person": "') + 11:body.index(b'"}')], b"0"))
    else:
        ledger.write_bytes(old)  # the copy taken at provisioning: nothing spent
    # later the same day, and even with the clock set back an hour: withheld
    r = _run(d, "--out", str(tmp_path / "b"), start=day0 + 3600, windows=2)
    assert r.returncode == 0, r.stderr
    assert "privacy ledger" in r.stderr
    assert _released(tmp_path / "b") == [{"withheld": "ledger"}] * 2
    r = _run(d, "--out", str(tmp_path / "c"), start=day0 + 9000, windows=2)
    assert _released(tmp_path / "c") == [{"withheld": "ledger"}] * 2
    # the next UTC day, by every clock: released again
    r = _run(d, "--out", str(tmp_path / "d"), start=day0 + 86400 + 60, windows=2)
    assert r.returncode == 0, r.stderr
    assert all("withheld" not in m for m in _released(tmp_path / "d"))
