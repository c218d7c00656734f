"""Our small MQTT client on CPython against a real Mosquitto (and fake brokers for the
silent cases): TLS with a client certificate, QoS 1 + PUBACK, will, DUP resend, timeouts."""
import time

import pytest

from agent.net import socket_cpython
from agent.net.mqtt_client import MQTTClient
from agent.net.mqtt_packets import Publish
from agent.net.transport import Backoff
from broker import Broker
from mqtt_fakes import FakeBroker, SpyStream, Subscriber, drive, sent_packets


def _fast_backoff():
    return Backoff(base=0.05, cap=0.2, rng=lambda: 0.5)


@pytest.fixture
def tls_broker(tmp_path):
    with Broker(tmp_path, tls=True) as b:
        yield b


@pytest.fixture
def broker(tmp_path):
    with Broker(tmp_path) as b:
        yield b


def test_tls_connect_publish_qos1_gets_puback_and_birth(tls_broker):
    sub = Subscriber(tls_broker.plain_port, "cm/#")
    try:
        files = tls_broker.client_files("cmdevice1")
        c = MQTTClient("127.0.0.1", tls_broker.port, "cmdevice1", socket_cpython.opener(files), timeout=3,
                       status_topic="cm/d1/status", backoff=_fast_backoff())
        evs = drive(c, lambda e: ("connected", False) in e)
        assert c.connected and c.can_publish
        h = c.publish("cm/d1/summary", b"\x01\x02signed", qos=1, now=time.monotonic())
        assert not c.can_publish  # max_inflight 1
        evs = drive(c, lambda e: ("acked", h) in e)
        assert c.pending() == []
        assert sub.wait_for(lambda m: m[0] == "cm/d1/summary")[1] == b"\x01\x02signed"
        assert sub.wait_for(lambda m: m[0] == "cm/d1/status")[1] == b"online"
        c.close()
    finally:
        sub.close()


def test_tls_without_client_certificate_is_refused(tls_broker):
    files = tls_broker.client_files("cmdevice2")
    del files["certfile"]
    c = MQTTClient("127.0.0.1", tls_broker.port, "cmdevice2", socket_cpython.opener(files), timeout=2,
                   backoff=_fast_backoff())
    evs = drive(c, lambda e: any(ev[0] == "lost" for ev in e))
    assert not c.connected
    assert "lost" == evs[-1][0]


def test_will_says_offline_retained_after_abrupt_loss(broker):
    c = MQTTClient("127.0.0.1", broker.port, "cmdevice3", socket_cpython.opener(), timeout=3,
                   status_topic="cm/d3/status", backoff=_fast_backoff())
    drive(c, lambda e: c.connected)
    c._stream.sock.close()  # power cut: no DISCONNECT
    sub = Subscriber(broker.plain_port, "cm/d3/status")
    try:
        m = sub.wait_for(lambda m: m[1] == b"offline")
        assert m[2] is True  # delivered as retained
    finally:
        sub.close()


def test_clean_close_keeps_online_and_sends_no_will(broker):
    c = MQTTClient("127.0.0.1", broker.port, "cmdevice4", socket_cpython.opener(), status_topic="cm/d4/status",
                   backoff=_fast_backoff())
    drive(c, lambda e: c.connected)
    sub = Subscriber(broker.plain_port, "cm/d4/status")
    try:
        sub.wait_for(lambda m: m[1] == b"online")
        c.close()
        time.sleep(0.3)
        assert [m[1] for m in sub.messages] == [b"online"]
    finally:
        sub.close()


def test_unacked_publish_is_resent_with_dup_after_broker_restart(broker):
    log = []
    plain = socket_cpython.opener()
    c = MQTTClient("127.0.0.1", broker.port, "cmdevice5", lambda h, p, t: SpyStream(plain(h, p, t), log),
                   timeout=2, backoff=_fast_backoff())
    drive(c, lambda e: c.connected)
    broker.pause()  # the broker receives nothing and acknowledges nothing
    h = c.publish("cm/d5/summary", b"seq-41", qos=1, now=time.monotonic())
    broker.restart()
    sub = Subscriber(broker.plain_port, "cm/d5/#")
    try:
        evs = drive(c, lambda e: ("acked", h) in e, timeout=8)
        assert any(ev[0] == "lost" for ev in evs)
        assert sub.wait_for(lambda m: m[0] == "cm/d5/summary")[1] == b"seq-41"
    finally:
        sub.close()
        c.close()
    pubs = [p for p in sent_packets(log) if isinstance(p, Publish)]
    assert [(p.packet_id, p.dup) for p in pubs] == [(h, False), (h, True)]
    assert pubs[1].payload == b"seq-41"


def _time_calls(c, seconds):
    """Drive c for `seconds` of real time; return (events, longest single call)."""
    events, longest = [], 0.0
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        t0 = time.monotonic()
        c.connect(t0)
        events += c.poll(time.monotonic(), wait=0.01)
        longest = max(longest, time.monotonic() - t0)
    return events, longest


def test_silent_broker_times_out_on_connack_without_blocking():
    fake = FakeBroker("silent")
    try:
        c = MQTTClient("127.0.0.1", fake.port, "cmdevice6", socket_cpython.opener(), timeout=0.4,
                       backoff=_fast_backoff())
        events, longest = _time_calls(c, 1.5)
        lost = [e for e in events if e[0] == "lost"]
        assert lost and "no CONNACK within 0.4s" in lost[0][1]
        assert len(lost) >= 2  # it backs off and tries again
        assert not c.connected
        assert longest < c.timeout, "one call blocked %.2fs" % longest
    finally:
        fake.close()


def test_broker_that_never_pubacks_times_out_and_resends_dup():
    fake = FakeBroker("no_puback")
    try:
        c = MQTTClient("127.0.0.1", fake.port, "cmdevice7", socket_cpython.opener(), timeout=0.4,
                       backoff=_fast_backoff())
        drive(c, lambda e: c.connected)
        h = c.publish("cm/d7/summary", b"x", now=time.monotonic())
        events, longest = _time_calls(c, 1.2)
        lost = [e for e in events if e[0] == "lost"]
        assert lost and "no PUBACK for packet %d within 0.4s" % h in lost[0][1]
        assert longest < c.timeout
        assert c.pending() == [h]  # still owed, never forgotten
        pubs = [p for p in fake.packets if isinstance(p, Publish)]
        assert pubs[0].dup is False and any(p.dup and p.packet_id == h for p in pubs[1:])
    finally:
        fake.close()


def test_keepalive_sends_pingreq_and_expects_pingresp():
    fake = FakeBroker("capture")
    try:
        c = MQTTClient("127.0.0.1", fake.port, "cmdevice8", socket_cpython.opener(), keepalive=1, timeout=1,
                       backoff=_fast_backoff())
        drive(c, lambda e: c.connected)
        events, _ = _time_calls(c, 1.6)
        assert not [e for e in events if e[0] == "lost"]
        assert sum(1 for p in fake.packets if p.KIND == "pingreq") >= 2
    finally:
        fake.close()
