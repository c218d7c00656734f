"""The collector's receipts to devices: "the city has stored up to seq N", signed (CPython only).

    issuer = ReceiptIssuer(collector.store, key, cert, publish)
    issuer.committed([(device_id, seq), ...])   after a transaction (or a batch) committed them
    issuer.tick(time.monotonic())               in the network loop: sends what is due

A device gets at most one receipt every `interval` seconds, and only after something of it was
committed (a summary, or a duplicate: a device that sends again did not get the last receipt).
What a receipt says comes from the store, not from this process' memory, so N collectors
sharing one store all say the same: `lo` is the lowest seq stored, `hi` the highest seq below
which every seq is stored or a gap the device caused itself (gaps.outstanding: dropped on the
device, skipped at a reboot). A `missing` seq stops `hi`: the device may still hold it.
Wire format and threat model: docs/wire-format.md, "Receipts".
"""
import time

from agent.core import receipt
from provisioning.city import gaps

INTERVAL_S = 5.0
TOPIC = "receipt"


def covered(marks):
    """(lo, hi) a receipt may say for a device's stored marks (store.marks), or None if none."""
    if not marks:
        return None
    lo = min(m[0] for m in marks)
    hi = max(m[0] for m in marks)
    for g in gaps.outstanding(marks):
        if g["cause"] == gaps.MISSING:
            hi = g["first"] - 1
            break
    return lo, hi


def topic(prefix, district, dev):
    return "%s/%s/%s/%s" % (prefix.rstrip("/"), district, dev, TOPIC)


class ReceiptIssuer:
    """ReceiptIssuer(store, key, cert, publish, collector_id, prefix, interval, clock).

    key: the collector's signing key (sign(msg) -> 64 bytes); cert: its certificate from the
    provisioning CA (agent.core.receipt.make_cert bytes); publish(topic, payload) -> True if
    handed to the broker (False: not connected; the receipt stays due). clock() -> Unix seconds.
    """

    def __init__(self, store, key, cert, publish, collector_id, prefix="civicmote/v1", interval=INTERVAL_S,
                 clock=time.time):
        self.store = store
        self.key = key
        self.cert = bytes(cert)
        self.publish = publish
        self.collector_id = collector_id
        self.prefix = prefix
        self.interval = interval
        self.clock = clock
        self.sent = 0  # receipts published
        self.bytes = 0  # their payload bytes
        self._due = {}  # device_id -> monotonic s when its next receipt may go
        self._last = {}  # device_id -> monotonic s of its last receipt
        self._t = 0  # the last `t` signed: strictly increasing, whatever the wall clock does
        # device_id -> (lowest seq stored, highest seq stored at or below the last `hi`): the next
        # receipt reads only the marks from there (drop announcements and reboots are about earlier
        # seqs, so none above it concerns a seq below it), not the device's whole history
        self._known = {}

    def committed(self, pairs):
        """The hook: these (device_id, seq) were committed to the store."""
        now = time.monotonic()
        for dev, _ in pairs:
            if dev not in self._due:
                last = self._last.get(dev)
                self._due[dev] = now if last is None else max(now, last + self.interval)

    def tick(self, now, limit=200):
        """Publish receipts due at monotonic time now, at most `limit` (the loop has other work:
        the rest go at the next tick); -> how many."""
        n = 0
        for dev in [d for d, at in self._due.items() if at <= now][:limit]:
            msg = self.make(dev)
            if msg is None:
                del self._due[dev]
                continue
            if not self.publish(msg[0], msg[1]):
                break  # not connected: everything stays due
            del self._due[dev]
            self._last[dev] = now
            self.sent += 1
            self.bytes += len(msg[1])
            n += 1
        return n

    def make(self, dev):
        """(topic, signed receipt) for a device from what the store holds, or None if nothing is."""
        with self.store.lock:
            lo = self.store.lowest_seq(dev)
            known = self._known.get(dev)
            if known is None or lo is None or lo < known[0]:
                known = (lo, 0)  # first look, or an earlier seq arrived late: read it all again
            marks = self.store.marks(dev, known[1])
            row = self.store.device(dev) or {}
        span = covered(marks)
        if span is None or not row.get("district"):
            return None
        held = [m[0] for m in marks if m[0] <= span[1]]
        self._known[dev] = (lo, held[-1])  # every seq from lo to here is accounted for: not read again
        self._t = max(self._t + 1, int(self.clock() * 1000))
        body = receipt.make(self.key, self.cert, dev, lo, span[1], self._t, self.collector_id)
        return topic(self.prefix, row["district"], dev), body


def load_signer(key_path, cert_path):
    """(signing key, certificate bytes, collector id) from the collector's PEM key and its receipts
    certificate; UsageError naming the file if they do not belong together."""
    from provisioning.pki import certified_key

    return certified_key.load(key_path, cert_path, "receipts", "a collector key and receipts certificate")


def issue_cert(ca_private_key, collector_public_key, collector_id, exp):
    """The collector's receipts certificate, signed by the provisioning CA's key (cryptography keys)."""
    from cryptography.hazmat.primitives import serialization

    from agent.crypto.cpython_backend import SigningKey

    pub = collector_public_key.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    return receipt.make_cert(SigningKey(ca_private_key), collector_id, pub, int(exp))
