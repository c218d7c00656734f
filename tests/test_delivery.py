"""Issue 5, delivery of the whole agent against a real Mosquitto: the broker away for 30
windows, the outbox full, and a broker that accepts TCP but never answers. The agent is the
real one (agent.runtime.device.open_agent) on a simulated wall clock; network deadlines run
on real time. The city side is the real collector (provisioning.city.collector) subscribed with
paho. (SIGKILL of the agent process: tests/test_delivery_kill.py.)"""
import os
import time

import pytest
from broker import Broker
from delivery_support import (START, FakeBrokerAt, InProcessCollector, SimClock, drain, make_device, run_windows)

from agent.core import cose, summary
from agent.net.paho_transport import PahoTransport
from agent.net.transport import Backoff
from agent.runtime import device
from agent.runtime.agent import topics
from provisioning import files
from provisioning.city.collector import DROPPED


def open_agent(d, dev, port=None, **kw):
    """(agent, signed) for device folder d; signed collects {seq: message} as the agent signs."""
    signed = {}
    transport = transport_for(dev, port) if port else None
    board = files.load_board(d / "board.json")
    agent = device.open_agent(str(d), board, "north", START, START * 1000, os.urandom, transport=transport,
                              sink=lambda name, msg: signed.__setitem__(name, msg), **kw)
    return agent, signed


def transport_for(dev, port, timeout=1.0):
    return PahoTransport("127.0.0.1", port, dev, status_topic=topics("civicmote/v1", "north", dev)[2],
                         timeout=timeout, backoff=Backoff(base=0.2, cap=1.0))


def summaries(signed):
    return {k: summary.decode(cose.decode1(v).payload) for k, v in signed.items() if k != "manifest"}


def test_broker_down_for_30_windows_then_back(tmp_path):
    d = tmp_path / "dev"
    dev, pub = make_device(d)
    with Broker(tmp_path) as b:
        col = InProcessCollector(b.port, [pub])
        agent, signed = open_agent(d, dev, b.port)
        clock = SimClock()
        run_windows(agent, clock, 3, pace=0.01, between=col.poll)
        drain(agent, col, lambda: len(col.accepted()) == 3)
        b.pause()  # SIGSTOP: TCP still connects (the kernel's backlog), nothing ever answers
        try:
            down = run_windows(agent, clock, 30, pace=0.02, between=col.poll)
            assert len(down) == 30  # windows kept closing while the broker was away
            assert agent.outbox.seqs() == down  # none acknowledged, none dropped
            assert agent.transport.backoff.failures >= 1 and not agent.transport.connected
        finally:
            b.resume()
        drain(agent, col, lambda: set(col.accepted()) == set(down) | {1, 2, 3})
        sent = sorted(k for k in signed if k != "manifest")
        assert col.accepted() == sent == list(range(1, 34))  # all of them, once each, in seq order
        assert agent.outbox.depth == 0
        info = col.collector.devices()[dev]
        assert info["accepted"] == 33 and info["gaps"] == []
        # The summary in flight when the broker froze reaches it twice: the first copy, read from
        # the old connection's socket when the broker thaws, and the DUP resend after the agent
        # reconnects. The collector stored one and counted the other as a duplicate.
        assert info["duplicates"] == len(col.of("duplicate")) >= 1
        assert info["received"] == info["accepted"] + info["duplicates"] + info["manifests"]
        stored = {seq: col.collector.store.summary_payload(dev, seq) for seq in sent}
        assert stored == {seq: signed[seq] for seq in sent}  # what was signed is what is stored
        col.close()
        agent.transport.close()


def test_outbox_full_drops_oldest_and_the_next_summary_names_the_gap(tmp_path):
    d = tmp_path / "dev"
    dev, pub = make_device(d)
    agent, signed = open_agent(d, dev, outbox_count=4)  # offline: the broker is not there yet
    clock = SimClock()
    run_windows(agent, clock, 7)
    # put(5) dropped 1, put(6) dropped 2, put(7) dropped 3. Until a summary that announced them
    # is delivered, every later summary names all the drops so far.
    assert agent.outbox.seqs() == [4, 5, 6, 7]
    s = summaries(signed)
    assert [s[k].get("gap") for k in range(1, 8)] == [None, None, None, None, None, [1, 1, 1], [2, 1, 2]]
    assert agent.outbox.drop_report() == (3, 1, 3)  # pending, for the next summary
    with Broker(tmp_path) as b:
        col = InProcessCollector(b.port, [pub])
        agent.transport = transport_for(dev, b.port)
        drain(agent, col, lambda: len(col.accepted()) == 4)  # the broker is back: 4..7 leave
        run_windows(agent, clock, 1, between=col.poll)
        assert summaries(signed)[8]["gap"] == [1, 3, 3]  # exactly the one dropped, and how many
        drain(agent, col, lambda: len(col.accepted()) == 5)
        assert col.accepted() == [4, 5, 6, 7, 8]
        gaps = [(g["first"], g["last"], g["count"], g["cause"], g["reported_by"]) for g in col.of("gap")]
        assert gaps == [(1, 1, 1, DROPPED, 6), (2, 2, 1, DROPPED, 7), (3, 3, 1, DROPPED, 8)]
        assert agent.outbox.drop_report() is None
        col.close()
        agent.transport.close()


def test_a_drop_announced_by_a_summary_that_is_later_dropped_is_still_announced(tmp_path):
    d = tmp_path / "dev"
    dev, _ = make_device(d)
    agent, signed = open_agent(d, dev, outbox_count=4)
    run_windows(agent, SimClock(), 11)  # 1..7 dropped; summary 6, which announced 1, is among them
    announced = set()
    for seq in agent.outbox.seqs():
        g = summaries(signed)[seq].get("gap")
        if g:
            announced.update(range(g[1], g[2] + 1))
    pending = agent.outbox.drop_report()
    if pending:
        announced.update(range(pending[1], pending[2] + 1))
    assert set(range(1, 8)) <= announced


def test_broker_that_never_answers_does_not_stop_sensing(tmp_path):
    d = tmp_path / "dev"
    dev, pub = make_device(d)
    real = Broker(tmp_path)  # not started yet: it will take the fake's address
    fake = FakeBrokerAt(real.port, "silent")
    agent, signed = open_agent(d, dev, real.port)
    agent.transport.timeout = 0.5
    clock = SimClock()
    slowest = 0.0

    def timed_windows(n):
        nonlocal slowest
        steps = 0
        closed = []
        while len(closed) < n:
            t = time.monotonic()
            seq = clock.step(agent)
            slowest = max(slowest, time.monotonic() - t)
            steps += 1
            if seq is not None:
                closed.append(seq)
            time.sleep(0.02)
        return closed, steps

    try:
        silent, steps = timed_windows(20)  # ~2 s: no CONNACK ever
        assert steps <= 20 * 5 + 1  # a window closed every 5 simulated seconds, on time
        tries_silent = len(fake.conns)
        assert tries_silent >= 2, "the agent should give up on a silent broker and retry"
        assert agent.transport.backoff.failures >= 2  # consecutive failures: the delay grows
        assert tries_silent <= 6, "backoff: no hammering (each try waits 0.5 s, then 0.1-1 s)"
        fake.mode = "no_puback"  # now it answers CONNECT but never acknowledges a PUBLISH
        mute, steps = timed_windows(20)
        assert steps <= 20 * 5 + 1
        publishes = [p for p in fake.packets if p.KIND == "publish"]
        assert publishes, "with a CONNACK the agent should have published"
        assert len(fake.conns) > tries_silent + 1, "no PUBACK: the agent should time out and reconnect"
        assert agent.delivered == 0 and agent.outbox.seqs() == silent + mute
    finally:
        fake.close()
    # One step never waits longer than the transport's timeout (plus a connect that the kernel
    # answers at once): sensing goes on whatever the broker does.
    assert slowest < agent.transport.timeout + 0.5
    with real:
        col = InProcessCollector(real.port, [pub])
        drain(agent, col, lambda: len(col.accepted()) == 40, timeout=30)
        assert col.accepted() == list(range(1, 41))
        assert agent.outbox.depth == 0 and agent.delivered == 40
        col.close()
        agent.transport.close()
