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
LONG_DT = 60  # for the runs of hours: a reading a minute (five per window) keeps the WebAssembly port quick


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


def _drive(ag, mono0, mono1, wall_of, dt=LONG_DT):
    """Step the agent every dt monotonic seconds in [mono0, mono1) with the wall clock wall_of(mono)."""
    for mono in range(mono0, mono1, dt):
        ag.step(wall_of(mono), mono * 1000)


def _gaps(sums):
    return [b["t0"] - a["t1"] for a, b in zip(sums, sums[1:])]


def test_a_ten_minute_glitch_a_day_ahead_changes_no_label():
    d = tmpdir()
    ag, msgs = _agent(d)
    glitch = (900, 1500)  # monotonic seconds: the wall clock reads a day ahead for ten minutes
    _drive(ag, 0, 3600, lambda m: START + m + (86400 if glitch[0] <= m < glitch[1] else 0))
    sums = _decoded(msgs)
    _no_overlap(sums)
    assert len(sums) == 11 and ag.waiting is None
    for s in sums:  # labelled when it was measured, never in the future the glitch claimed
        assert s["t1"] <= START + 3600 and s["t1"] - s["t0"] <= 300 and "clkf" not in s["h"]
    assert max(_gaps(sums)) == 0  # not a minute without a summary
    flagged = [s for s in sums if s["h"].get("clk")]
    assert [s["t0"] for s in flagged] == [START + 900, START + 1200]  # the two windows the glitch spanned
    assert all(s["h"]["clk"] == 1 and s["h"]["clk_ahead"] == 86400 for s in flagged)
    assert ag.clock_steps == 1 and ag.timebase.suspect is None


def test_a_step_back_that_stays_is_believed_after_the_stable_interval():
    from agent.runtime.timebase import STABLE_S

    d = tmpdir()
    ag, msgs = _agent(d)
    _drive(ag, 0, 610, lambda m: START + m)
    step_at = 610
    _drive(ag, step_at, 8000, lambda m: START + m - 3600)
    sums = _decoded(msgs)
    _no_overlap(sums)
    cut = [s for s in sums if "clkb" in s["h"]]
    assert len(cut) == 1 and cut[0]["h"]["clkb"] == 3600
    believed_at = cut[0]["t1"] - START  # labelled on the old time: the monotonic instant it was believed
    assert STABLE_S <= believed_at - step_at <= STABLE_S + LONG_DT
    before = [s for s in sums if s["seq"] <= cut[0]["seq"]]
    assert all(s["h"].get("clk") == 1 and s["h"]["clk_behind"] == 3600 for s in before[3:])
    after = [s for s in sums if s["seq"] > cut[0]["seq"]]
    assert after and after[0]["t0"] == cut[0]["t1"]  # no overlap: it waited for the new clock to pass
    assert all(s["h"].get("clk") == 2 for s in after)  # labelled on a clock believed by stability alone
    assert after[-1]["t1"] == START + 7800 - 3600  # on the new time


def test_a_step_forward_that_stays_is_believed_after_the_stable_interval():
    from agent.runtime.timebase import STABLE_S

    d = tmpdir()
    ag, msgs = _agent(d)
    _drive(ag, 0, 610, lambda m: START + m)
    _drive(ag, 610, 4000, lambda m: START + m + 3600)
    sums = _decoded(msgs)
    _no_overlap(sums)
    cut = [s for s in sums if "clkf" in s["h"]]
    assert len(cut) == 1 and cut[0]["h"]["clkf"] == 3600
    assert STABLE_S <= cut[0]["t1"] - START - 610 <= STABLE_S + LONG_DT
    after = [s for s in sums if s["seq"] > cut[0]["seq"]]
    assert 0 <= after[0]["t0"] - cut[0]["t1"] - 3600 <= LONG_DT  # no wait: the labels jump with the clock
    assert after[-1]["t1"] == START + 3900 + 3600 and all(s["h"].get("clk") == 2 for s in after)


def test_a_long_glitch_that_returns_costs_no_more_than_it_lasted():
    from agent.runtime.timebase import STABLE_S

    d = tmpdir()
    ag, msgs = _agent(d)
    g0, g1 = 600, 600 + STABLE_S + 900  # a day ahead, long enough to be believed, then back
    _drive(ag, 0, 9000, lambda m: START + m + (86400 if g0 <= m < g1 else 0))
    sums = _decoded(msgs)
    _no_overlap(sums)
    back = [s for s in sums if "clkb" in s["h"]]
    assert len(back) == 1 and back[0]["h"]["clkb"] == 86400  # undone the moment it came back
    after = [s for s in sums if s["seq"] > back[0]["seq"]]
    assert after[0]["t0"] - START - g1 <= 300 and after[-1]["t1"] == START + 8700
    assert max(_gaps([s for s in sums if s["t1"] < START + 86400])) <= g1 - g0
    assert ag.waiting is None


def test_a_second_source_ends_the_suspicion_at_once():
    d = tmpdir()
    ag, msgs = _agent(d)
    _drive(ag, 0, 610, lambda m: START + m)
    _drive(ag, 610, 700, lambda m: START + m + 3600)
    assert ag.timebase.suspect is not None
    ag.confirm_time(START + 700 + 3600, 700 * 1000)  # e.g. the city's signed time in a receipt
    _drive(ag, 700, 1300, lambda m: START + m + 3600)
    sums = _decoded(msgs)
    _no_overlap(sums)
    cut = [s for s in sums if "clkf" in s["h"]]
    assert len(cut) == 1 and cut[0]["t1"] == START + 700
    assert sums[-1]["t1"] == START + 1200 + 3600 and "clk" not in sums[-1]["h"]


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
        ag.step(946684800 + i, i * 1000)  # 2000-01-01: a board without an RTC, not synced yet
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
