"""MQTTClient's state machine on both runtimes, driven by a socket-level stand-in and a
simulated clock: CONNACK/PUBACK/PINGRESP deadlines, DUP resend, backoff, refusals."""
from support import raises

from agent.net import mqtt_codec as mc
from agent.net.mqtt_client import MQTTClient
from agent.net.transport import Backoff, TransportError


class StandInBroker:
    """A stream (send/recv/close) that answers like a broker, per its switches."""

    def __init__(self):
        self.connack = True
        self.connack_code = 0
        self.puback = True
        self.pingresp = True
        self.garbage = None
        self.sent = []  # packets the client sent, parsed
        self.opened = 0
        self.refuse = False

    def open(self, host, port, timeout):
        if self.refuse:
            raise TransportError("connection refused")
        self.opened += 1
        self._parser = mc.Parser(mc.SERVER)
        self._out = b""
        self.closed = False
        return self

    def send(self, data, timeout):
        self._parser.feed(data)
        for p in self._parser.events():
            self.sent.append(p)
            if p.KIND == "connect" and self.connack:
                self._out += mc.connack(self.connack_code, False)
            elif p.KIND == "publish" and p.qos and self.puback:
                self._out += mc.puback(p.packet_id)
            elif p.KIND == "pingreq" and self.pingresp:
                self._out += mc.pingresp()

    def recv(self, n, timeout):
        if self.garbage:
            out, self.garbage = self.garbage, None
            return out
        out, self._out = self._out[:n], self._out[n:]
        return out

    def close(self):
        self.closed = True

    def publishes(self):
        return [p for p in self.sent if p.KIND == "publish"]


def _client(b, **kw):
    kw.setdefault("timeout", 2)
    kw.setdefault("backoff", Backoff(base=1, cap=8, rng=lambda: 0.5))
    return MQTTClient("broker.example", 8883, "cmdev", b.open, **kw)


def test_connect_sends_will_and_birth_then_publish_is_acked():
    b = StandInBroker()
    c = _client(b, status_topic="civicmote/v1/d/cmdev/status", keepalive=30)
    assert c.connect(0) is False  # CONNECT sent, CONNACK not read yet
    assert c.poll(0) == [("connected", False)]
    assert c.connected and c.connect(0) is True
    assert b.sent[0].KIND == "connect"
    assert (b.sent[0].will_topic, b.sent[0].will_message, b.sent[0].will_qos, b.sent[0].will_retain) == \
        ("civicmote/v1/d/cmdev/status", b"offline", 1, True)
    assert b.sent[0].clean_session is False and b.sent[0].keepalive == 30
    birth = b.publishes()[0]
    assert (birth.payload, birth.retain) == (b"online", True)
    h = c.publish("civicmote/v1/d/cmdev/summary", b"cose", now=1)
    assert not c.can_publish and c.pending() == [h]
    raises(TransportError, c.publish, "t", b"x")
    assert c.poll(1) == [("acked", h)]
    assert c.can_publish and c.pending() == []


def test_no_connack_times_out_and_backs_off_with_jitter():
    b = StandInBroker()
    b.connack = False
    c = _client(b)
    c.connect(0)
    assert c.poll(1.9) == []
    ev = c.poll(2.0)
    assert ev[0][0] == "lost" and "no CONNACK within 2s" in ev[0][1], ev
    assert b.closed
    # rng 0.5, base 1: the first retry waits 0.75 s, then 1.5 s, 3 s, ...
    assert c.connect(2.7) is False and b.opened == 1
    c.connect(2.75)
    assert b.opened == 2
    c.poll(4.75)
    assert c.backoff.next_at == 4.75 + 1.5


def test_no_puback_drops_the_connection_and_resends_with_dup():
    b = StandInBroker()
    b.puback = False
    c = _client(b)
    c.connect(0)
    c.poll(0)
    h = c.publish("s", b"summary", now=0.5)
    assert c.poll(2.4) == []
    ev = c.poll(2.5)
    assert ev[0][0] == "lost" and "no PUBACK for packet %d" % h in ev[0][1]
    assert c.pending() == [h]
    b.puback = True
    c.connect(10)
    assert c.poll(10) == [("connected", False), ("acked", h)]
    pubs = b.publishes()
    assert [(p.packet_id, p.dup, p.payload) for p in pubs] == [(h, False, b"summary"), (h, True, b"summary")]


def test_publish_without_now_starts_its_clock_at_the_next_poll():
    b = StandInBroker()
    b.puback = False
    c = _client(b)
    c.connect(100)
    c.poll(100)
    c.publish("s", b"x")
    assert c.poll(150) == []  # stamped now
    assert c.poll(152)[0][0] == "lost"


def test_keepalive_ping_and_missing_pingresp():
    b = StandInBroker()
    c = _client(b, keepalive=10)
    c.connect(0)
    c.poll(0)
    c.poll(4.9)
    assert [p.KIND for p in b.sent] == ["connect"]
    c.poll(5)
    assert b.sent[-1].KIND == "pingreq"
    assert c.poll(6) == [] and c.connected  # PINGRESP arrived
    b.pingresp = False
    c.poll(10)
    assert b.sent[-1].KIND == "pingreq"
    ev = c.poll(12)
    assert ev[0][0] == "lost" and "PINGRESP" in ev[0][1]


def test_refusal_and_protocol_errors_become_lost_events_naming_the_cause():
    b = StandInBroker()
    b.connack_code = 5
    c = _client(b)
    c.connect(0)
    ev = c.poll(0)
    assert ev[0][0] == "lost" and "not authorized" in ev[0][1] and not c.connected
    b.connack_code = 0
    c.connect(5)
    c.poll(5)
    b.garbage = b"\x40\x03\x00\x01\x00"  # PUBACK with remaining length 3
    ev = c.poll(6)
    assert ev[0][0] == "lost" and "PUBACK: remaining length 3" in ev[0][1]
    b.refuse = True
    c.connect(20)
    assert "connection refused" in c.last_error


def test_inflight_window_and_packet_ids_skip_those_in_use():
    b = StandInBroker()
    b.puback = False
    c = _client(b, max_inflight=3)
    c.connect(0)
    c.poll(0)
    hs = [c.publish("s", b"%d" % i, now=0) for i in range(3)]
    assert len(set(hs)) == 3 and not c.can_publish
    assert c.poll(0) == []
    c._next_pid = hs[1]  # as after a wrap-around: the next id is still in flight
    b.puback = True
    c.close()
    c.connect(1)
    assert c.poll(1) == [("connected", False)] + [("acked", h) for h in hs]
    assert c.publish("s", b"a", now=1) == hs[1]
    c._inflight[hs[2]] = ["s", b"", False, 1]  # an id still in use is skipped
    c._order.append(hs[2])
    assert c.publish("s", b"z", now=1) == hs[2] + 1


def test_backoff_grows_to_its_cap_with_bounded_jitter():
    lo = Backoff(base=1, cap=8, rng=lambda: 0.0)
    hi = Backoff(base=1, cap=8, rng=lambda: 0.999)
    got_lo = [lo.failed(0) for _ in range(6)]
    got_hi = [hi.failed(0) for _ in range(6)]
    assert got_lo == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    for d, cap in zip(got_hi, (1, 2, 4, 8, 8, 8)):
        assert cap / 2 <= d < cap
    lo.succeeded()
    assert lo.ready(0) and lo.failed(0) == 0.5


def test_a_full_heap_while_connecting_or_reading_backs_off_and_never_raises():
    """A board whose heap has no block for a connection (MemoryError) loses the link with
    backoff, like any network failure: no tight retry loop, no exception into the agent."""
    b = StandInBroker()
    c = _client(b)
    real_open = b.open

    def no_memory(host, port, timeout):
        raise MemoryError("memory allocation failed, allocating 3048 bytes")

    c.open_stream = no_memory
    assert c.connect(0) is False
    assert c.backoff.failures == 1 and c.backoff.next_at == 0.75
    assert c.connect(0.5) is False and c.backoff.failures == 1  # waits its backoff
    c.open_stream = real_open
    c.connect(0.75)
    assert c.poll(0.75)[-1] == ("connected", False)  # after the first failure's ("lost", ...)

    def recv_no_memory(n, timeout):
        raise MemoryError("memory allocation failed, allocating 1025 bytes")

    b.recv = recv_no_memory
    ev = c.poll(1)
    assert ev[0][0] == "lost" and "MemoryError" in ev[0][1], ev
    assert not c.connected and c.backoff.next_at > 1


def test_a_large_payload_is_sent_after_its_head_not_copied_into_one_packet():
    b = StandInBroker()
    c = _client(b)
    c.connect(0)
    c.poll(0)
    writes = []
    send = b.send

    def record(data, timeout):
        writes.append(len(data))
        send(data, timeout)

    b.send = record
    manifest = bytes(2300)
    c.publish("civicmote/v1/d/cmdev/manifest", manifest, retain=True, now=1)
    c.poll(1)  # its PUBACK (one message in flight at a time here)
    c.publish("civicmote/v1/d/cmdev/summary", bytes(250), now=1)
    assert writes[1] == 2300 and writes[0] < 64  # head, then the manifest as it lies
    assert len(writes) == 3 and writes[2] > 250  # a summary: one write
    assert [len(p.payload) for p in b.publishes()] == [2300, 250]
