"""The collector's MQTT session: paho-mqtt 2.x, MQTT 5, in a network thread of its own (CPython only).

    sub = Subscription(host, port, "civicmote-collector", ["civicmote/v1/+/+/summary"], tls=...)
    batch = sub.take(500, linger=0.05); ...; sub.ack(batch)      # see city/inbox.py

Why a thread: keepalive, PINGREQ/PINGRESP and reconnects must not wait for the store. The
network thread owns the paho client (every paho call happens in it, none from the store's
thread): it connects, reads, hands each message over through a queue, and writes the PUBACKs
that the store's side asks for with ack(). However long a batch takes to commit, the session
stays alive. It reconnects by itself with exponential backoff and jitter.

Nothing is lost and nothing is acknowledged early:
- A message is acknowledged only by ack(), after its batch committed. An acknowledgement for a
  message delivered on an earlier connection is not sent (its packet id belongs to that
  connection); the broker delivers the message again on the new one and the store counts it
  as a duplicate.
- The session is persistent (clean start off, MQTT 5 session expiry `session_expiry`; never
  expiring for a collector with a store) under a stable client id, so what arrives while the
  collector is away, or reconnecting, waits in its session. persistent=False (an in-memory
  store: nothing to resume in a new process) starts clean once and keeps the session across
  this process' reconnects only, for `session_expiry` seconds.
- Flow control: the broker sends at most `inflight` unacknowledged messages (MQTT 5 Receive
  Maximum), so the queue between the threads never holds more, and never blocks the network.

poll(now, wait) (city/inbox.py) is the one-message-at-a-time form for tests and small tools.
"""
import socket
import ssl
import time

import paho.mqtt.client as paho
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from agent.net.paho_session import leave_cleanly
from agent.net.socket_cpython import client_context
from agent.net.transport import Backoff
from provisioning.city.inbox import Inbox

DEFAULT_INFLIGHT = 1000  # unacknowledged messages the broker may send (MQTT 5 Receive Maximum)
NEVER = 0xFFFFFFFF  # MQTT 5 session expiry: the session never expires
VOLATILE_SESSION_S = 600  # an in-memory collector's session outlives a reconnect, not the process
TICK = 0.02  # seconds the network thread waits for the socket before writing acks asked for


class Subscription(Inbox):
    """Subscription(host, port, client_id, topics, on_message=None, tls=None, keepalive=30,
    timeout=10.0, backoff=None, persistent=True, inflight=1000, session_expiry=None, protocol=5).

    protocol: 5 (MQTT 5: the broker holds at most `inflight` unacknowledged messages, the session
    expires as asked) or "3.1.1" for a broker that speaks only that (the demo's embedded amqtt
    broker): a persistent session is then clean_session=False and the broker's own inflight
    limit applies.

    tls: None, an ssl.SSLContext, or {cafile, certfile, keyfile} (PEM files). `connects`: CONNACKs
    accepted; `last_error`: why the last attempt or connection failed. The thread starts on the
    first take(), poll() or start(); close(linger=1.0) leaves cleanly (the session is kept).
    """

    def __init__(self, host, port, client_id, topics, on_message=None, tls=None, keepalive=30, timeout=10.0,
                 backoff=None, persistent=True, inflight=DEFAULT_INFLIGHT, session_expiry=None, protocol=5):
        Inbox.__init__(self, on_message)
        self.host, self.port, self.topics = host, port, list(topics)
        self.keepalive, self.timeout = keepalive, timeout
        self.backoff = backoff or Backoff(base=0.5, cap=15.0)
        self._connected = False
        props = Properties(PacketTypes.CONNECT)
        props.ReceiveMaximum = inflight
        props.SessionExpiryInterval = (session_expiry or NEVER) if persistent else \
            (session_expiry or VOLATILE_SESSION_S)
        self._props = props
        self._clean_start = False if persistent else paho.MQTT_CLEAN_START_FIRST_ONLY
        if str(protocol) == "5":
            c = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=paho.MQTTv5,
                            reconnect_on_failure=False, manual_ack=True)
        elif str(protocol) == "3.1.1":
            self._props, self._clean_start = None, paho.MQTT_CLEAN_START_FIRST_ONLY  # v5 only
            c = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=paho.MQTTv311,
                            clean_session=not persistent, reconnect_on_failure=False, manual_ack=True)
        else:
            raise ValueError("MQTT protocol %r: 5 or 3.1.1" % (protocol,))
        c.connect_timeout = timeout
        ctx = client_context(tls)
        if ctx is not None:
            c.tls_set_context(ctx)
        c.on_connect = self._on_connect
        c.on_disconnect = self._on_disconnect
        c.on_message = self._on_message
        self._c = c

    @property
    def connected(self):
        return self._connected

    # -- the network thread ----------------------------------------------------------------------
    def _run(self):
        connecting_until = None
        first = True
        while not self._stop:
            now = time.monotonic()
            if connecting_until is None and not self._connected:
                if not self.backoff.ready(now):
                    time.sleep(min(TICK * 5, max(0.0, self.backoff.next_at - now)))
                    continue
                try:
                    if first:
                        self._c.connect(self.host, self.port, self.keepalive, clean_start=self._clean_start,
                                        properties=self._props)
                        first = False
                    else:
                        self._c.reconnect()
                except (OSError, ssl.SSLError, socket.timeout, ValueError) as e:
                    self._lose("connect to %s:%d failed: %s" % (self.host, self.port, e))
                    continue
                connecting_until = now + self.timeout
            rc = self._c.loop(timeout=TICK)
            if rc != paho.MQTT_ERR_SUCCESS and (self._connected or connecting_until is not None):
                connecting_until = None
                self._lose("connection lost: %s" % paho.error_string(rc))
                continue
            if self._connected:
                connecting_until = None
                self._write_queued()
            elif connecting_until is not None and time.monotonic() >= connecting_until:
                connecting_until = None
                self._lose("no CONNACK within %ss from %s:%d" % (self.timeout, self.host, self.port))
        if self._connected:
            self._write_queued()

    def _write_queued(self):
        for d in self._acks_due():
            self._c.ack(d.tag, d.qos)
        while self._outbox:
            topic, payload, qos, retain = self._outbox.popleft()
            self._c.publish(topic, payload, qos=qos, retain=retain)

    def _on_connect(self, client, userdata, flags, reason, properties):
        if reason.is_failure:
            self._lose("broker refused the connection: %s" % reason)
            return
        self._conn += 1
        self._connected = True
        self.connects += 1
        self.backoff.succeeded()
        # Subscribe on every connect: a broker restarted without persistence forgot the session.
        client.subscribe([(t, 1) for t in self.topics])
        self._events.append(("connected", bool(flags.session_present)))

    def _on_message(self, client, userdata, msg):
        self._deliver(msg.topic, msg.payload, msg.mid, msg.qos)

    def _on_disconnect(self, client, userdata, flags, reason, properties):
        if self._connected:
            self._lose("disconnected: %s" % reason)

    def _lose(self, reason):
        """Abrupt loss: no DISCONNECT, so the broker keeps the session (and sends no clean goodbye)."""
        self._connected = False
        self.last_error = reason
        self._c._sock_close()  # paho has no public abort (a no-op when there is no socket)
        delay = self.backoff.failed(time.monotonic())
        self._events.append(("lost", "%s; retrying in %.1fs" % (reason, delay)))

    def close(self, linger=1.0):
        """Leave cleanly: acknowledgements asked for are written, then DISCONNECT; the session is
        kept for next time. What the broker still sends meanwhile is read and dropped (so not
        acknowledged: delivered again next time) until it closes, for at most `linger` seconds."""
        self._stop = True
        if self._thread is not None:
            self._thread.join(self.timeout + 5)
        was, self._connected = self._connected, False
        leave_cleanly(self._c, was, min(linger, self.timeout))
