"""The collector's session with the clustered broker: a competing consumer of its quorum queue (CPython only).

    sub = AmqpSubscription([("city1", 5671), ("city2", 5671)], tls)
    batch = sub.take(500, linger=0.05); ...; sub.ack(batch)      # see city/inbox.py

The same contract as the MQTT Subscription (provisioning/city/subscription.py): the connection
lives in a network thread of its own (heartbeats never wait for the store), a message is
acknowledged only once ack() is called after its batch committed, so one whose batch failed,
or a collector killed mid-way, is delivered again (to this collector or another).
On connect it declares the quorum queue (cluster_config.QUEUE) and binds it to the device topics,
both idempotent, then consumes with a bounded prefetch (`inflight` unacknowledged messages);
N collectors on one queue share its messages. It logs in with its certificate (SASL EXTERNAL: CN = civicmote-collector). When a node
goes, it connects to the next one, with exponential backoff and jitter between rounds. Needs pika.
"""
import ssl
import time

from agent.net.transport import Backoff
from provisioning.city.cluster_config import KINDS, QUEUE, routing_key
from provisioning.city.inbox import Inbox
from provisioning.errors import EnvironmentProblem

TICK = 0.02  # seconds the network thread waits for the connection before writing acks asked for


class AmqpSubscription(Inbox):
    def __init__(self, nodes, tls, on_message=None, prefix="civicmote/v1", prefetch=1000, timeout=10.0,
                 backoff=None):
        try:
            import pika
        except ImportError:
            raise EnvironmentProblem("an amqps:// broker needs pika: pip install pika")
        Inbox.__init__(self, on_message)
        self.pika = pika
        self.nodes = list(nodes)
        self.tls = tls
        self.prefix = prefix
        self.prefetch = prefetch
        self.timeout = timeout
        self.backoff = backoff or Backoff(base=0.5, cap=15.0)
        self.conn = self.channel = None
        self._next = 0

    @property
    def connected(self):
        return self.conn is not None and self.conn.is_open

    def _params(self, host, port):
        ctx = ssl.create_default_context(cafile=self.tls["cafile"])
        ctx.load_cert_chain(self.tls["certfile"], self.tls["keyfile"])
        return self.pika.ConnectionParameters(
            host=host, port=port, ssl_options=self.pika.SSLOptions(ctx, host),
            credentials=self.pika.credentials.ExternalCredentials(), connection_attempts=1,
            socket_timeout=self.timeout, blocked_connection_timeout=self.timeout * 3, heartbeat=15)

    def _connect(self):
        host, port = self.nodes[self._next % len(self.nodes)]
        self._next += 1
        conn = self.pika.BlockingConnection(self._params(host, port))
        ch = conn.channel()
        ch.queue_declare(QUEUE, durable=True, arguments={"x-queue-type": "quorum"})
        for kind in KINDS:
            ch.queue_bind(QUEUE, "amq.topic", routing_key("%s/*/*/%s" % (self.prefix, kind)))
        ch.basic_qos(prefetch_count=self.prefetch)
        ch.basic_consume(QUEUE, self._on_delivery, auto_ack=False)
        self.conn, self.channel = conn, ch
        self._conn += 1
        self.connects += 1

    def _on_delivery(self, ch, method, properties, body):
        self._deliver(routing_key(method.routing_key), body, method.delivery_tag, 1)

    # -- the network thread ----------------------------------------------------------------------
    def _run(self):
        errors = (self.pika.exceptions.AMQPError, OSError, ssl.SSLError)
        while not self._stop:
            now = time.monotonic()
            if self.conn is None:
                if not self.backoff.ready(now):
                    time.sleep(min(TICK * 5, max(0.0, self.backoff.next_at - now)))
                    continue
                try:
                    self._connect()
                except errors as e:
                    self.last_error = "%s: %s" % (type(e).__name__, e) if str(e) else type(e).__name__
                    if self._next % len(self.nodes) == 0:  # a whole round of nodes failed: wait, then again
                        self.backoff.failed(now)
                        self._events.append(("lost", self.last_error))
                    continue
                self.backoff.succeeded()
                self._events.append(("connected", False))
                continue
            try:
                self.conn.process_data_events(time_limit=TICK)
                self._write_queued()
            except errors as e:
                self.last_error = "%s: %s" % (type(e).__name__, e) if str(e) else type(e).__name__
                self._drop()
                self._events.append(("lost", self.last_error))
        try:
            if self.conn is not None:
                self._write_queued()
        except errors:
            pass
        self._drop()

    def _write_queued(self):
        for d in self._acks_due():
            self.channel.basic_ack(d.tag)
        while self._outbox:
            topic, payload, _, _ = self._outbox.popleft()
            self.channel.basic_publish("amq.topic", routing_key(topic), payload)

    def _drop(self):
        try:
            if self.conn is not None and self.conn.is_open:
                self.conn.close()
        except Exception:
            pass
        self.conn = self.channel = None

    def close(self, linger=1.0):
        """Stop the network thread: acknowledgements asked for are written, then the connection
        closes (what was delivered and not acknowledged goes back to the queue)."""
        self._stop = True
        if self._thread is not None:
            self._thread.join(self.timeout + 5)
        else:
            self._drop()
