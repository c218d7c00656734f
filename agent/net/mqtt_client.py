"""Our small MQTT 3.1.1 client (portable): the codec plus a socket loop with timeouts.

The socket comes from an injected `open_stream(host, port, timeout) -> stream`, where a
stream has `send(data, timeout)`, `recv(n, timeout) -> bytes` (b"" when nothing arrived in
time; TransportError when the peer closed) and `close()`. agent/net/socket_cpython.py and
socket_mpy.py provide real ones (plain or TLS with the device certificate); tests pass
stand-ins. The interface is documented in agent/net/__init__.py.

Every wait has a deadline checked against the caller's `now`: CONNACK, PUBACK and PINGRESP
each within `timeout` seconds, else the connection is dropped, the backoff grows and the
unacknowledged publishes are resent with DUP after the next CONNACK.
"""
from agent.errors import AgentError
from agent.net import mqtt_codec as mc
from agent.net.mqtt_packets import CONNACK_REASONS
from agent.net.transport import Backoff, TransportError

SMALL_PAYLOAD = 512  # bytes: sent with its head in one write (no small-packet delay on TCP)

IDLE = 0
AWAIT_CONNACK = 1
CONNECTED = 2
_RECV = 1024


class MQTTClient:
    """MQTTClient(host, port, client_id, open_stream, ...): see the module docstring.

    keepalive: seconds (a PINGREQ goes after keepalive/2 of silence from us).
    timeout: seconds allowed for TCP/TLS connect, each send, CONNACK, PUBACK and PINGRESP.
    clean_session: False keeps the broker-side session, so QoS 1 survives reconnects.
    max_inflight: QoS 1 publishes allowed unacknowledged at once (1..65535).
    status_topic: if set, will `offline` (QoS 1, retained) and birth `online` (retained).
    receive_buffer: bytes of one buffer allocated now and reused for every large incoming message
    (a board's update blocks): such a message's payload is then a memoryview valid only while
    on_message(topic, payload) runs, so on_message must be set (it then gets every message at once,
    instead of a "message" event).
    """

    def __init__(self, host, port, client_id, open_stream, keepalive=60, timeout=10.0, clean_session=False,
                 max_inflight=1, status_topic=None, username=None, password=None, backoff=None,
                 max_packet=16384, receive_buffer=0):
        self.host = host
        self.port = port
        self.client_id = client_id
        self.open_stream = open_stream
        self.keepalive = keepalive
        self.timeout = timeout
        self.clean_session = clean_session
        self.max_inflight = max_inflight
        self.status_topic = status_topic
        self.username = username
        self.password = password
        self.backoff = backoff or Backoff()
        self.max_packet = max_packet
        self.state = IDLE
        self.last_error = None
        self._stream = None
        self._parser = None
        self._inflight = {}  # packet id -> [topic, payload, retain, sent_at]
        self._order = []  # packet ids, oldest first
        self._next_pid = 1
        self._deadline = None  # CONNACK or PINGRESP deadline
        self._last_send = 0
        self._events = []
        self.on_message = None
        self._reuse = bytearray(receive_buffer) if receive_buffer else None

    # -- state -------------------------------------------------------------------------
    @property
    def connected(self):
        return self.state == CONNECTED

    @property
    def can_publish(self):
        return self.state == CONNECTED and len(self._inflight) < self.max_inflight

    def pending(self):
        return list(self._order)

    # -- connecting --------------------------------------------------------------------
    def connect(self, now):
        """Open the connection and send CONNECT if the backoff allows; True once connected."""
        if self.state != IDLE:
            return self.state == CONNECTED
        if not self.backoff.ready(now):
            return False
        will = {}
        if self.status_topic:
            will = {"will_topic": self.status_topic, "will_message": b"offline", "will_qos": 1,
                    "will_retain": True}
        try:
            self._stream = self.open_stream(self.host, self.port, self.timeout)
            self._parser = mc.Parser(mc.CLIENT, self.max_packet, self._reuse)
            self.state = AWAIT_CONNACK
            self._deadline = now + self.timeout
            self._send(mc.connect(self.client_id, self.keepalive, self.clean_session, username=self.username,
                                  password=self.password, **will), now)
        except Exception as e:  # noqa: BLE001 - whatever failed (a MemoryError too), back off before the next try
            self._lose(now, "connect to %s:%d failed: %s" % (self.host, self.port, e))
            return False
        return False

    def _on_connack(self, ev, now):
        if ev.return_code:
            raise TransportError("broker refused the connection: %s" % CONNACK_REASONS[ev.return_code])
        self.state = CONNECTED
        self._deadline = None
        self.backoff.succeeded()
        self._events.append(("connected", ev.session_present))
        if self.status_topic:
            self._send(mc.publish(self.status_topic, b"online", 0, True), now)
        for pid in self._order:  # resend what the broker may not have, flagged DUP
            m = self._inflight[pid]
            m[3] = now
            self._send_publish(m[0], m[1], 1, m[2], True, pid, now)

    # -- publishing --------------------------------------------------------------------
    def publish(self, topic, payload, qos=1, retain=False, now=None):
        """Send one message; return its handle (see agent/net/__init__.py).

        now: the time of sending; if None, the PUBACK clock starts at the next poll.
        """
        if self.state != CONNECTED:
            raise TransportError("not connected to %s:%d" % (self.host, self.port))
        if qos == 0:
            self._send_publish(topic, payload, 0, retain, False, 0, now)
            return 0
        if len(self._inflight) >= self.max_inflight:
            raise TransportError("%d publishes already in flight (max_inflight)" % len(self._inflight))
        pid = self._take_pid()
        head = mc.publish_head(topic, len(payload), 1, retain, False, pid)  # checks before anything is kept
        self._inflight[pid] = [topic, payload, retain, now]
        self._order.append(pid)
        self._send_packet(head, payload, now)
        return pid

    def _send_publish(self, topic, payload, qos, retain, dup, pid, now):
        self._send_packet(mc.publish_head(topic, len(payload), qos, retain, dup, pid), payload, now)

    def _send_packet(self, head, payload, now):
        # A summary goes out in one write; a large payload (the manifest) after its head, from
        # where it lies: no copy of it needs a block of its size in the heap.
        if len(payload) <= SMALL_PAYLOAD:
            self._send(head + bytes(payload), now)
        else:
            self._send(head, now)
            self._send(payload, now)

    def _take_pid(self):
        while True:
            pid = self._next_pid
            self._next_pid = pid % 65535 + 1
            if pid not in self._inflight:
                return pid

    def subscribe(self, topics, now):
        """Send SUBSCRIBE for [(filter, qos)] (tests and tools); the SUBACK is not awaited."""
        self._send(mc.subscribe(self._take_pid(), topics), now)

    # -- the loop ----------------------------------------------------------------------
    def poll(self, now, wait=0):
        """Do the I/O due at now and return the events it produced (see the interface)."""
        if self.state != IDLE:
            try:
                self._poll(now, wait)
            except (AgentError, OSError, MemoryError) as e:  # a full heap drops the link, not the agent
                self._lose(now, "%s: %s" % (type(e).__name__, e) if isinstance(e, MemoryError) else str(e))
        out = self._events
        self._events = []
        return out

    def _poll(self, now, wait):
        data = self._stream.recv(_RECV, wait)
        while data:
            self._parser.feed(data)
            while self._parser is not None:  # each event handled before the next: a reused buffer stays valid
                ev = self._parser.next_event()
                if ev is None:
                    break
                self._handle(ev, now)
            data = self._stream.recv(_RECV, 0) if self._stream else b""
        if self.state == AWAIT_CONNACK and now >= self._deadline:
            raise TransportError("no CONNACK within %ss" % self.timeout)
        if self.state != CONNECTED:
            return
        for pid in self._order:
            m = self._inflight[pid]
            if m[3] is None:
                m[3] = now  # published between polls: the clock starts at the first poll
            elif now - m[3] >= self.timeout:
                raise TransportError("no PUBACK for packet %d within %ss" % (pid, self.timeout))
        if self._deadline is not None and now >= self._deadline:
            raise TransportError("no PINGRESP within %ss" % self.timeout)
        if self.keepalive and self._deadline is None and now - self._last_send >= self.keepalive / 2:
            self._send(mc.pingreq(), now)
            self._deadline = now + self.timeout

    def _handle(self, ev, now):
        kind = ev.KIND
        if self.state == AWAIT_CONNACK:
            if kind != "connack":
                raise mc.ProtocolError("%s before CONNACK" % kind.upper())
            self._on_connack(ev, now)
        elif kind == "puback":
            if ev.packet_id in self._inflight:
                del self._inflight[ev.packet_id]
                self._order.remove(ev.packet_id)
                self._events.append(("acked", ev.packet_id))
        elif kind == "pingresp":
            self._deadline = None
        elif kind == "publish":
            if ev.qos:
                self._send(mc.puback(ev.packet_id), now)
            if self.on_message is not None:
                self.on_message(ev.topic, ev.payload)
            else:
                self._events.append(("message", ev.topic, ev.payload))
        elif kind == "connack":
            raise mc.ProtocolError("a second CONNACK")

    def _send(self, data, now):
        if self._stream is None:
            raise TransportError("not connected to %s:%d" % (self.host, self.port))
        self._stream.send(data, self.timeout)
        if now is not None:
            self._last_send = now

    def _lose(self, now, reason):
        self._close_stream()
        self.state = IDLE
        self._deadline = None
        self.last_error = reason
        delay = self.backoff.failed(now)
        self._events.append(("lost", "%s; retrying in %.1fs" % (reason, delay)))

    def _close_stream(self):
        if self._stream is not None:
            try:
                self._stream.close()
            except (AgentError, OSError):
                pass
        self._stream = None

    def close(self):
        """Send DISCONNECT (the broker then discards the will) and close the socket."""
        if self.state == CONNECTED:
            try:
                self._stream.send(mc.disconnect(), self.timeout)
            except (AgentError, OSError):
                pass
        self._close_stream()
        self.state = IDLE
