"""The agent: read sensors, close windows on wall-clock boundaries, anonymise, sign, enqueue, flush.

One cooperative step at a time, the same on CPython and MicroPython. The caller owns the
clocks: `step(now_s, now_ms)` takes wall-clock Unix seconds (for windows and the privacy day)
and a monotonic millisecond tick (for sensor periods and network deadlines), so a simulated
clock drives it exactly like a real one. Nothing here sleeps; every network wait is bounded
by the transport's timeout, so a broker that never answers cannot stop sensor reading.
"""
from agent.core import cose, summary
from agent.runtime.timebase import TOLERANCE_S, Timebase

DEFAULT_PREFIX = "civicmote/v1"
# A device whose clock reads earlier than this has not synced (NTP) yet: no window is closed,
# because a summary with a wrong time is worse than none. 2024-01-01T00:00:00Z.
MIN_VALID_TIME = 1704067200


def topics(prefix, district, dev):
    base = "%s/%s/%s/" % (prefix, district, dev)
    return base + "summary", base + "manifest", base + "status"


PROOF_STATUS_S = 60  # the status topic repeats "stored up to seq N" at most this often
STEP_S = TOLERANCE_S  # wall and extrapolated time disagreeing by more than this: a (suspect) clock step


class Agent:
    """Wires the stages for one device. Collaborators are injected:

    key        signing key (sign(msg) -> 64 bytes); dev its device_id
    metrics    a MetricSet (agent.runtime.metrics): per-window state of every metric
    sensors    a SensorSet (poll(now_ms), metric_values(readings), health()) whose identifier
               sink is metrics.identifier
    ledger     the PrivacyLedger, or a callable(now_s, mono_s) that opens it: it is opened only
               once the wall clock is valid
    outbox     an Outbox; seqs a SeqAllocator; progress a Progress (agent.store.progress) or None
    transport  an MQTT transport (agent.net) or None (offline: the outbox keeps everything)
    manifest   the signed manifest message (bytes) and its payload hash (mh)
    sink       optional callable(name, message) given every signed message (e.g. --out)
    receipts   optional Receipts (agent.runtime.receipts): the city's signed "stored up to seq N";
               once one was accepted, a summary leaves the outbox only when a receipt covers it
    log        optional callable(text): one line for the device's log (stderr, serial console)
    ota        optional agent.ota.fetch.Fetcher: signed updates over this MQTT session; its health
               gate is stored_this_boot()

    Time: a window's t0/t1 cover exactly the readings in it, labelled on the time the Timebase
    (agent.runtime.timebase) gives: the wall clock while monotonic time confirms it, else the
    last trusted time extrapolated on the monotonic clock, flagged in h.clk. A window opens when
    the clock is valid and not behind the last summary's end (persisted across restarts),
    closes on a boundary of that time, and is cut short when a wall-clock step is believed
    (h.clkf / h.clkb: seconds the label time stepped forward / back).
    """

    def __init__(self, board, key, dev, district, metrics, sensors, ledger, outbox, seqs, manifest, mh,
                 transport=None, prefix=DEFAULT_PREFIX, sink=None, boot_s=None, progress=None, log=None,
                 receipts=None, ota=None):
        self.board = board
        self.key = key
        self.dev = dev
        self.kid = dev.encode()
        self.sensors = sensors
        self.ledger = None if callable(ledger) else ledger
        self._open_ledger = ledger if callable(ledger) else None
        self.outbox = outbox
        self.seqs = seqs
        self.progress = progress
        self.manifest = manifest
        self.mh = mh
        self.transport = transport
        self.sink = sink
        self.log = log or (lambda text: None)
        self.window_s = board.window_s
        self.metrics = metrics
        self.summary_topic, self.manifest_topic, self.status_topic = topics(prefix, district, dev)
        self.t0 = None  # start of the open window (None: no window open, readings are discarded)
        self.t_end = None  # the wall-clock boundary that closes it
        self.last_t1 = progress.last_t1 if progress is not None and progress.found else None
        # Labels of a timebase later found wrong (the wall clock came back): skipped, not waited for.
        self.avoid = progress.avoid if progress is not None and progress.found else None
        self.timebase = Timebase()
        self._left = None  # (last t1 on the old timebase, first label on the new) at the last believed step
        self.boot_s = boot_s
        self.closed = 0  # windows closed since boot
        self.delivered = 0  # summaries acknowledged by the broker since boot
        self.invalid_clock = 0  # steps skipped because the wall clock was not set
        self.clock_steps = 0  # wall-clock steps detected since boot
        self.net_errors = 0  # transport calls that raised (the transport backs off and retries)
        self.last = None  # (seq, t0, t1, bytes) of the last summary closed
        self.waiting = None  # why no window is open (status topic and log), or None
        self._status_due = False
        self._mono0 = None
        self._mono = 0
        self._progress_mono = None  # monotonic s of the last window opened or closed, or wait declared
        self._inflight = {}  # transport handle -> seq (None for the manifest and status)
        self._unqueued_at = outbox.saves  # outbox index writes when the seq file last noted an unqueued seq
        self._manifest_sent = False
        self.receipts = receipts  # receipts: see the section at the end
        self.receipt_topic = self.status_topic[:-len("status")] + "receipt"
        self.ota = ota
        self._wall = 0  # wall-clock s while it is valid and not suspect, else 0 (updates judge orders by it)
        self._acked_hi = 0  # the highest summary seq the broker acknowledged
        if ota is not None:
            ota.gate = self.stored_this_boot
        self._subscribe_due = receipts is not None or ota is not None
        self._cursor = -1  # in receipt mode: the highest seq published since the last resend round
        self._resend_at = None
        self._proof_at = None
        self._net = 0
        if seqs.lost:
            self.log("sequence state was lost (%s): summaries carry h.sr=%d" % (
                "continued from the progress file" if seqs.lost == 1 else "a new era starts from the clock", seqs.lost))
        if sink is not None:
            sink("manifest", manifest)

    def step(self, now_s, now_ms, net_s=None):
        """Do what is due at this instant; returns the seq of a summary closed now, or None.

        now_s: wall-clock Unix seconds; now_ms: monotonic milliseconds (never goes back).
        net_s: monotonic seconds for network deadlines (default now_ms / 1000). A simulated
        clock that runs faster than real time passes the real one here.
        """
        mono = now_ms // 1000
        if self._mono0 is None:
            self._mono0 = self._progress_mono = mono
        self._mono = mono
        readings = self.sensors.poll(now_ms)
        values = self.sensors.metric_values(readings)
        closed = None
        self._wall = now_s if now_s >= MIN_VALID_TIME and self.timebase.suspect is None else 0
        if now_s < MIN_VALID_TIME:
            self.invalid_clock += 1
            wall = self.timebase.label(mono)
            self.timebase.reset()
            self._wait("clock-invalid", "the wall clock reads %d, before 2024: no window opens and no "
                       "personal metric is released until it is set" % now_s)
            if self.t0 is not None:  # the clock became invalid: keep what was measured, honestly labelled
                closed = self._close(self.t0, max(self.t0 + 1, wall), wall, cut=0)
        else:
            closed = self._clock(now_s, mono)
        if self.t0 is not None:
            for metric, value in values:
                self.metrics.feed(metric, value)
        self.flush(now_ms / 1000 if net_s is None else net_s)
        return closed

    def healthy(self):
        """True while windows make progress, or the agent has said why not (status, log): the
        runtime feeds its watchdog only then."""
        if self.waiting is not None or self._progress_mono is None:
            return True
        return self._mono - self._progress_mono <= 2 * self.window_s + 60

    # -- time ------------------------------------------------------------------------------

    def _clock(self, now_s, mono):
        tb = self.timebase
        suspect = tb.suspect
        now_s, jump = tb.judge(now_s, mono)
        if tb.steps != self.clock_steps:
            self.clock_steps = tb.steps
            self.log("wall clock stepped %+d s against monotonic time: held as suspect, windows stay on %d" % (
                tb.suspect[0], now_s))
        if jump:
            return self._believe(now_s, mono, jump, suspect)
        closed = None
        if self.t0 is None:
            self._open(now_s, mono)
        elif now_s >= self.t_end:
            closed = self._close(self.t0, self.t_end, now_s)
            self._open(now_s, mono, self.t_end)
        tb.commit()
        return closed

    def _believe(self, now_s, mono, jump, suspect):
        """A wall-clock step is believed now: cut the open window at the old label time."""
        tb = self.timebase
        self.log("wall clock believed after a step of %+d s (%s)" % (
            jump, "it came back to the time it left" if tb.returned else "stable for %d s" % (
                mono - suspect[1] if suspect else 0)))
        closed = None
        old = now_s - jump
        if self.t0 is not None:
            # The readings so far were labelled on the old time: keep that label, and say it stepped.
            t1 = max(old, self.t0 + 1)
            closed = self._close(self.t0, t1, t1, cut=jump)
        if tb.returned and jump < 0 and self._left is not None and self.last_t1 is not None:
            # Back to the time it left: what was labelled on the wrong clock is skipped when reached.
            if self.last_t1 > self._left[1]:
                self.avoid = (self._left[1], self.last_t1)
            self.last_t1 = self._left[0]
        self._left = (self.last_t1 if self.last_t1 is not None else old, now_s)
        return closed

    def _open(self, now_s, mono, start=None):
        if self.ledger is None and self._open_ledger is not None:
            self.ledger = self._open_ledger(now_s, mono)
            if self.ledger.closed:
                self.log("privacy ledger %s: personal metrics withheld until the next UTC day" % (
                    self.ledger.reason or "closed"))
        av = self.avoid
        if av is not None and now_s >= av[1]:
            self.avoid = av = None
        if av is not None and now_s >= av[0]:
            self._wait("clock-behind", "the time %d..%d was labelled on a wall clock later found wrong: waiting %d s "
                       "for it to pass" % (av[0], av[1], av[1] - now_s))
            return
        if self.last_t1 is not None and now_s < self.last_t1:
            self._wait("clock-behind", "the wall clock is %d s behind the end of the last summary (%d): waiting "
                       "for it, so no two summaries cover the same time" % (self.last_t1 - now_s, self.last_t1))
            return
        t0 = now_s if start is None else start
        if start is not None and now_s - now_s % self.window_s > start:
            t0 = now_s - now_s % self.window_s  # the loop stalled past a boundary: nothing was read between
        if self.last_t1 is not None and t0 < self.last_t1:
            t0 = self.last_t1
        if start is None:
            self.metrics.discard()  # nothing read before the window opened is in it
        self.t0 = t0
        self.t_end = t0 - t0 % self.window_s + self.window_s
        if av is not None and t0 < av[0] < self.t_end:
            self.t_end = av[0]  # stop short of the time labelled on the wrong clock
        self._progress_mono = mono
        if self.waiting is not None:
            self.log("windows resume at %d" % t0)
            self.waiting = None
            self._status_due = True

    def _wait(self, code, text):
        if self.waiting != code:
            self.log(text)
            self.waiting = code
            self._status_due = True

    # -- anonymise, sign, enqueue ----------------------------------------------------------

    def close_window(self, t0, t1, now_s):
        """Close [t0, t1) now (kept for callers that drive windows themselves)."""
        return self._close(t0, t1, now_s)

    def _close(self, t0, t1, now_s, cut=None):
        """Release, sign and queue the window [t0, t1). cut: not None when a clock step or a lost
        clock cut it short (the seconds stepped; 0 for a lost clock): every metric is released."""
        if self.ledger is not None:
            self.ledger.tick(self._mono)
        stats = self.metrics.close(self.ledger, now_s, t1, every=cut is not None)
        seq = self.seqs.next(now_s)
        report = self.outbox.drop_report()
        h = self.health(now_s)
        h.update(self.timebase.take_flags())
        if cut is not None:
            h["clkf" if cut >= 0 else "clkb"] = cut if cut >= 0 else -cut
        s = summary.build(self.dev, seq, t0, t1, stats, self.mh, gap=report, health=h)
        msg = cose.sign1(summary.encode(s), self.key, self.kid)
        saves = self.outbox.saves
        dropped = self.outbox.put(seq, msg, announced=report)
        if seq in dropped:
            self.log("summary %d could not be written (outbox write failed): counted as dropped" % seq)
            if self.outbox.saves == saves:  # nor could the outbox record the loss: the seq file keeps it
                self._unqueued_at = self.outbox.saves
                self.seqs.note_unqueued(seq)
        elif self.seqs.unqueued is not None and self.outbox.saves > self._unqueued_at:
            self.seqs.clear_unqueued()  # the outbox's index has held it since
        self.closed += 1
        self.last = (seq, t0, t1, len(msg))
        self.last_t1 = t1
        self.t0 = self.t_end = None
        self._progress_mono = self._mono
        if self.progress is not None:
            self.progress.save(seq, t1, self.ledger.gen if self.ledger is not None else 0, self.avoid)
        if self.sink is not None:
            self.sink(seq, msg)
        return seq

    def confirm_time(self, true_s, now_ms):
        """A second source says the time at monotonic now_ms is true_s (the seam for the city's
        signed time in a receipt): trusted at once; an open window is cut if the label moves."""
        mono = now_ms // 1000
        jump = self.timebase.confirm(true_s, mono)
        if (jump > STEP_S or -jump > STEP_S) and self.t0 is not None:
            t1 = max(true_s - jump, self.t0 + 1)
            return self._close(self.t0, t1, t1, cut=jump)
        return None

    def health(self, now_s):
        """Health counters carried in every summary (all unsigned integers)."""
        faults = 0
        degraded = 0
        for st in self.sensors.health().values():
            for n in st["faults"].values():
                faults += n
            if st["state"] != "ok":
                degraded += 1
        h = {"up": self._mono - self._mono0, "err": faults, "deg": degraded, "q": self.outbox.depth,
             "boot": self.seqs.first, "net": self.net_errors, "clamp": self.metrics.clamped}
        if self.clock_steps:
            h["cs"] = self.clock_steps
        if self.seqs.lost:
            h["sr"] = self.seqs.lost
        werr = self.outbox.write_errors + self.seqs.write_errors + (
            self.progress.write_errors if self.progress is not None else 0)
        if werr:
            h["werr"] = werr
        return h

    # -- delivery --------------------------------------------------------------------------

    def flush(self, now):
        """Connect if due, publish the manifest once per connection, publish the oldest
        unsent summaries while the in-flight window allows, and retire what was acknowledged.
        now: monotonic seconds."""
        t = self.transport
        if t is None:
            return
        self._net = now
        if not t.connected:
            try:
                t.connect(now)
            except Exception:  # noqa: BLE001 - a transport error must never stop sensing
                self.net_errors += 1
                return
        for ev in t.poll(now):
            self._event(ev)
        if self.receipts is not None and self.receipts.due(now):
            self._receipt()
        if self.ota is not None:
            self._update(now, t)
        if not t.connected:
            return
        try:
            if not self._manifest_sent and t.can_publish:
                h = t.publish(self.manifest_topic, self.manifest, qos=1, retain=True, now=now)
                self._inflight[h] = None
                self._manifest_sent = True
            if self._status_due and t.can_publish:
                text = "online" if self.waiting is None else "online; waiting: " + self.waiting
                if self.receipts is not None and self.receipts.proof():
                    text += "; " + self.receipts.proof()
                h = t.publish(self.status_topic, text.encode(), qos=1, retain=True, now=now)
                self._inflight[h] = None
                self._status_due = False
            # Oldest first; a record is read from flash only when it is about to be sent.
            if self._subscribe_due:
                t.subscribe(([(self.receipt_topic, 1)] if self.receipts is not None else []) +
                            (self.ota.topics() if self.ota is not None else []), now)
                self._subscribe_due = False
            sending = set(self._inflight.values())
            while t.can_publish:
                rec = self._next_record(sending, now)
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
            self._status_due = self.waiting is not None  # the transport said "online" on connect
            self._subscribe_due = self.receipts is not None or self.ota is not None
            if self.ota is not None:
                self.ota.connected()
            if self.receipts is not None and self.receipts.proof():
                self._status_due = True
        elif kind == "acked":
            seq = self._inflight.pop(ev[1], None)
            if seq is not None and seq > self._acked_hi:
                self._acked_hi = seq
            if seq is not None and self.receipts is not None and self.receipts.active:
                self.delivered += 1  # the broker has it; it stays queued until a receipt covers it
            elif seq is not None and self.outbox.ack(seq):
                self.delivered += 1
        elif kind == "message" and ev[1] == self.receipt_topic and self.receipts is not None:
            self.receipts.offer(ev[2], self._net)
        elif kind == "message" and self.ota is not None:
            self.ota.offer(ev[1], ev[2], self._net)

    # -- updates (agent/ota/fetch.py) -----------------------------------------------------------

    def _update(self, now, t):
        try:
            self.ota.tick(now, self._wall, t if t.connected and not self._subscribe_due else None)
        except Exception as e:  # noqa: BLE001 - an update's trouble must never stop sensing
            self.net_errors += 1
            self.log("update step failed: %s: %s" % (type(e).__name__, e))

    def stored_this_boot(self):
        """The health gate of an update on trial: a summary signed in this boot is stored by the
        city (covered by its receipt; a city without receipts: acknowledged by the broker)."""
        r = self.receipts
        if r is not None and r.active:
            return r.hi is not None and r.hi >= self.seqs.first
        return self._acked_hi >= self.seqs.first

    # -- receipts (agent/runtime/receipts.py) ---------------------------------------------------

    def _next_record(self, sending, now):
        """The next summary to publish: the oldest not in flight; in receipt mode the oldest not
        published yet, and every unreceipted one again once no receipt came for resend_s."""
        r = self.receipts
        if r is None or not r.active:
            return self.outbox.peek(1, skip=sending)
        if self._resend_at is None or now >= self._resend_at:
            self._resend_at = now + r.resend_s
            self._cursor = -1  # a new round from the oldest: the city counts what it had as duplicates
        rec = self.outbox.peek_after(self._cursor, skip=sending)
        if rec:
            self._cursor = rec[0][0]
        return rec

    def _receipt(self):
        r = self.receipts
        before = r.hi
        r.accept_pending(self.outbox, self._net)
        if r.hi == before:
            return
        self._resend_at = self._net + r.resend_s  # the city is storing: the next round waits a full timeout
        if self._proof_at is None or self._net - self._proof_at >= PROOF_STATUS_S:
            self._proof_at = self._net
            self._status_due = True  # the status topic carries the commissioning proof

    def collector_time(self):
        """The city collector's signed clock now (Unix s), from the last receipt verified this
        boot; None without one."""
        return None if self.receipts is None else self.receipts.collector_time(self._net)
