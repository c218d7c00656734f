"""Signed updates over the device's own MQTT session (portable: a board's agent and the Pi's).

    f = Fetcher(device_dir, dev, district, key, trust, installer, running=(seq, d))
    f.topics()                 [(filter, qos)] to subscribe on every connect
    f.connected()              a (re)connect: ask for the order again (RabbitMQ keeps retained
                               messages per node), repeat the last request, re-publish the status
    f.offer(topic, payload, now)   a message on those topics (blocks are written at once)
    f.tick(now, wall, transport)   the work due now; publishes at most one message

now: monotonic seconds; wall: Unix seconds while the device's clock is valid, else 0.
trust: an agent.ota.trust.Trust (CA key, release keys, classes, state format). installer: what
applies a verified artefact (agent/ota/board_slots.py on a board; the Pi's updater):
    installer.limit                  the largest artefact it takes (bytes)
    installer.install(doc, release_cose, part_path)  stage it (may reset the device)
    installer.trial()                (seq, hash) running on trial now, or None
    installer.confirm()              the health gate passed: keep this version
gate(): True once a summary signed in this boot is covered by the city's receipt (the health gate).

Delivery (docs/updates.md): blocks of 4096 bytes, at most 4 per request, CRC-32 per block and a
running SHA-256 over exactly the release's size into `ota/part`; the offset persisted at least
every 64 KiB, the prefix hashed again after a reboot; a request unanswered for retry_s (10 s) is
asked again, and after `misses` (32) the device reports `stalled` and waits retry_s * misses.
Memory: the block being written (the MQTT client's buffer) and the hash state.
"""
import binascii
import struct

from agent.core import cbor
from agent.errors import AgentError
from agent.ota.docs import Refused
from agent.ota.part import BLOCK, Part, remove
from agent.ota.state import PART, RELEASE, OtaState, ensure_dir

RETRY_S = 10
MISSES = 32
PER_REQUEST = 4
PERSIST_BYTES = 64 * 1024
REPORT_BLOCKS = 64
LATER_S = 60  # an order not yet in force (nb, clock) is looked at again this often
INSTALL_WAIT_S = 5  # after `verifying` is published (or this long), the installer runs
QUIET = ("not_member", "not_yet", "clock_invalid")  # orders for others, or for later: no status


class Fetcher:
    def __init__(self, device_dir, dev, district, key, trust, installer, running=(0, b""),
                 prefix="civicmote/v1", gate=None, retry_s=RETRY_S, misses=MISSES, log=None):
        ensure_dir(device_dir)
        self.state = OtaState(device_dir)
        self.dev = dev
        self.district = district
        self.key = key
        self.trust = trust
        self.installer = installer
        self.running = running
        self.gate = gate
        self.retry_s = retry_s
        self.max_misses = misses
        self.log = log or (lambda text: None)
        self.order_topic = "%s/%s/ota/order" % (prefix, district)
        base = "%s/%s/%s/ota/" % (prefix, district, dev)
        self.down_topic, self.req_topic, self.status_topic = base + "down", base + "req", base + "status"
        self.release_path = self.state.dir + "/" + RELEASE
        self.part_path = self.state.dir + "/" + PART
        self.pending_order = None  # the newest order not checked yet
        self.pending_release = None
        self.later = None  # [order, when to look again]: not yet in force, or no valid clock
        self.want = None  # the release hash the accepted order names
        self.doc = None  # its checked release
        self.part = None
        self.misses = 0
        self.blocks = 0  # blocks taken since boot
        self.bytes_in = 0  # block bytes taken since boot
        self._req = None  # the request to send (a map), or None
        self._asked = 0  # blocks asked by the last request and not arrived
        self._sent_at = None
        self._wait_until = None  # stalled: no request before this
        self._status_due = self.state.st is not None
        self._since_report = 0
        self._persisted = 0
        self._install_at = None
        self._ask_order = True
        dl = self.state.dl
        if dl:
            self.want = bytes(dl[0])
            self._resume_off = dl[1]
            try:
                with open(self.release_path, "rb") as f:
                    self.pending_release = f.read()
            except OSError:
                self._req = {"op": "release", "r": self.want}
        else:
            self._resume_off = 0

    # -- the session -------------------------------------------------------------------------
    def topics(self):
        return [(self.order_topic, 1), (self.down_topic, 1)]

    def connected(self):
        self._ask_order = True
        self._status_due = self._status_due or self.state.st is not None
        self._sent_at = None
        if self.part is not None and self._req is None:
            self._ask_blocks()

    def offer(self, topic, payload, now):
        """A message on the order or down topic. Orders and releases wait for tick(); a block is
        written now (the buffer it came in is the only copy)."""
        if topic == self.order_topic or topic == self.down_topic and payload[:1] == b"O":
            if payload[:1] == b"O":
                self.pending_order = bytes(payload[1:])
        elif topic != self.down_topic:
            return
        elif payload[:1] == b"R":
            if self.want is not None and self.doc is None and self.trust.digest(payload[1:]) == self.want:
                self.pending_release = bytes(payload[1:])
        elif payload[:1] == b"B" and len(payload) >= 17:
            self._block(payload, now)

    def _block(self, payload, now):
        p = self.part
        if p is None or bytes(payload[1:9]) != self.want[:8]:
            return
        off, crc = struct.unpack(">II", payload[9:17])
        data = memoryview(payload)[17:]
        if binascii.crc32(data) & 0xFFFFFFFF != crc:
            return  # damaged on the way: asked again when the request times out
        try:
            taken = p.add(off, data)
        except Refused as e:
            self._refuse(e.reason, self.doc["seq"], str(e))
            return
        if not taken:
            return
        self.blocks += 1
        self.bytes_in += len(data)
        self.misses = 0
        self._since_report += 1
        if self._asked:
            self._asked -= 1
        if p.off - self._persisted >= PERSIST_BYTES:
            self._persist()
        if self._since_report >= REPORT_BLOCKS:
            self._report("downloading")
        if not p.done and self._asked == 0:
            self._ask_blocks()

    def _persist(self):
        self.part.sync()
        self.state.dl = [self.want, self.part.off]
        self._save()
        self._persisted = self.part.off

    # -- the work due now --------------------------------------------------------------------
    def tick(self, now, wall, transport):
        if self.pending_order is not None:
            msg, self.pending_order = self.pending_order, None
            self._take_order(msg, now, wall)
        elif self.later is not None and now >= self.later[1] and wall:
            msg, self.later = self.later[0], None
            self._take_order(msg, now, wall)
        elif self.pending_release is not None:
            msg, self.pending_release = self.pending_release, None
            self._take_release(msg, wall)
        elif self.part is not None and self.part.done and self._install_at is None:
            self._verify(now)
        elif self._install_at is not None and (not self._status_due or now >= self._install_at):
            self._install()
        elif self.gate is not None and self.installer.trial() is not None and self.gate():
            self._confirm()
        self._timers(now)
        if transport is not None and transport.connected and transport.can_publish:
            self._publish(transport, now, wall)

    def _timers(self, now):
        if self.part is None or self.part.done or self._sent_at is None or self._req is not None:
            return
        if self._wait_until is not None:
            if now >= self._wait_until:
                self._wait_until = None
                self._ask_blocks()
            return
        if now - self._sent_at >= self.retry_s:
            self.misses += 1
            if self.misses >= self.max_misses:
                self.misses = 0
                self._wait_until = now + self.retry_s * self.max_misses
                self.log("update: %d block requests unanswered: stalled, asking again in %d s" % (
                    self.max_misses, self.retry_s * self.max_misses))
                self._report("downloading", "stalled")
                return
            self._ask_blocks()

    def _publish(self, t, now, wall):
        if self._status_due:
            self._status_due = False
            t.publish(self.status_topic, self._status(wall), qos=1, retain=True, now=now)
        elif self._ask_order:
            self._ask_order = False
            t.publish(self.req_topic, cbor.dumps({"op": "order"}), qos=1, now=now)
        elif self._req is not None:
            req, self._req = self._req, None
            t.publish(self.req_topic, cbor.dumps(req), qos=1, now=now)
            self._sent_at = now

    def _status(self, wall):
        st = self.state.st or ["queued", "", 0, b""]
        p = self.part
        size = self.doc["size"] if self.doc is not None else 0
        return self.trust.status(self.key, self.dev, st[0], st[1], st[2], bytes(st[3]), p.off if p else 0, size,
                                 self.running[0], wall)

    # -- orders and releases -----------------------------------------------------------------
    def _take_order(self, msg, now, wall):
        try:
            o = self.trust.check_order(msg, self.dev, self.district, wall, self.state.os)
        except Refused as e:
            if e.reason in ("not_yet", "clock_invalid"):
                self.later = [msg, now + LATER_S]
            elif e.reason == "stale_order" and self.trust.digest(msg)[:8] == bytes(self.state.oh):
                pass  # the order in force, again (retained, and asked for on every connect)
            elif e.reason not in QUIET:
                self.log("update order refused: %s" % e)
                self._report("refused", e.reason)
            return
        self.state.os, self.state.oh = o["seq"], self.trust.digest(msg)[:8]
        r = bytes(o["release"])
        trial = self.installer.trial()
        if r and (r == self.want or r == self.state.d or (trial is not None and r == trial[1])):
            self._save()
            return
        was = self.want
        self._abandon()
        if r == b"":
            self.log("update order %d: stop" % o["seq"])
            self.state.report("refused" if was else "queued", "stopped", 0, was or b"")
            self._status_due = True
            self._save()
            return
        self.want = r
        self.state.dl = [r, 0]
        self.state.report("queued", "", 0, r)
        self._status_due = True
        self._save()
        self._req = {"op": "release", "r": r}

    def _take_release(self, msg, wall):
        try:
            doc = self.trust.check_release(msg, self.want, self.state.sw, self.state.bad, wall, self.installer.limit)
        except Refused as e:
            seq = self.trust.last_seq  # set once the signature verified, else None
            if seq is not None and seq > self.state.bad and e.reason not in ("expired", "clock_invalid"):
                self.state.bad = seq
            self.log("update release refused: %s" % e)
            want = self.want
            self._abandon()
            self._report("refused", e.reason, seq or 0, want)
            return
        self.doc = doc
        if self._resume_off == 0:
            from agent.compat import write_file_atomic

            try:
                write_file_atomic(self.release_path, msg)
            except OSError:
                self._abandon()
                self._report("refused", "disk", doc["seq"])
                return
        try:
            self.part = Part(self.part_path, doc["size"], doc["sha256"], self._resume_off)
        except OSError:
            self._abandon()
            self._report("refused", "disk", doc["seq"])
            return
        self._persisted = self.part.off
        if self.part.off:
            self.log("update %d: resuming at %d of %d bytes" % (doc["seq"], self.part.off, doc["size"]))
        self._resume_off = 0
        self.state.dl = [self.want, self.part.off]
        self._report("downloading")
        if not self.part.done:
            self._ask_blocks()

    def _ask_blocks(self):
        p = self.part
        n = (p.size - p.off + BLOCK - 1) // BLOCK
        n = PER_REQUEST if n > PER_REQUEST else n
        off = p.off - p.off % BLOCK
        self._req = {"op": "blk", "r": self.want, "off": off, "n": n}
        self._asked = n

    # -- verify, install, confirm ------------------------------------------------------------
    def _verify(self, now):
        try:
            self.part.check()
        except Refused as e:
            self._refuse(e.reason, self.doc["seq"], str(e))
            return
        self._persist()  # a cut while staging: the next boot finds the whole part and installs again
        self.part.close()
        self._report("verifying")
        self._install_at = now + INSTALL_WAIT_S

    def _install(self):
        doc, self._install_at = self.doc, None
        self.log("update %d (%s): verified, installing" % (doc["seq"], doc.get("ver", "")))
        try:
            with open(self.release_path, "rb") as f:
                msg = f.read()
            self.installer.install(doc, msg, self.part_path)  # a board restarts in it
            self.part = None  # handed over (the Pi's updater takes it from here): nothing more to fetch
        except Refused as e:
            self._refuse(e.reason, doc["seq"], str(e))
        except OSError as e:
            self._refuse("disk", doc["seq"], str(e))
        except AgentError as e:  # a bundle the release key signed and that does not unpack
            self._refuse("malformed", doc["seq"], str(e))

    def _confirm(self):
        seq, h = self.installer.trial()
        self.installer.confirm()
        self.state.sw, self.state.d = seq, h
        self.log("update %d confirmed: a summary signed in this boot is stored by the city" % seq)
        self.state.report("confirmed", "", seq, h)
        self._status_due = True
        self._save()

    # -- refusals ----------------------------------------------------------------------------
    def _refuse(self, reason, seq, text=""):
        """Refuse the release being fetched; a signed one is never tried again (unless the flash
        was full: that is ours, not the release's)."""
        self.log("update %d refused: %s" % (seq, text or reason))
        if self.doc is not None and reason != "disk" and seq > self.state.bad:
            self.state.bad = seq
        want = self.want
        self._abandon()
        self._report("refused", reason, seq, want)

    def _abandon(self):
        if self.part is not None:
            self.part.close()
        self.part = self.doc = self.want = None
        self._req = None
        self._asked = 0
        self._install_at = None
        self._resume_off = 0
        self.state.dl = None
        remove(self.part_path)
        remove(self.release_path)

    def _report(self, state, reason="", seq=None, release=None):
        doc = self.doc
        if seq is None:
            seq = doc["seq"] if doc is not None else 0
        self.state.report(state, reason, seq, release or self.want or b"")
        self._since_report = 0
        self._status_due = True
        self._save()

    def _save(self):
        try:
            self.state.save()
        except OSError:
            self.log("update state could not be written (flash full?)")
