"""The collector's session with the clustered broker: a competing consumer of its quorum queue (CPython only).

    sub = AmqpSubscription([("city1", 5671), ("city2", 5671)], tls, on_message)
    while running:
        for ev in sub.poll(time.monotonic(), wait=0.1): ...   # ("connected", False), ("lost", reason)

The same contract as the MQTT Subscription (provisioning/city/subscription.py): `on_message(topic,
payload)` runs inside poll() and the message is acknowledged only after it returns, so one whose
handling raised, or a collector killed mid-way, is delivered again (to this collector or another).
On connect it declares the quorum queue (cluster_config.QUEUE) and binds it to the device topics,
both idempotent, then consumes with a bounded prefetch; N collectors on one queue share its
messages. It logs in with its certificate (SASL EXTERNAL: CN = civicmote-collector). When a node
goes, it connects to the next one, with exponential backoff and jitter between rounds. Needs pika.
"""
import ssl
import time

from agent.net.transport import Backoff
from provisioning.city.cluster_config import KINDS, QUEUE, routing_key
from provisioning.errors import EnvironmentProblem


class AmqpSubscription:
    def __init__(self, nodes, tls, on_message, prefix="civicmote/v1", prefetch=50, timeout=10.0, backoff=None):
        try:
            import pika
        except ImportError:
            raise EnvironmentProblem("an amqps:// broker needs pika: pip install pika")
        self.pika = pika
        self.nodes = list(nodes)
        self.tls = tls
        self.on_message = on_message
        self.prefix = prefix
        self.prefetch = prefetch
        self.timeout = timeout
        self.backoff = backoff or Backoff(base=0.5, cap=15.0)
        self.conn = self.channel = None
        self.connects = 0
        self.last_error = None
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
        ch.basic_consume(QUEUE, self._deliver, auto_ack=False)
        self.conn, self.channel = conn, ch
        self.connects += 1

    def _deliver(self, ch, method, properties, body):
        self.on_message(routing_key(method.routing_key), body)
        ch.basic_ack(method.delivery_tag)

    def publish(self, topic, payload):
        """Publish one message to the device topics' exchange (a receipt; the MQTT plugin hands it
        to the device's subscription); False when not connected."""
        if self.channel is None:
            return False
        try:
            self.channel.basic_publish("amq.topic", routing_key(topic), payload)
        except (self.pika.exceptions.AMQPError, OSError):
            return False
        return True

    def poll(self, now, wait=0.1):
        errors = (self.pika.exceptions.AMQPError, OSError, ssl.SSLError)
        if self.conn is None:
            if not self.backoff.ready(now):
                time.sleep(min(wait, max(0.0, self.backoff.next_at - now)))
                return []
            try:
                self._connect()
            except errors as e:
                self.last_error = "%s: %s" % (type(e).__name__, e) if str(e) else type(e).__name__
                if self._next % len(self.nodes) == 0:  # a whole round of nodes failed: wait, then again
                    self.backoff.failed(now)
                    return [("lost", self.last_error)]
                return []
            self.backoff.succeeded()
            return [("connected", False)]
        try:
            self.conn.process_data_events(time_limit=wait)
        except errors as e:
            self.last_error = "%s: %s" % (type(e).__name__, e) if str(e) else type(e).__name__
            self._drop()
            return [("lost", self.last_error)]
        return []

    def _drop(self):
        try:
            if self.conn is not None and self.conn.is_open:
                self.conn.close()
        except Exception:
            pass
        self.conn = self.channel = None

    def close(self, linger=1.0):
        self._drop()
