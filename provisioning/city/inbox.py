"""What the collector's network thread hands to its store's thread, and back (CPython only).

The MQTT session (city/subscription.py) and the AMQP consumer (city/amqp_subscription.py) each
run their network in a thread of their own, so keepalive, heartbeats and reconnects never wait
for the store. Both are an Inbox: the network thread appends a Delivery per message, the store's
side takes them in batches and hands back the ones whose batch committed with ack(); the network
thread writes those acknowledgements (a client library is called from one thread only).

    batch = sub.take(500, linger=0.05, wait=0.1)   # [Delivery] in arrival order, maybe []
    ... store the batch in one transaction ...
    sub.ack(batch)
    for ev in sub.events(): ...                     # ("connected", resumed), ("lost", reason)
"""
import collections
import threading
import time


class Delivery:
    """One message as it arrived: topic, payload (bytes), received_at (Unix s); tag (MQTT packet
    id or AMQP delivery tag), qos and the connection it came on, for its acknowledgement."""

    __slots__ = ("topic", "payload", "received_at", "tag", "qos", "conn")

    def __init__(self, topic, payload, received_at, tag, qos, conn):
        self.topic, self.payload, self.received_at = topic, payload, received_at
        self.tag, self.qos, self.conn = tag, qos, conn


class Inbox:
    """The queue between the threads; subclasses provide _run (the network thread's loop)."""

    def __init__(self, on_message=None):
        self.on_message = on_message
        self.connects = 0
        self.last_error = None
        self._inbox = collections.deque()  # Delivery, appended by the network thread
        self._ready = threading.Condition()
        self._acks = collections.deque()  # Delivery to acknowledge, appended by ack()
        self._outbox = collections.deque()  # (topic, payload, qos, retain) from publish()
        self._events = collections.deque()
        self._conn = 0  # connection number: which connection a delivery came on
        self._want = 1  # the batch size the store's side is waiting for
        self._stop = False
        self._thread = None

    def start(self):
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="civicmote-intake", daemon=True)
            self._thread.start()
        return self

    def _deliver(self, topic, payload, tag, qos):
        """In the network thread: one message arrived."""
        d = Delivery(topic, payload, time.time(), tag, qos, self._conn)
        with self._ready:
            self._inbox.append(d)
            # wake the store's side for the first message and for a full batch, not for each one
            # (every wake-up hands the interpreter lock over and back)
            if len(self._inbox) == 1 or len(self._inbox) >= self._want:
                self._ready.notify()

    def take(self, max_n, linger=0.0, wait=0.1):
        """Up to max_n deliveries: waits up to `wait` s for the first, then up to `linger` s more
        for the batch to fill (what has arrived already is taken at once); -> [Delivery]."""
        self.start()
        out = []
        with self._ready:
            self._want = max_n
            if not self._inbox:
                self._ready.wait(wait)
            if self._inbox and linger > 0:
                end = time.monotonic() + linger
                while len(self._inbox) < max_n:  # woken when the batch is full, or at the end
                    left = end - time.monotonic()
                    if left <= 0:
                        break
                    self._ready.wait(left)
            while self._inbox and len(out) < max_n:
                out.append(self._inbox.popleft())
        return out

    def ack(self, deliveries):
        """Acknowledge deliveries (their batch is committed); the network thread sends the acks.
        One that came on an earlier connection is not acknowledged (its tag belonged to that
        connection): the broker delivers it again and the store counts it as a duplicate."""
        self._acks.extend(d for d in deliveries if d.qos)

    def _acks_due(self):
        """In the network thread: the acknowledgements to write on the current connection."""
        while self._acks:
            d = self._acks.popleft()
            if d.conn == self._conn:
                yield d

    def publish(self, topic, payload, qos=1, retain=False):
        """Queue a message to publish on this session (e.g. a receipt); sent while connected.
        -> True (queued: the network thread sends it, after a reconnect if need be)."""
        self._outbox.append((topic, bytes(payload), qos, retain))
        return True

    def events(self):
        out = []
        while self._events:
            out.append(self._events.popleft())
        return out

    def poll(self, now=None, wait=0.1):
        """One at a time: on_message(topic, payload) for what arrived, each acknowledged after it
        returns (not if it raised); -> connection events."""
        got = self.take(1000, 0.0, wait)
        for i, d in enumerate(got):
            try:
                self.on_message(d.topic, d.payload)
            except BaseException:
                with self._ready:  # the ones after it wait for the next poll
                    self._inbox.extendleft(reversed(got[i + 1:]))
                raise
            self.ack([d])
        return self.events()
