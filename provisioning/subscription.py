"""A QoS 1 subscriber on paho-mqtt 2.x that acknowledges a message only once it is handled (CPython only).

    sub = Subscription(host, port, "civicmote-collector", ["civicmote/v1/+/+/summary"], on_message)
    while running:
        for ev in sub.poll(time.monotonic(), wait=0.1): ...   # ("connected", session_present), ("lost", reason)

The session is persistent (clean_session=False) under a stable client id, so a collector that
was away gets, when it returns, what the broker queued for it meanwhile. `on_message(topic,
payload)` runs inside poll(); its PUBACK is sent only after it returns, so a message whose
handling raised (or a collector killed mid-way) is delivered again. paho never reconnects on
its own; poll() does, with exponential backoff and jitter. Every wait is bounded: TCP/TLS
connect and CONNACK by `timeout`, each poll by `wait`.
"""
import socket
import ssl
import time

import paho.mqtt.client as paho

from agent.net import mqtt_codec
from agent.net.transport import Backoff

IDLE = 0
CONNECTING = 1
CONNECTED = 2


class Subscription:
    """Subscription(host, port, client_id, topics, on_message, tls=None, keepalive=30, timeout=10.0).

    tls: None, or {cafile, certfile, keyfile} (PEM files; certfile/keyfile may be None when
    the broker does not ask for a client certificate).
    """

    def __init__(self, host, port, client_id, topics, on_message, tls=None, keepalive=30, timeout=10.0,
                 backoff=None):
        self.host, self.port = host, port
        self.topics = list(topics)
        self.on_message = on_message
        self.keepalive = keepalive
        self.timeout = timeout
        self.backoff = backoff or Backoff(base=0.5, cap=15.0)
        self.state = IDLE
        self.last_error = None
        self.connects = 0  # CONNACKs received
        self._started = False
        self._deadline = None
        self._events = []
        self._now = 0.0
        c = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=False,
                        protocol=paho.MQTTv311, reconnect_on_failure=False, manual_ack=True)
        c.connect_timeout = timeout
        if tls:
            from agent.net.socket_cpython import tls_context

            c.tls_set_context(tls_context(tls["cafile"], tls.get("certfile"), tls.get("keyfile")))
        c.on_connect = self._on_connect
        c.on_disconnect = self._on_disconnect
        c.on_message = self._on_message
        self._c = c

    @property
    def connected(self):
        return self.state == CONNECTED

    def poll(self, now, wait=0.1):
        """Connect when due, read for at most `wait` seconds, hand messages over; -> events."""
        self._now = now
        if self.state == IDLE:
            if self.backoff.ready(now):
                self._connect(now)
            else:
                time.sleep(min(wait, max(0.0, self.backoff.next_at - now)))
        if self.state != IDLE:
            rc = self._c.loop(timeout=wait)
            if rc != paho.MQTT_ERR_SUCCESS and self.state != IDLE:
                self._lose(now, "connection lost: %s" % paho.error_string(rc))
        if self.state == CONNECTING and now >= self._deadline:
            self._lose(now, "no CONNACK from %s:%d within %ss" % (self.host, self.port, self.timeout))
        out, self._events = self._events, []
        return out

    def _connect(self, now):
        try:
            if self._started:
                self._c.reconnect()
            else:
                self._started = True
                self._c.connect(self.host, self.port, self.keepalive)
        except (OSError, ssl.SSLError, socket.timeout, ValueError) as e:
            self._lose(now, "connect to %s:%d failed: %s" % (self.host, self.port, e))
            return
        self.state = CONNECTING
        self._deadline = now + self.timeout

    # -- paho callbacks (inside Client.loop, i.e. inside poll) ------------------------------
    def _on_connect(self, client, userdata, flags, reason, properties):
        if reason.is_failure:
            self._lose(self._now, "broker refused the connection: %s" % reason)
            return
        self.state = CONNECTED
        self.connects += 1
        self.backoff.succeeded()
        # Subscribe on every connect: a broker restarted without persistence forgot the session.
        client.subscribe([(t, 1) for t in self.topics])
        self._events.append(("connected", bool(flags.session_present)))

    def _on_message(self, client, userdata, msg):
        self.on_message(msg.topic, msg.payload)
        if msg.qos:
            client.ack(msg.mid, msg.qos)

    def _on_disconnect(self, client, userdata, flags, reason, properties):
        if self.state != IDLE:
            self._lose(self._now, "disconnected: %s" % reason)

    def _lose(self, now, reason):
        was = self.state
        self.state = IDLE
        self._deadline = None
        self.last_error = reason
        if was != IDLE:
            self._c._sock_close()  # paho has no public abort; we reconnect ourselves
        delay = self.backoff.failed(now)
        self._events.append(("lost", "%s; retrying in %.1fs" % (reason, delay)))

    def close(self, linger=1.0):
        """Leave cleanly: the broker keeps the session for our next run.

        Our PUBACKs and a DISCONNECT are written, then the write side is shut and what the
        broker still sends is read and dropped (unacknowledged, so redelivered next time)
        until it closes, for at most `linger` seconds. Closing at once with unread bytes
        would make the kernel send a reset, and the broker would discard the PUBACKs it had
        not read yet (paho's own disconnect() does exactly that).
        """
        sock = self._c.socket()
        if self.state == CONNECTED and sock is not None:
            try:
                self._c.loop_write()  # PUBACKs still queued
                sock.setblocking(True)
                sock.settimeout(linger)
                sock.sendall(mqtt_codec.disconnect())
                sock.shutdown(socket.SHUT_WR)
                end = time.monotonic() + linger
                while time.monotonic() < end and sock.recv(4096):
                    pass
            except (OSError, ValueError):
                pass
        self._c._sock_close()
        self.state = IDLE
