"""SIGKILL a process writing to the outbox at 50 random instants; after each, the outbox must
open cleanly, hold exactly what it should, and account for every record reported enqueued."""
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from agent.store.outbox import Outbox

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
from outbox_child import payload  # noqa: E402

KILLS = 50


def _run_and_kill(d, rng):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    child = subprocess.Popen([sys.executable, str(ROOT / "tests" / "outbox_child.py"), d],
                             stdout=subprocess.PIPE, env=env, cwd=str(ROOT))
    assert child.stdout.readline() == b"ready\n"
    time.sleep(rng.uniform(0.0, 0.03))
    child.send_signal(signal.SIGKILL)
    out, _ = child.communicate(timeout=10)
    lines = out.decode().split("\n")
    return [ln.split() for ln in lines[:-1]]  # the last piece may be a torn line


def test_outbox_survives_sigkill_at_random_points(tmp_path):
    rng = random.Random(20240605)
    d = str(tmp_path)
    put, acked, covered = [], set(), []
    for _ in range(KILLS):
        for fact in _run_and_kill(d, rng):
            if fact[0] == "put":
                put.append(int(fact[1]))
            elif fact[0] == "ack":
                acked.add(int(fact[1]))
            elif fact[0] == "announce":
                covered.append((int(fact[2]), int(fact[3])))
        box = Outbox(d + "/outbox", max_bytes=8 * 512, max_count=30, segment=512)
        assert box.quarantined == [], box.quarantined
        assert box.depth <= 30 and box.bytes <= 8 * 512
        for seq, data in box:
            assert data == payload(seq)
        pending = box.drop_report()
        ranges = covered + ([(pending[1], pending[2])] if pending else [])
        present = set(box.seqs())
        for seq in put:
            if seq in acked or seq in present:
                continue
            assert any(a <= seq <= b for a, b in ranges), "seq %d was enqueued, then lost silently" % seq
    assert put == sorted(set(put)), "seqs must strictly increase across restarts"
    assert len(put) > KILLS  # the children did real work between kills
    assert covered, "the run should have exercised drop-oldest and its announcement"
