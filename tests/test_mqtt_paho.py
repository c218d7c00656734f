"""PahoTransport (paho-mqtt 2.x) behind our transport interface: TLS with a client
certificate, birth and will, QoS 1, bounded in-flight, DUP resend, timeouts, backoff."""
import time

import pytest

from agent.net.mqtt_packets import Publish
from agent.net.paho_transport import PahoTransport
from agent.net.transport import Backoff, TransportError
from broker import Broker
from mqtt_fakes import FakeBroker, Subscriber, drive


def _fast_backoff():
    return Backoff(base=0.05, cap=0.2, rng=lambda: 0.5)


@pytest.fixture
def tls_broker(tmp_path):
    with Broker(tmp_path, tls=True) as b:
        yield b


def test_tls_birth_publish_puback_and_bounded_inflight(tls_broker):
    sub = Subscriber(tls_broker.plain_port, "cm/#")
    t = PahoTransport("127.0.0.1", tls_broker.port, "cmpaho1", tls=tls_broker.client_files("cmpaho1"),
                      timeout=3, status_topic="cm/p1/status", max_inflight=2, backoff=_fast_backoff())
    try:
        drive(t, lambda e: t.connected)
        h1 = t.publish("cm/p1/summary", b"one", now=time.monotonic())
        h2 = t.publish("cm/p1/summary", b"two", now=time.monotonic())
        assert not t.can_publish
        with pytest.raises(TransportError, match="in flight"):
            t.publish("cm/p1/summary", b"three")
        drive(t, lambda e: ("acked", h1) in e and ("acked", h2) in e)
        assert t.pending() == [] and t.can_publish
        sub.wait_for(lambda m: m[1] == b"two")
        assert sub.wait_for(lambda m: m[0] == "cm/p1/status")[1:] == (b"online", False)
    finally:
        t.close()
        sub.close()


def test_will_offline_after_abrupt_loss(tls_broker):
    t = PahoTransport("127.0.0.1", tls_broker.port, "cmpaho2", tls=tls_broker.client_files("cmpaho2"),
                      timeout=3, status_topic="cm/p2/status", backoff=_fast_backoff())
    drive(t, lambda e: t.connected)
    t._c.socket().close()  # power cut
    sub = Subscriber(tls_broker.plain_port, "cm/p2/status")
    try:
        assert sub.wait_for(lambda m: m[1] == b"offline")[2] is True
    finally:
        sub.close()


def test_silent_broker_connack_timeout_and_backoff():
    fake = FakeBroker("silent")
    t = PahoTransport("127.0.0.1", fake.port, "cmpaho3", timeout=0.4, backoff=_fast_backoff())
    try:
        events, longest = [], 0.0
        end = time.monotonic() + 1.5
        while time.monotonic() < end:
            t0 = time.monotonic()
            t.connect(t0)
            events += t.poll(time.monotonic(), wait=0.01)
            longest = max(longest, time.monotonic() - t0)
        lost = [e for e in events if e[0] == "lost"]
        assert len(lost) >= 2 and "no CONNACK within 0.4s" in lost[0][1]
        assert longest < t.timeout, "one call blocked %.2fs" % longest
    finally:
        t.close()
        fake.close()


def test_no_puback_times_out_then_resends_with_dup():
    fake = FakeBroker("no_puback")
    t = PahoTransport("127.0.0.1", fake.port, "cmpaho4", timeout=0.4, backoff=_fast_backoff())
    try:
        drive(t, lambda e: t.connected)
        h = t.publish("cm/p4/summary", b"x", now=time.monotonic())
        drive(t, lambda e: any(ev[0] == "lost" and "no PUBACK" in ev[1] for ev in e), timeout=3)
        drive(t, lambda e: ("connected", False) in e, timeout=3)
        end = time.monotonic() + 3
        while time.monotonic() < end:  # the fake broker reads on its own thread
            t.poll(time.monotonic(), wait=0.02)
            pubs = [p for p in fake.packets if isinstance(p, Publish)]
            if len(pubs) >= 2:
                break
        assert [(p.packet_id, p.dup) for p in pubs][:2] == [(h, False), (h, True)]
        assert t.pending() == [h]
    finally:
        t.close()
        fake.close()
