"""Windows under a wall clock that steps (the runtime's seam: step(now_s, now_ms) with the two
clocks apart), across restarts, and without a valid clock: t0/t1 cover exactly the data, no two
summaries from one device overlap, and every cut-short window says so."""
import os

from agent.board import load_profile
from agent.core import cose, summary
from agent.runtime import device
from agent.store import identity
from support import BOARD_DIR, tmpdir

START = 1795003200  # on the hour
DT = 10  # seconds per step: the sim board's sensors read at most this often (keeps MicroPython quick)


def _agent(d, start=START, **kw):
    board = load_profile(BOARD_DIR + "/sim.json")
    identity.ensure_key(d)
    device.create_ledger(d, start)
    msgs = {}
    ag = device.open_agent(d, board, "north", start, 0, os.urandom, sink=lambda n, m: msgs.__setitem__(n, m), **kw)
    return ag, msgs


def _decoded(msgs):
    out = []
    for k in msgs:
        if k != "manifest":
            out.append(summary.decode(cose.decode1(msgs[k]).payload))
    out.sort(key=lambda s: s["seq"])
    return out


def _no_overlap(sums):
    spans = sorted((s["t0"], s["t1"]) for s in sums)
    for a, b in zip(spans, spans[1:]):
        assert a[1] <= b[0], "summaries overlap: %r %r" % (a, b)
    for s in sums:
        assert s["t1"] > s["t0"]


def test_step_back_and_forward_while_running():
    d = tmpdir()
    ag, msgs = _agent(d)
    mono, wall = 0, START
    while ag.closed < 2:  # two whole windows
        ag.step(wall, mono * 1000)
        mono += DT
        wall += DT
    wall -= 3600  # the clock steps back an hour mid-window
    for _ in range(20):
        ag.step(wall, mono * 1000)
        mono += DT
        wall += DT
    assert ag.waiting == "clock-behind"  # nothing is labelled with time already reported
    assert ag.healthy()  # ... and it says why, so the watchdog is still fed
    wall += 86400  # then a day forward
    for _ in range(70):
        ag.step(wall, mono * 1000)
        mono += DT
        wall += DT
    sums = _decoded(msgs)
    _no_overlap(sums)
    assert [s["seq"] for s in sums] == list(range(1, len(sums) + 1))
    back = [s for s in sums if "clkb" in s["h"]]
    assert len(back) == 1 and back[0]["h"]["clkb"] == 3600 and back[0]["t1"] - back[0]["t0"] < 300
    assert back[0]["t1"] <= START + 2 * 300 + 21 * DT  # labelled in the time it was measured
    after = [s for s in sums if s["t0"] >= START + 86400 - 3600]
    assert after and all(s["t1"] - s["t0"] <= 300 for s in after)
    assert all(s["h"]["cs"] >= 1 for s in sums[2:])
    # every whole window's span is what monotonic time says it lasted
    for s in sums:
        if "clkb" not in s["h"] and "clkf" not in s["h"]:
            assert s["t1"] - s["t0"] <= 300


def test_restart_with_the_clock_behind_sends_nothing_for_time_already_sent():
    d = tmpdir()
    ag, msgs = _agent(d)
    for i in range(0, 601, DT):
        ag.step(START + i, i * 1000)
    first = _decoded(msgs)
    assert [s["t1"] for s in first] == [START + 300, START + 600]
    ag2, msgs2 = _agent(d, start=START - 900)  # reboot: the clock is 15 minutes behind
    for i in range(0, 1900, DT):
        ag2.step(START - 900 + i, i * 1000)
    second = _decoded(msgs2)
    assert second and second[0]["t0"] >= START + 600 and second[0]["seq"] > first[-1]["seq"]
    _no_overlap(first + second)


def test_no_valid_clock_says_so_and_releases_nothing():
    d = tmpdir()
    ag, msgs = _agent(d)
    for i in range(0, 700, DT):
        ag.step(1000 + i, i * 1000)  # 1970: never set
    assert ag.closed == 0 and ag.waiting == "clock-invalid" and ag.ledger is None
    for i in range(700, 1400, DT):
        ag.step(START + i, i * 1000)
    sums = _decoded(msgs)
    assert sums and sums[0]["t0"] == START + 700  # data from the moment the clock was valid, not before
    assert ag.waiting is None and ag.ledger is not None


class _Transport:
    """The transport interface, recording what is published (retained status included)."""

    def __init__(self):
        self.connected = True
        self.can_publish = True
        self.sent = []

    def connect(self, now):
        pass

    def poll(self, now):
        return []

    def publish(self, topic, payload, qos=1, retain=False, now=None):
        self.sent.append((topic, bytes(payload), retain))
        return len(self.sent)


def test_the_status_topic_says_why_no_window_opens():
    d = tmpdir()
    t = _Transport()
    ag, _ = _agent(d, transport=t)
    for i in range(0, 100, DT):
        ag.step(1000 + i, i * 1000)
    status = [(p, r) for topic, p, r in t.sent if topic.endswith("/status")]
    assert status == [(b"online; waiting: clock-invalid", True)]
    for i in range(100, 200, DT):
        ag.step(START + i, i * 1000)
    status = [p for topic, p, r in t.sent if topic.endswith("/status")]
    assert status[-1] == b"online" and ag.waiting is None
