# CPython only: the transport on paho-mqtt 2.x (never imported on MicroPython).
"""PahoTransport: the interface of agent/net/__init__.py on paho-mqtt 2.x, without its thread.

The caller's loop drives paho through `poll(now, wait)` -> `Client.loop(timeout=wait)`, so
every wait is bounded: TCP/TLS connect by `timeout` (paho's connect_timeout), CONNACK and
each PUBACK by `timeout` checked here against `now`, PINGRESP by paho's keepalive check.
paho itself never reconnects on its own (reconnect_on_failure=False): `connect(now)` does,
when our Backoff allows. With clean_session=False paho keeps unacknowledged QoS 1 messages
and resends them with DUP after the next CONNACK; their handles (paho mids) stay valid.
"""
import socket
import ssl

import paho.mqtt.client as paho

from agent.net.transport import Backoff, TransportError

IDLE = 0
CONNECTING = 1
CONNECTED = 2


class PahoTransport:
    """PahoTransport(host, port, client_id, tls=None, ...): same arguments as MQTTClient,
    with tls = None or {cafile, certfile, keyfile} (PEM files)."""

    def __init__(self, host, port, client_id, tls=None, keepalive=60, timeout=10.0, clean_session=False,
                 max_inflight=1, status_topic=None, username=None, password=None, backoff=None):
        self.host = host
        self.port = port
        self.keepalive = keepalive
        self.timeout = timeout
        self.max_inflight = max_inflight
        self.status_topic = status_topic
        self.backoff = backoff or Backoff()
        self.state = IDLE
        self.last_error = None
        self._started = False
        self._deadline = None
        self._sent = {}  # mid -> time sent (None: stamped at the next poll)
        self._events = []
        self._now = 0
        c = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=clean_session,
                        protocol=paho.MQTTv311, reconnect_on_failure=False)
        c.connect_timeout = timeout
        c.max_inflight_messages_set(max_inflight)
        c.max_queued_messages_set(max_inflight)  # the outbox is the queue, not paho's memory
        if tls:
            from agent.net.socket_cpython import tls_context

            c.tls_set_context(tls_context(tls["cafile"], tls.get("certfile"), tls.get("keyfile")))
        if username is not None:
            c.username_pw_set(username, password)
        if status_topic:
            c.will_set(status_topic, b"offline", 1, True)
        c.on_connect = self._on_connect
        c.on_publish = self._on_publish
        c.on_disconnect = self._on_disconnect
        c.on_message = self._on_message
        self._c = c

    @property
    def connected(self):
        return self.state == CONNECTED

    @property
    def can_publish(self):
        return self.state == CONNECTED and len(self._sent) < self.max_inflight

    def pending(self):
        return list(self._sent)

    def connect(self, now):
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

    def publish(self, topic, payload, qos=1, retain=False, now=None):
        if self.state != CONNECTED:
            raise TransportError("not connected to %s:%d" % (self.host, self.port))
        if qos and len(self._sent) >= self.max_inflight:
            raise TransportError("%d publishes already in flight (max_inflight)" % len(self._sent))
        info = self._c.publish(topic, payload, qos, retain)
        if info.rc != paho.MQTT_ERR_SUCCESS:
            raise TransportError("publish to %s failed: %s" % (topic, paho.error_string(info.rc)))
        if qos:
            self._sent[info.mid] = now
        else:
            self._events.append(("acked", info.mid))
        return info.mid

    def subscribe(self, topics, now):
        self._c.subscribe(list(topics))

    def poll(self, now, wait=0):
        self._now = now
        if self.state != IDLE:
            rc = self._c.loop(timeout=wait)
            if rc != paho.MQTT_ERR_SUCCESS and self.state != IDLE:
                self._lose(now, "connection lost: %s" % paho.error_string(rc))
        if self.state == CONNECTING and now >= self._deadline:
            self._lose(now, "no CONNACK within %ss" % self.timeout)
        if self.state == CONNECTED:
            for mid in list(self._sent):
                t = self._sent[mid]
                if t is None:
                    self._sent[mid] = now
                elif now - t >= self.timeout:
                    self._lose(now, "no PUBACK for packet %d within %ss" % (mid, self.timeout))
                    break
        out = self._events
        self._events = []
        return out

    # -- paho callbacks (run inside Client.loop, i.e. inside poll) -------------------------
    def _on_connect(self, client, userdata, flags, reason, properties):
        if reason.is_failure:
            self._lose(self._now, "broker refused the connection: %s" % reason)
            return
        self.state = CONNECTED
        self._deadline = None
        self.backoff.succeeded()
        for mid in self._sent:
            self._sent[mid] = self._now  # paho resends them now, flagged DUP
        self._events.append(("connected", bool(flags.session_present)))
        if self.status_topic:
            client.publish(self.status_topic, b"online", 0, True)

    def _on_publish(self, client, userdata, mid, reason, properties):
        if mid in self._sent:
            del self._sent[mid]
            self._events.append(("acked", mid))

    def _on_message(self, client, userdata, msg):
        self._events.append(("message", msg.topic, msg.payload))

    def _on_disconnect(self, client, userdata, flags, reason, properties):
        if self.state != IDLE:
            self._lose(self._now, "disconnected: %s" % reason)

    def _lose(self, now, reason):
        was = self.state
        self.state = IDLE
        self._deadline = None
        self.last_error = reason
        if was != IDLE or self._started:
            self._c._sock_close()  # abrupt, like a power cut: no DISCONNECT (paho has no public call)
        delay = self.backoff.failed(now)
        self._events.append(("lost", "%s; retrying in %.1fs" % (reason, delay)))

    def close(self):
        if self.state == CONNECTED:
            self._c.disconnect()
            self._c.loop_write()
        self._c._sock_close()
        self.state = IDLE
