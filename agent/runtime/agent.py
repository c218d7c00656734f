"""The agent: read sensors, close windows on wall-clock boundaries, anonymise, sign, enqueue, flush.

One cooperative step at a time, the same on CPython and MicroPython. The caller owns the
clocks: `step(now_s, now_ms)` takes wall-clock Unix seconds (for windows and the privacy day)
and a monotonic millisecond tick (for sensor periods and network deadlines), so a simulated
clock drives it exactly like a real one. Nothing here sleeps; every network wait is bounded
by the transport's timeout, so a broker that never answers cannot stop sensor reading.
"""
from agent.core import cose, summary

DEFAULT_PREFIX = "civicmote/v1"
# A device whose clock reads earlier than this has not synced (NTP) yet: no window is closed,
# because a summary with a wrong time is worse than none. 2024-01-01T00:00:00Z.
MIN_VALID_TIME = 1704067200


def topics(prefix, district, dev):
    base = "%s/%s/%s/" % (prefix, district, dev)
    return base + "summary", base + "manifest", base + "status"


class Agent:
    """Wires the stages for one device. Collaborators are injected:

    key        signing key (sign(msg) -> 64 bytes); dev its device_id
    metrics    a MetricSet (agent.runtime.metrics): per-window state of every metric
    sensors    a SensorSet (poll(now_ms), metric_values(readings), health()) whose identifier
               sink is metrics.identifier
    ledger     the PrivacyLedger; outbox an Outbox; seqs a SeqAllocator
    transport  an MQTT transport (agent.net) or None (offline: the outbox keeps everything)
    manifest   the signed manifest message (bytes) and its payload hash (mh)
    sink       optional callable(name, message) given every signed message (e.g. --out)
    """

    def __init__(self, board, key, dev, district, metrics, sensors, ledger, outbox, seqs, manifest, mh,
                 transport=None, prefix=DEFAULT_PREFIX, sink=None, boot_s=None):
        self.board = board
        self.key = key
        self.dev = dev
        self.kid = dev.encode()
        self.sensors = sensors
        self.ledger = ledger
        self.outbox = outbox
        self.seqs = seqs
        self.manifest = manifest
        self.mh = mh
        self.transport = transport
        self.sink = sink
        self.window_s = board.window_s
        self.metrics = metrics
        self.summary_topic, self.manifest_topic, self.status_topic = topics(prefix, district, dev)
        self.t0 = None
        self.boot_s = boot_s
        self.closed = 0  # windows closed since boot
        self.delivered = 0  # summaries acknowledged by the broker since boot
        self.invalid_clock = 0  # steps skipped because the wall clock was not set
        self.net_errors = 0  # transport calls that raised (the transport backs off and retries)
        self.last = None  # (seq, t0, t1, bytes) of the last summary closed
        self._inflight = {}  # transport handle -> seq (None for the manifest)
        self._manifest_sent = False
        if sink is not None:
            sink("manifest", manifest)

    def step(self, now_s, now_ms, net_s=None):
        """Do what is due at this instant; returns the seq of a summary closed now, or None.

        net_s: monotonic seconds for network deadlines (default now_ms / 1000). A simulated
        clock that runs faster than real time passes the real one here.
        """
        readings = self.sensors.poll(now_ms)
        for metric, value in self.sensors.metric_values(readings):
            self.metrics.feed(metric, value)
        closed = None
        if now_s < MIN_VALID_TIME:
            self.invalid_clock += 1
        else:
            if self.boot_s is None:
                self.boot_s = now_s
            if self.t0 is None:
                self.t0 = now_s - now_s % self.window_s
            elif now_s >= self.t0 + self.window_s:
                closed = self.close_window(self.t0, self.t0 + self.window_s, now_s)
                self.t0 = now_s - now_s % self.window_s
        self.flush(now_ms / 1000 if net_s is None else net_s)
        return closed

    # -- anonymise, sign, enqueue ----------------------------------------------------------

    def close_window(self, t0, t1, now_s):
        stats = self.metrics.close(self.ledger, now_s, t1)
        seq = self.seqs.next()
        report = self.outbox.drop_report()
        s = summary.build(self.dev, seq, t0, t1, stats, self.mh, gap=report, health=self.health(now_s))
        msg = cose.sign1(summary.encode(s), self.key, self.kid)
        self.outbox.put(seq, msg, announced=report)
        self.closed += 1
        self.last = (seq, t0, t1, len(msg))
        if self.sink is not None:
            self.sink(seq, msg)
        return seq

    def health(self, now_s):
        """Health counters carried in every summary (all unsigned integers)."""
        faults = 0
        degraded = 0
        for st in self.sensors.health().values():
            for n in st["faults"].values():
                faults += n
            if st["state"] != "ok":
                degraded += 1
        return {"up": now_s - self.boot_s, "err": faults, "deg": degraded, "q": self.outbox.depth,
                "boot": self.seqs.first, "net": self.net_errors}

    # -- delivery --------------------------------------------------------------------------

    def flush(self, now):
        """Connect if due, publish the manifest once per connection, publish the oldest
        unsent summaries while the in-flight window allows, and retire what was acknowledged.
        now: monotonic seconds."""
        t = self.transport
        if t is None:
            return
        if not t.connected:
            try:
                t.connect(now)
            except Exception:  # noqa: BLE001 - a transport error must never stop sensing
                self.net_errors += 1
                return
        for ev in t.poll(now):
            self._event(ev)
        if not t.connected:
            return
        try:
            if not self._manifest_sent and t.can_publish:
                h = t.publish(self.manifest_topic, self.manifest, qos=1, retain=True, now=now)
                self._inflight[h] = None
                self._manifest_sent = True
            # Oldest first; a record is read from flash only when it is about to be sent.
            sending = set(self._inflight.values())
            while t.can_publish:
                rec = self.outbox.peek(1, skip=sending)
                if not rec:
                    break
                seq, data = rec[0]
                h = t.publish(self.summary_topic, data, qos=1, retain=False, now=now)
                self._inflight[h] = seq
                sending.add(seq)
        except Exception:  # noqa: BLE001 - a transport error must never stop sensing; retried next step
            self.net_errors += 1

    def _event(self, ev):
        kind = ev[0]
        if kind == "connected":
            # Unacknowledged publishes keep their handles: the transport resends them with DUP.
            self._manifest_sent = False
        elif kind == "acked":
            seq = self._inflight.pop(ev[1], None)
            if seq is not None and self.outbox.ack(seq):
                self.delivered += 1
