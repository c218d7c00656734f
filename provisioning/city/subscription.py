"""A QoS 1 subscriber on paho-mqtt 2.x that acknowledges a message only once it is handled (CPython only).

    sub = Subscription(host, port, "civicmote-collector", ["civicmote/v1/+/+/summary"], on_message)
    while running:
        for ev in sub.poll(time.monotonic(), wait=0.1): ...   # ("connected", session_present), ("lost", reason)

The session is persistent (clean_session=False) under a stable client id, so a collector that
was away gets, when it returns, what the broker queued for it meanwhile. `on_message(topic,
payload)` runs inside poll(); its PUBACK is sent only after it returns, so a message whose
handling raised (or a collector killed mid-way) is delivered again. The session itself
(agent/net/paho_session.py) is the agent's: paho never reconnects on its own; poll() does, with
exponential backoff and jitter. Every wait is bounded: TCP/TLS connect and CONNACK by
`timeout`, each poll by `wait`.
"""
import time

from agent.net.paho_session import CONNECTED, CONNECTING, IDLE, PahoSession  # noqa: F401 (re-exported)
from agent.net.transport import Backoff


class Subscription(PahoSession):
    """Subscription(host, port, client_id, topics, on_message, tls=None, keepalive=30, timeout=10.0).

    tls: None, or {cafile, certfile, keyfile} (PEM files; certfile/keyfile may be None when
    the broker does not ask for a client certificate). `connects`: CONNACKs received.
    `close(linger=1.0)` leaves cleanly; the broker keeps the session for the next run.
    persistent=False asks for a clean session (a collector whose store is in memory has nothing
    to resume, and must not leave a session queueing on the broker forever).
    """

    def __init__(self, host, port, client_id, topics, on_message, tls=None, keepalive=30, timeout=10.0,
                 backoff=None, persistent=True):
        PahoSession.__init__(self, host, port, client_id, tls, keepalive, timeout, not persistent,
                             backoff or Backoff(base=0.5, cap=15.0), manual_ack=True)
        self.topics = list(topics)
        self.on_message = on_message

    def poll(self, now, wait=0.1):
        """Connect when due, read for at most `wait` seconds, hand messages over; -> events."""
        if self.state == IDLE:
            if self.backoff.ready(now):
                self.connect(now)
            else:
                time.sleep(min(wait, max(0.0, self.backoff.next_at - now)))
        return PahoSession.poll(self, now, wait)

    def publish(self, topic, payload):
        """Publish one retained QoS 1 message (a receipt to a device); False when not connected."""
        if self.state != CONNECTED:
            return False
        return self._c.publish(topic, payload, 1, True).rc == 0

    # -- PahoSession hooks (inside poll) ---------------------------------------------------------
    def _session_up(self, client):
        # Subscribe on every connect: a broker restarted without persistence forgot the session.
        client.subscribe([(t, 1) for t in self.topics])

    def _on_message(self, client, userdata, msg):
        self.on_message(msg.topic, msg.payload)
        if msg.qos:
            client.ack(msg.mid, msg.qos)
