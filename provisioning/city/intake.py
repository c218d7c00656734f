"""Group commit: take what the network delivered in batches, store each batch in one transaction,
acknowledge it only then (CPython only).

    intake = Intake(sub, collector, batch=500, linger_s=0.05)
    while running:
        connection_events, message_events = intake.step(wait=0.1)

`sub` is an Inbox (city/inbox.py: the MQTT Subscription or the AMQP consumer, each with its
network in a thread of its own), `collector` a Collector. A batch is up to `batch` messages:
whatever has arrived is taken at once, and the batch waits at most `linger_s` for more, so a
lone message waits that long at most and a burst is stored in as few transactions (fsyncs,
round trips) as it fills. The broker's flow control (`inflight`, at least two batches) keeps
the next batch arriving while one commits.

A message that fails a check is rejected with its reason inside the batch (Collector.handle_batch);
if the store fails, the messages before the failing one are committed and acknowledged, and
the error propagates: nothing else is acknowledged, so the broker delivers it again.
"""
from provisioning.city.collector import store_errors

DEFAULT_BATCH = 500  # messages per transaction, at most
DEFAULT_LINGER_MS = 50  # how long a batch waits to fill, at most


def inflight_for(batch):
    """Unacknowledged messages the broker may send: two batches, so one arrives while one commits
    (within MQTT 5's Receive Maximum and AMQP's prefetch count: at most 65535)."""
    return min(65535, max(20, 2 * batch))


class Intake:
    def __init__(self, sub, collector, batch=DEFAULT_BATCH, linger_s=DEFAULT_LINGER_MS / 1000.0):
        self.sub = sub
        self.collector = collector
        self.batch = batch
        self.linger_s = linger_s
        self.batches = 0  # transactions committed
        self.messages = 0  # messages in them

    def step(self, wait=0.1):
        """Take one batch (waiting up to `wait` s for its first message), store it, acknowledge it;
        -> (connection events, [event dicts of the messages, in order])."""
        got = self.sub.take(self.batch, self.linger_s, wait)
        events = []
        if got:
            # received_at = when judged (None: the collector's clock), so publish -> stored
            # latencies taken from the store include the time spent queued here
            try:
                results = self.collector.handle_batch([(d.topic, d.payload, None) for d in got])
            except store_errors() as e:
                self.sub.ack(got[:len(getattr(e, "committed", ()))])
                raise
            self.sub.ack(got)
            self.batches += 1
            self.messages += len(got)
            events = [ev for r in results for ev in r]
        return self.sub.events(), events
