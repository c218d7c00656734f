# CPython only: the paho-mqtt 2.x session of PahoTransport, and the clean leave the collector's Subscription shares.
"""PahoSession: one MQTT 3.1.1 session on paho-mqtt 2.x, driven by the caller's loop.

No paho thread: `poll(now, wait)` -> `Client.loop(timeout=wait)`, so every wait is bounded:
TCP/TLS connect by `timeout` (paho's connect_timeout), CONNACK by `timeout` checked here
against `now`, PINGRESP by paho's keepalive check, `close()` by `timeout` too. paho never
reconnects on its own (reconnect_on_failure=False): `connect(now)` does, when our Backoff
allows. States: IDLE -> CONNECTING (CONNECT sent) -> CONNECTED (CONNACK accepted) -> IDLE
on any loss, which closes the socket abruptly and queues a ("lost", reason) event.

Subclasses fill in what differs through three hooks, all called inside poll():
    _session_up(client)    after each accepted CONNACK, before the ("connected", ...) event
    _on_message(client, userdata, msg)   paho's callback (default: a ("message", ...) event)
    _check(now)            while connected, after the read: further deadlines
"""
import socket
import ssl
import time

import paho.mqtt.client as paho

from agent.net import mqtt_codec
from agent.net.socket_cpython import client_context

IDLE = 0
CONNECTING = 1
CONNECTED = 2


class PahoSession:
    """PahoSession(host, port, client_id, tls, keepalive, timeout, clean_session, backoff, manual_ack).

    tls: None, an ssl.SSLContext, or {cafile, certfile, keyfile} (PEM files; certfile and
    keyfile may be None when the broker does not ask for a client certificate).
    manual_ack: QoS 1 messages are acknowledged only by `self._c.ack(mid, qos)`.
    """

    def __init__(self, host, port, client_id, tls, keepalive, timeout, clean_session, backoff, manual_ack=False):
        self.host = host
        self.port = port
        self.keepalive = keepalive
        self.timeout = timeout
        self.backoff = backoff
        self.state = IDLE
        self.last_error = None
        self.connects = 0  # CONNACKs accepted
        self._started = False
        self._deadline = None
        self._events = []
        self._now = 0
        c = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=clean_session,
                        protocol=paho.MQTTv311, reconnect_on_failure=False, manual_ack=manual_ack)
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
        return self.state == CONNECTED

    def connect(self, now):
        """Start connecting when IDLE and the backoff allows; -> True once connected."""
        if self.state != IDLE:
            return self.state == CONNECTED
        if not self.backoff.ready(now):
            return False
        self._now = now
        try:
            if self._started:
                self._c.reconnect()
            else:
                self._started = True
                self._c.connect(self.host, self.port, self.keepalive)
        except (OSError, ssl.SSLError, socket.timeout, ValueError) as e:
            self._lose(now, "connect to %s:%d failed: %s" % (self.host, self.port, e))
            return False
        self.state = CONNECTING
        self._deadline = now + self.timeout
        return False

    def poll(self, now, wait=0):
        """Read and write for at most `wait` seconds, check the deadlines; -> events."""
        self._now = now
        if self.state != IDLE:
            rc = self._c.loop(timeout=wait)
            if rc != paho.MQTT_ERR_SUCCESS and self.state != IDLE:
                self._lose(now, "connection lost: %s" % paho.error_string(rc))
        if self.state == CONNECTING and now >= self._deadline:
            self._lose(now, "no CONNACK within %ss from %s:%d" % (self.timeout, self.host, self.port))
        if self.state == CONNECTED:
            self._check(now)
        out, self._events = self._events, []
        return out

    # -- hooks ---------------------------------------------------------------------------------
    def _session_up(self, client):
        pass

    def _check(self, now):
        pass

    # -- paho callbacks (run inside Client.loop, i.e. inside poll) -------------------------
    def _on_connect(self, client, userdata, flags, reason, properties):
        if reason.is_failure:
            self._lose(self._now, "broker refused the connection: %s" % reason)
            return
        self.state = CONNECTED
        self._deadline = None
        self.connects += 1
        self.backoff.succeeded()
        self._session_up(client)
        self._events.append(("connected", bool(flags.session_present)))

    def _on_message(self, client, userdata, msg):
        self._events.append(("message", msg.topic, msg.payload))

    def _on_disconnect(self, client, userdata, flags, reason, properties):
        if self.state != IDLE:
            self._lose(self._now, "disconnected: %s" % reason)

    def _lose(self, now, reason):
        """Abrupt loss, like a power cut: no DISCONNECT, so the broker sends our will."""
        self.state = IDLE
        self._deadline = None
        self.last_error = reason
        self._c._sock_close()  # paho has no public abort (a no-op when there is no socket)
        delay = self.backoff.failed(now)
        self._events.append(("lost", "%s; retrying in %.1fs" % (reason, delay)))

    def close(self, linger=1.0):
        """Leave cleanly: DISCONNECT (no will; a persistent session is kept for next time).

        What paho still has queued (PUBACKs, publishes) and a DISCONNECT are written, then the
        write side is shut and whatever the broker still sends is read and dropped (so not
        acknowledged: redelivered next time) until it closes, for at most `linger` seconds
        (and never longer than `timeout`). Closing at once with unread bytes would make the
        kernel send a reset, and the broker would discard what it had not read yet (paho's
        own disconnect() does exactly that).
        """
        was, self.state, self._deadline = self.state, IDLE, None
        leave_cleanly(self._c, was == CONNECTED, min(linger, self.timeout))


def leave_cleanly(client, connected, linger):
    """Leave an MQTT session on paho's client without a reset: what is queued is written, then
    DISCONNECT, then what the broker still sends is read and dropped (not acknowledged:
    delivered again next time) until it closes, for at most `linger` seconds. Closing at once
    with unread bytes would make the kernel send a reset, and the broker would discard what it
    had not read yet (paho's own disconnect() does exactly that). The socket is closed after."""
    sock = client.socket()
    if connected and sock is not None:
        end = time.monotonic() + linger
        try:
            sock.setblocking(True)
            sock.settimeout(max(0.001, end - time.monotonic()))
            client.loop_write()  # blocking, so no packet is left half written
            sock.sendall(mqtt_codec.disconnect())
            sock.shutdown(socket.SHUT_WR)
            while time.monotonic() < end:
                sock.settimeout(max(0.001, end - time.monotonic()))
                if not sock.recv(4096):
                    break
        except (OSError, ValueError):
            pass
    client._sock_close()  # paho has no public abort (a no-op when there is no socket)
