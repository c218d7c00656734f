# CPython only: the transport on paho-mqtt 2.x (never imported on MicroPython).
"""PahoTransport: the interface of agent/net/__init__.py on paho-mqtt 2.x, without its thread.

The session (connect with backoff, CONNACK deadline, abrupt loss, clean close) is
agent/net/paho_session.py; this adds publishing: a bounded in-flight window, a PUBACK
deadline per publish (`timeout`, checked in poll against `now`), birth and will. With
clean_session=False paho keeps unacknowledged QoS 1 messages and resends them with DUP
after the next CONNACK; their handles (paho mids) stay valid.
"""
import paho.mqtt.client as paho

from agent.net.paho_session import CONNECTED, CONNECTING, IDLE, PahoSession  # noqa: F401 (re-exported)
from agent.net.transport import Backoff, TransportError


class PahoTransport(PahoSession):
    """PahoTransport(host, port, client_id, tls=None, ...): same arguments as MQTTClient,
    with tls = None or {cafile, certfile, keyfile} (PEM files)."""

    def __init__(self, host, port, client_id, tls=None, keepalive=60, timeout=10.0, clean_session=False,
                 max_inflight=1, status_topic=None, username=None, password=None, backoff=None):
        PahoSession.__init__(self, host, port, client_id, tls, keepalive, timeout, clean_session,
                             backoff or Backoff())
        self.max_inflight = max_inflight
        self.status_topic = status_topic
        self._sent = {}  # mid -> time sent (None: stamped at the next poll)
        c = self._c
        c.max_inflight_messages_set(max_inflight)
        c.max_queued_messages_set(max_inflight)  # the outbox is the queue, not paho's memory
        if username is not None:
            c.username_pw_set(username, password)
        if status_topic:
            c.will_set(status_topic, b"offline", 1, True)
        c.on_publish = self._on_publish

    @property
    def can_publish(self):
        return self.state == CONNECTED and len(self._sent) < self.max_inflight

    def pending(self):
        return list(self._sent)

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

    # -- PahoSession hooks and paho's on_publish (inside poll) ------------------------------
    def _session_up(self, client):
        for mid in self._sent:
            self._sent[mid] = self._now  # paho resends them now, flagged DUP
        if self.status_topic:
            client.publish(self.status_topic, b"online", 0, True)

    def _check(self, now):
        for mid in list(self._sent):
            t = self._sent[mid]
            if t is None:
                self._sent[mid] = now
            elif now - t >= self.timeout:
                self._lose(now, "no PUBACK for packet %d within %ss" % (mid, self.timeout))
                break

    def _on_publish(self, client, userdata, mid, reason, properties):
        if mid in self._sent:
            del self._sent[mid]
            self._events.append(("acked", mid))
