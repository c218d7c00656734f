"""Clock glitches judged by the city: the agent's summaries under a stepping wall clock, each
handed to the real collector at the true time it was made (the collector refuses a window that
ends more than an hour after it arrives). A ten-minute glitch a day ahead costs no summary and no
time; steps that stay are believed after the documented interval, and every flagged summary is
accepted."""
import os

import pytest
from delivery_support import make_device

from agent.board import load_profile
from agent.core import cose, summary
from agent.runtime import device
from agent.runtime.timebase import STABLE_S
from provisioning.city.collector import Collector
from provisioning.city.verifier import KeyRing

START = 1795003200  # on the hour, in the collector's plausible range
DT = 10


def _city_run(tmp_path, wall_of, seconds):
    d = tmp_path / "dev"
    dev, pub = make_device(d, window_s=300)
    board = load_profile(str(d / "board.json"))
    made = []  # (true time, message)
    clock = {"t": START}
    ag = device.open_agent(str(d), board, "north", START, 0, os.urandom,
                           sink=lambda name, msg: made.append((clock["t"], msg)) if name != "manifest" else None)
    for mono in range(0, seconds, DT):
        clock["t"] = START + mono
        ag.step(wall_of(mono), mono * 1000)
    ring = KeyRing()
    ring.add_public_key(pub)
    col = Collector(ring, None, clock=lambda: START)
    topic = "civicmote/v1/north/%s/summary" % dev
    events = []
    for at, msg in made:
        events += [dict(e, arrived=at) for e in col.handle(topic, msg, received_at=at)]
    col.close()
    sums = [summary.decode(cose.decode1(m).payload) for _, m in made]
    return ag, events, sums


def test_a_ten_minute_glitch_a_day_ahead_costs_minutes_not_a_day(tmp_path):
    glitch = (1500, 2100)
    ag, events, sums = _city_run(tmp_path, lambda m: START + m + (86400 if glitch[0] <= m < glitch[1] else 0), 7200)
    assert not [e for e in events if e["event"] == "rejected"], [e for e in events if e["event"] == "rejected"]
    accepted = [e for e in events if e["event"] == "summary"]
    assert len(accepted) == len(sums) == 23  # every window of the two hours
    arrivals = [START] + [e["arrived"] for e in accepted] + [START + 7200]
    assert max(b - a for a, b in zip(arrivals, arrivals[1:])) <= 15 * 60  # never 15 minutes without one
    flagged = [s for s in sums if s["h"].get("clk")]
    assert flagged and all(s["h"]["clk"] == 1 and s["h"]["clk_ahead"] == 86400 for s in flagged)
    assert ag.waiting is None


@pytest.mark.parametrize("step", [3600, -3600])
def test_a_one_hour_step_that_stays_is_accepted_after_the_stable_interval(tmp_path, step):
    at = 900
    ag, events, sums = _city_run(tmp_path, lambda m: START + m + (step if m >= at else 0), at + STABLE_S + 7200)
    assert not [e for e in events if e["event"] == "rejected"]
    cut = [s for s in sums if ("clkf" if step > 0 else "clkb") in s["h"]]
    assert len(cut) == 1 and STABLE_S <= cut[0]["t1"] - START - at <= STABLE_S + DT
    later = [s for s in sums if s["seq"] > cut[0]["seq"]]
    assert later and all(s["h"]["clk"] == 2 for s in later)  # on a clock believed after a step: flagged
    assert later[-1]["t1"] > START + at + STABLE_S + 7200 + step - 300 - DT  # ... and it is the new time
    assert ag.waiting is None  # the hour back was waited out once, not more
