"""Issue 5: `civicmote run --fast` (the whole agent, a child process) SIGKILLed at 50 random
instants, many of them during outbox writes, and restarted each time, publishing to a real
Mosquitto while `civicmote collect` (another child) stores what arrives. After every kill the
outbox must hold only intact records; at the end every summary that entered the outbox (its
--out file is written right after the outbox write returns) is in the collector's store
exactly once, byte for byte, in seq order, and the only gaps are seqs skipped at reboots."""
import json
import os
import random
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

from broker import Broker
from cli_helpers import CIVICMOTE
from delivery_support import START, make_device

from agent.errors import DecodeError
from agent.store import atomic
from provisioning.city.collector import SKIPPED

KILLS = 50
WINDOW_S = 1  # a summary every step: the child spends much of its time writing its outbox


def _outbox_intact(outbox):
    """-> True if a write was cut mid-way (a .tmp is there); raise if any record is corrupt."""
    torn = False
    for name in os.listdir(outbox):
        if name.endswith(atomic.TMP):
            torn = True
        elif name.endswith(".rec"):
            data = (outbox / name).read_bytes()
            try:
                atomic.unframe(data, name)
            except DecodeError as e:
                raise AssertionError("outbox record %s is corrupt after a kill: %s" % (name, e))
        else:
            assert name == "dropped", "unexpected file in the outbox: %s" % name
    return torn


def _when_writing(outbox, not_before):
    """Return as soon as an outbox write is under way (a .tmp exists) after not_before, or 0.5 s later."""
    while time.monotonic() < not_before:
        pass
    end = not_before + 0.5
    while time.monotonic() < end:
        if any(n.endswith(atomic.TMP) for n in os.listdir(outbox)):
            return


def _wait_for_text(path, text, timeout=10.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if path.exists() and text in path.read_text():
            return
        time.sleep(0.02)
    raise AssertionError("%s never said %r: %s" % (path, text, path.read_text() if path.exists() else "-"))


def _run(d, out, url, start, extra=()):
    return subprocess.Popen([CIVICMOTE, "run", "--device-dir", str(d), "--fast", "--broker", url, "--out", str(out),
                             "--start", str(start), *extra], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)


def test_agent_killed_at_50_random_points_delivers_every_summary_once(tmp_path):
    d, out, store = tmp_path / "dev", tmp_path / "signed", tmp_path / "city.db"
    dev, _ = make_device(d, window_s=WINDOW_S)
    rng = random.Random(20250605)
    with Broker(tmp_path) as b:
        col_out, col_err = tmp_path / "collect.out", tmp_path / "collect.err"
        collector = subprocess.Popen([CIVICMOTE, "collect", "--broker", b.url, "--device-dir", str(d), "--store",
                                      str(store), "--max-ahead", "0", "--json"],  # --fast clocks run ahead
                                     stdout=open(col_out, "w"), stderr=open(col_err, "w"))
        try:
            _wait_for_text(col_err, "connected to")
            torn = 0
            for i in range(KILLS):
                child = _run(d, out, b.url, START + i * 1000000, ["--windows", "1000000"])
                assert child.stdout.readline().startswith(b"device "), "the agent did not start"
                if i % 2:
                    _when_writing(d / "outbox", time.monotonic() + rng.uniform(0.005, 0.06))
                else:
                    time.sleep(rng.uniform(0.0, 0.06))
                child.send_signal(signal.SIGKILL)
                child.communicate(timeout=10)
                torn += _outbox_intact(d / "outbox")
            # A last, uninterrupted run drains what the kills left in the outbox.
            last = _run(d, out, b.url, START + KILLS * 1000000, ["--windows", "1", "--drain", "20"])
            last.communicate(timeout=60)
            assert last.returncode == 0
            assert not [n for n in os.listdir(d / "outbox") if n.endswith(".rec")], "the outbox did not drain"
            assert not [n for n in os.listdir(d / "outbox") if n.endswith(".bad")], "a record was quarantined"
            signed = {int(p.stem): p.read_bytes() for p in out.glob("*.cose") if p.stem.isdigit()}
            _wait_for_stored(store, dev, set(signed))
        finally:
            collector.send_signal(signal.SIGTERM)
            collector.wait(15)
    assert collector.returncode == 0, col_err.read_text()
    assert torn >= 10, "only %d of %d kills landed during an outbox write" % (torn, KILLS)
    events = [json.loads(line) for line in col_out.read_text().splitlines()]
    accepted = [e["seq"] for e in events if e["event"] == "summary"]
    assert accepted == sorted(set(accepted)), "each summary accepted once, in seq order"
    db = sqlite3.connect(str(store))
    stored = dict(db.execute("SELECT seq, message FROM summaries WHERE device_id=?", (dev,)).fetchall())
    assert sorted(stored) == accepted
    for seq, msg in signed.items():  # every summary that entered the outbox arrived, byte for byte
        assert stored.get(seq) == msg, "seq %d entered the outbox but was not delivered intact" % seq
    # A kill between the outbox write and the --out file leaves a summary only the outbox knew.
    assert len(set(stored) - set(signed)) <= KILLS
    causes = {e["cause"] for e in events if e["event"] == "gap"}
    assert causes <= {SKIPPED}, "the only holes are numbers reserved before a reboot: %r" % causes
    assert len(signed) > KILLS  # the children did real work between kills
    assert not [e for e in events if e["event"] == "rejected"]


def _wait_for_stored(store, dev, seqs, timeout=30.0):
    end = time.monotonic() + timeout
    have = set()
    while time.monotonic() < end:
        if Path(store).exists():
            db = sqlite3.connect(str(store), timeout=1)
            try:
                have = {r[0] for r in db.execute("SELECT seq FROM summaries WHERE device_id=?", (dev,))}
            except sqlite3.OperationalError:
                have = set()
            finally:
                db.close()
            if seqs <= have:
                return
        time.sleep(0.1)
    raise AssertionError("the collector never stored %s" % sorted(seqs - have)[:20])
