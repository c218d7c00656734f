"""The whole agent on one runtime: sim board sensors -> windows -> privacy -> signed summaries -> outbox.

Runs under pytest and on the MicroPython port, with the pure-Python signer there.
"""
import os

from agent import crypto
from agent.board import load_profile
from agent.core import cose, summary
from agent.errors import DecodeError
from agent.runtime import device
from agent.runtime.agent import MIN_VALID_TIME
from agent.store import identity
from support import BOARD_DIR, raises, tmpdir

START = 1795003200  # on the hour


def _agent(d, start=START, sink=None, **kw):
    board = load_profile(BOARD_DIR + "/sim.json")
    identity.ensure_key(d)
    device.create_ledger(d, start)
    return device.open_agent(d, board, "north", start, start * 1000, os.urandom, sink=sink, **kw)


def _run(agent, start, windows):
    now = start
    while agent.closed < windows:
        agent.step(now, now * 1000)
        now += 1
    return now


def test_windows_close_on_boundaries_and_verify():
    d = tmpdir()
    msgs = {}
    ag = _agent(d, sink=lambda name, m: msgs.__setitem__(name, m))
    _run(ag, START, 2)
    vk = identity.load_key(d).public_key()
    m = cose.verify1(msgs["manifest"], vk)
    assert m.kid_text() == ag.dev
    for seq in (1, 2):
        s = summary.decode(cose.verify1(msgs[seq], vk).payload)
        assert s["dev"] == ag.dev and s["seq"] == seq and s["mh"] == ag.mh
        assert s["t0"] == START + 300 * (seq - 1) and s["t1"] == s["t0"] + 300
        t = s["m"]["temperature"]
        assert len(t) == 3 and t[1] <= t[0] <= t[2]  # mean within [min, max]
        assert "footfall" not in s["m"]  # hourly: not due in these windows
        assert s["h"]["q"] == seq - 1 and s["h"]["boot"] == 1  # queued before this one
    assert ag.outbox.depth == 2


def test_hourly_personal_metrics_release_on_the_hour():
    d = tmpdir()
    msgs = {}
    ag = _agent(d, start=START - 300, sink=lambda name, m: msgs.__setitem__(name, m))
    _run(ag, START - 300, 1)
    s = summary.decode(cose.decode1(msgs[1]).payload)
    assert s["t1"] == START
    assert "footfall" in s["m"] and "presence" in s["m"]
    for name in ("footfall", "presence"):
        r = s["m"][name]
        assert ("n" in r and isinstance(r["n"], int)) or r.get("suppressed") is True


def test_no_summary_without_a_valid_clock():
    d = tmpdir()
    ag = _agent(d)
    for t in range(1000, 1320):
        ag.step(t, START * 1000 + t)
    assert ag.closed == 0 and ag.invalid_clock == 320


def test_restart_keeps_sequence_and_outbox():
    d = tmpdir()
    ag = _agent(d)
    end = _run(ag, START, 1)
    ag2 = _agent(d, start=end + 5)
    _run(ag2, end + 5, 1)
    assert ag2.outbox.seqs() == [1, ag2.seqs.first]
    assert ag2.seqs.first > 1


def test_corrupt_key_is_refused_not_replaced():
    d = tmpdir()
    _agent(d)
    with open(d + "/device.key", "rb") as f:
        data = bytearray(f.read())
    data[-3] ^= 0xFF
    with open(d + "/device.key", "wb") as f:
        f.write(data)
    raises(DecodeError, identity.load_key, d)
    raises(DecodeError, identity.ensure_key, d)
