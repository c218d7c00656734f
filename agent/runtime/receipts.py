"""What the device knows of the city's receipts (portable): the last one accepted, on flash too.

    keeper = Receipts(device_dir + "/receipt", verifier, dev)
    keeper.offer(message, mono_s)   a receipt arrived: the newest waits until due(mono_s)
    keeper.accept_pending(outbox, mono_s) -> records retired (0 when refused: see `refused`)
    keeper.active          True once any receipt was accepted (this boot or before): from then
                           on a summary stays in the outbox after its PUBACK until a receipt covers it
    keeper.collector_time(mono_s)  the collector's signed clock, carried forward (Unix s) or None
    keeper.proof()         "the city has stored up to seq N at T" or None

A device whose city has never sent it a receipt keeps today's behaviour (the PUBACK retires
a summary), so an older collector never makes it hold data forever. The file keeps the last
receipt accepted as it came (COSE bytes: `civicmote device check` verifies it again on the
host), written in place (agent/store/slots.py) at the first receipt and then at most every
`save_s` seconds, so flash wear stays at a few writes an hour.
"""
from agent.core import cbor, cose
from agent.errors import AgentError
from agent.store.slots import SlotFile

SLOT = 1024
RESEND_S = 120  # seconds without a receipt before PUBACKed summaries are sent again
SAVE_S = 300


def _fields(message):
    """(lo, hi, t ms) of a receipt already verified once (our own flash): no signature check."""
    r = cbor.loads(cose.decode1(message).payload, max_depth=4)
    return r["lo"], r["hi"], r["t"]


class Receipts:
    def __init__(self, path, verifier, dev, resend_s=RESEND_S, save_s=SAVE_S, min_interval_s=0, log=None):
        self.verifier = verifier
        self.dev = dev
        self.resend_s = resend_s
        self.save_s = save_s
        self.min_interval_s = min_interval_s  # a slow board checks at most one receipt this often
        self.log = log or (lambda text: None)
        self._file = SlotFile(path, SLOT)
        self.lo = self.hi = self.t = None  # the last receipt accepted
        self.accepted = 0  # receipts accepted since boot
        self.refused = 0  # receipts refused since boot
        self.deferred = 0  # receipts left for later since boot: no heap for the check just then
        self.retired = 0  # outbox records retired by receipts since boot
        self.last_refusal = None
        self._mono = None  # monotonic s when the last receipt was accepted this boot
        self._checked = None  # monotonic s of the last signature check
        self._saved = None
        self.pending = None  # the newest receipt not checked yet (a slow board checks one now and then)
        # Hook for the Pi updater's health gate (issue 23, provisioning/device/pi_health.py): the
        # first seq this boot may hand out; the first receipt reaching it is saved at once, so the
        # file shows "a summary of this boot is stored" without waiting for save_s.
        self.boot_seq = None
        try:
            raw = self._file.read()
            if raw is not None:
                self.lo, self.hi, self.t = _fields(raw)
        except (AgentError, KeyError, TypeError):
            self.lo = self.hi = self.t = None

    @property
    def active(self):
        return self.t is not None

    def offer(self, message, mono):
        """A receipt arrived: kept (the newest only) until accept() may check it."""
        self.pending = bytes(message)

    def due(self, mono):
        """True when a receipt waits and min_interval_s has passed since the last check."""
        return self.pending is not None and (self._checked is None or mono - self._checked >= self.min_interval_s)

    def accept_pending(self, outbox, mono):
        message, self.pending = self.pending, None
        return self.accept(message, outbox, mono)

    def accept(self, message, outbox, mono):
        """Check a receipt; retire what it covers. -> records retired (0 if refused)."""
        self._checked = mono
        try:
            r = self._check(message, outbox)
        except MemoryError:
            # A board's heap may have no room for a verification just now: nothing is retired,
            # nothing refused; the receipt waits (unless a newer one came) and is checked later.
            self.deferred += 1
            if self.pending is None:
                self.pending = bytes(message)
            self.log("receipt not checked yet: out of memory; nothing retired, tried again later")
            return 0
        except (AgentError, KeyError, TypeError, ValueError) as e:
            self.refused += 1
            self.last_refusal = str(e)[:120]
            self.log("receipt refused, nothing retired: %s" % self.last_refusal)
            return 0
        first = self.t is None
        self.lo, self.hi, self.t, self._mono = r["lo"], r["hi"], r["t"], mono
        self.accepted += 1
        n = outbox.retire(r["lo"], r["hi"])
        self.retired += n
        boot = self.boot_seq is not None and r["hi"] >= self.boot_seq
        if first or self._saved is None or mono - self._saved >= self.save_s or boot:
            try:
                self._file.write(bytes(message))
                self._saved = mono
                if boot:
                    self.boot_seq = None
            except OSError:
                pass  # the RAM copy still serves; the next receipt tries again
        if first:
            self.log("the city has stored up to seq %d: summaries now stay queued until a receipt covers them"
                     % r["hi"])
        return n

    def _check(self, message, outbox):
        try:
            return self.verifier.check(bytes(message), self.dev, self.t, outbox.last_seq)
        except MemoryError:
            import gc

            gc.collect()  # once, then the verification again: its big integers need room in one piece
            return self.verifier.check(bytes(message), self.dev, self.t, outbox.last_seq)

    def collector_time(self, mono):
        """The collector's clock now (Unix seconds), from the last receipt verified this boot
        plus the monotonic time since; None before one. A second time source for the device."""
        if self._mono is None:
            return None
        return self.t // 1000 + (mono - self._mono)

    def proof(self):
        """The technician's commissioning proof, or None before the first receipt."""
        if self.t is None:
            return None
        return "the city has stored up to seq %d at %s" % (self.hi, iso_utc(self.t // 1000))


def iso_utc(t):
    import time

    y, mo, d, h, mi, s = time.gmtime(t)[:6]
    return "%04d-%02d-%02dT%02d:%02d:%02dZ" % (y, mo, d, h, mi, s)


FILE = "receipt"


def open_receipts(device_dir, ca_der, dev, log=None, **kw):
    """The Receipts of a device whose provisioning CA certificate (DER) is ca_der: the CA's key
    is the one trust anchor a receipt is checked against."""
    from agent.core.receipt import Verifier, ca_public_key
    from agent.crypto import verifying_key_from_sec1

    ca = verifying_key_from_sec1(ca_public_key(ca_der))
    return Receipts(device_dir + "/" + FILE, Verifier(ca, verifying_key_from_sec1), dev, log=log, **kw)


def last_proof(device_dir):
    """{"seq", "lo", "at", "text", "message"} of the last receipt this device kept on flash, or
    None: what `civicmote status --port` and `device check` show the technician."""
    r = Receipts(device_dir + "/" + FILE, None, None)
    if not r.active:
        return None
    return {"seq": r.hi, "lo": r.lo, "at": r.t // 1000, "text": r.proof(), "message": r._file.read()}
