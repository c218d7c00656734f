"""The city-side collector's core: verify, de-duplicate, store, find gaps (CPython only, no MQTT).

`Collector.handle(topic, payload)` takes one MQTT message and returns what it meant, as
event dicts, after recording it in the store in one transaction:

    {"event": "summary", "device_id", "district", "seq", "t0", "t1", "m", "bytes", "mh_ok", "late"}
    {"event": "manifest", "device_id", "district", "mh", "new", "manifest"}
    {"event": "duplicate", "device_id", "seq", "conflict"}
    {"event": "rejected", "device_id" (None if no known device), "topic", "reason"}
    {"event": "held", "device_id", "topic", "reason"}     signer not in the registry yet
    {"event": "gap", "device_id", "first", "last", "count", "cause", "reported_by"}
    {"event": "status", "device_id", "district", "status"}   online/offline, for the web page

It never raises for what a device sent: every message that fails a check, or that the
collector cannot judge at all, is rejected with a reason and recorded (bounded, see
city/store.py), so the subscriber acknowledges it and other devices' data keeps flowing. It
raises only when the store fails; then nothing of the message is recorded and the message
must not be acknowledged.

The district is the registry's: a message published under another district is rejected, and
a device's district never follows a topic. A message signed by a device the key ring does not
know yet is held; `update_keyring(ring)` judges what was held for the devices it now knows.

Gap causes, per device, judged when a summary arrives (see docs/delivery.md, "The collector"):
- dropped-on-device: the summary's own `gap` [count, first, last]: the device's outbox was full
  and it dropped the oldest. `count` is exact; the range may be wider than the lost seqs.
- skipped-at-reboot: seqs above the highest one received and below the summary's `h.boot`
  (the first seq of the device's current boot) that no drop report covers: numbers reserved
  before a reboot and never used.
- missing: any other seq between the highest received and this one: lost in transit, or still
  on its way (it is then accepted later and marked `late`).
- seq-reset: the device lost its sequence state and started a new era (`h.sr` = 2, see
  docs/wire-format.md): the numbers from the highest received up to its `h.boot` were never
  used; recorded once, with count 0 (how many of the old era's last summaries were lost on
  the way, if any, nobody can tell).
The first summary ever seen from a device sets its baseline: nothing before it is reported
except what the device itself announces.
"""
import sqlite3
import time

from provisioning.city import gaps, store_pg
from provisioning.city.envelope import open_envelope
from provisioning.city.gaps import DROPPED, MISSING, SKIPPED, holes, uncovered
from provisioning.city.schema import MAX_AHEAD
from provisioning.city.store_pg import open_store
from provisioning.city.verifier import verify_message

DEFAULT_PREFIX = "civicmote/v1"
KINDS = ("summary", "manifest")
STATUS = "status"  # unsigned, retained online/offline: kept for known devices, never judged as data
STATUSES = (b"online", b"offline")
__all__ = ("Collector", "parse_topic", "committed_seqs", "DROPPED", "MISSING", "SKIPPED", "SEQ_RESET")
SEQ_RESET = "seq-reset"


def parse_topic(topic, prefix=DEFAULT_PREFIX):
    """(district, device_id, kind) of PREFIX/{district}/{device_id}/{kind}, or None."""
    head = prefix.rstrip("/") + "/"
    if not topic.startswith(head):
        return None
    parts = topic[len(head):].split("/")
    if len(parts) != 3 or not all(parts):
        return None
    return parts[0], parts[1], parts[2]


def store_errors():
    """The exceptions that mean the store failed (not the message): nothing is recorded then."""
    return (sqlite3.Error, OSError, MemoryError) + store_pg.driver_errors()


def committed_seqs(events):
    """[(device_id, seq)] of the summaries that events say are in the store: stored by this
    transaction ("summary") or found stored already ("duplicate", e.g. a device's re-send)."""
    return [(e["device_id"], e["seq"]) for e in events if e["event"] in ("summary", "duplicate")]


def _defect(e):
    return "defect", "the collector could not judge this message (%s: %s)" % (type(e).__name__, str(e)[:200])


class _Device:
    """What the collector remembers of one device between messages (rebuilt from the store)."""

    def __init__(self, store, dev, version):
        self.version = version  # the device's `received` counter when this was read
        row = store.device(dev) or {}
        self.district = row.get("district")
        self.high = row.get("last_seq")  # highest accepted seq, None before the first
        self.mh = row.get("mh")
        self.manifest = store.manifest(dev, self.mh) if self.mh is not None else None
        self.gaps = store.gaps(dev)
        self.announced = [(g["first"], g["last"], g["count"]) for g in self.gaps if g["cause"] == DROPPED]


class Collector:
    """Collector(keyring, store_path=None, prefix="civicmote/v1", clock=time.time, max_ahead=3600).

    keyring: a provisioning.city.verifier.KeyRing. store_path: the SQLite file (None: in memory,
    so de-duplication then lasts only as long as this object), or a postgresql:// URL. Several
    collectors may share one store (N processes on one stream): each message's judgement locks
    its device in the store and starts from what the store holds, not from this process' memory.
    clock() -> Unix seconds, used
    when handle() is not told when the message arrived. max_ahead: seconds a window may end
    after its arrival before it counts as from the future (None: no limit, for devices on a
    simulated clock such as `civicmote run --fast`).
    """

    def __init__(self, keyring, store_path=None, prefix=DEFAULT_PREFIX, clock=time.time, max_ahead=MAX_AHEAD):
        self.keyring = keyring
        self.prefix = prefix
        self.clock = clock
        self.max_ahead = max_ahead
        self.store = open_store(store_path)
        self._devices = {}
        self._locked = set()  # devices locked by the transaction in progress
        # Called after every commit with that transaction's events (the receipts' hook: what is
        # stored now, see committed_seqs); in the thread that called handle/handle_batch.
        self.on_committed = []

    def handle(self, topic, payload, received_at=None):
        """Judge and record one message; -> [event dicts]. Raises only if the store fails
        (then nothing of this message is recorded and it should not be acknowledged)."""
        return self.handle_batch([(topic, payload, received_at)])[0]

    def handle_batch(self, messages):
        """Judge and record messages [(topic, payload, received_at or None)] in one transaction
        (group commit); -> [[event dicts] per message, in order]. Every message gets its own
        judgement: one that fails a check is rejected with its reason, as alone.

        If the batch's transaction fails, each message is tried again in a transaction of its
        own, so one message the store refuses never holds back the rest. Raises only if the store
        fails for a message then: the exception's `committed` holds the results of the messages
        before it (recorded: acknowledge those), nothing of it or after it is recorded."""
        items = []
        for topic, payload, at in messages:
            payload = bytes(payload)
            now = self.clock() if at is None else at
            items.append((topic, payload, now, self._verdict(topic, payload, now)))
        try:
            results = self._commit(items)
        except store_errors():
            if len(items) == 1:
                raise
            results = None
        except Exception:  # a defect of ours in one message: find which, one transaction each
            results = None
        if results is not None:
            return self._notify(results)
        done = []
        for item in items:
            try:
                got = self._commit([item])
            except store_errors() as e:
                e.committed = done
                raise
            except Exception as e:  # a defect of ours must not stop the city: reject the message, loudly
                got = self._commit([item[:3] + (_defect(e),)])
            done += self._notify(got)
        return done

    def _notify(self, results):
        """Tell the on_committed hooks what a transaction recorded; a hook's exception propagates
        (what it was told about is stored)."""
        if self.on_committed:
            events = [ev for r in results for ev in r]
            for hook in self.on_committed:
                hook(events)
        return results

    def update_keyring(self, keyring, received_at=None):
        """Use a new key ring (the registry changed) and judge every message held for a device it
        now knows, oldest first; -> [event dicts]. Raises only if the store fails."""
        self.keyring = keyring
        self._devices.clear()  # districts may have changed
        events = []
        with self.store.lock:
            waiting = [dev for dev in self.store.held_devices() if keyring.knows(dev)]
        for dev in waiting:
            while True:
                with self.store.lock:
                    batch = self.store.take_held(dev)
                if not batch:
                    break
                for held_id, topic, message, at in batch:
                    item = (topic, message, at, self._verdict(topic, message, at))
                    try:
                        got = self._commit([item], held_id)
                    except store_errors():
                        raise
                    except Exception as e:
                        got = self._commit([item[:3] + (_defect(e),)], held_id)
                    events += self._notify(got)[0]
        return events

    def _verdict(self, topic, payload, now):
        """What can be judged without the store (topic, signature, schema): done before the
        transaction, so the database is held only for the store's part."""
        parsed = parse_topic(topic, self.prefix)
        if parsed is not None and parsed[2] in KINDS:
            return parsed, verify_message(payload, self.keyring, now, self.max_ahead)
        return parsed, None

    def _commit(self, items, held_id=None):
        """One transaction for items [(topic, payload, now, verdict)]; -> [[events] per item].
        Every device the items may touch is locked first, in one order (device id), so
        collectors sharing a PostgreSQL store never wait on each other in a cycle."""
        self._locked = set()
        try:
            with self.store.transaction():
                if held_id is not None and not self.store.drop_held(held_id):
                    return [[]]  # another collector sharing the store judged it already
                devs = sorted({d for d in map(self._owner, items) if d is not None})
                for dev, version in self.store.lock_devices(devs).items():
                    st = self._devices.get(dev)
                    if st is None or st.version != version:
                        self._devices[dev] = _Device(self.store, dev, version)
                    self._locked.add(dev)
                self.store.prefetch([(v.device_id, v.seq) for _, v in (it[3] for it in items)
                                     if getattr(v, "kind", None) == "summary" and v.ok])
                return [self._handle(*item) for item in items]
        except BaseException:
            self._devices.clear()  # the transaction rolled back: forget what memory learnt from it
            raise

    def _owner(self, item):
        parsed = item[3][0] if type(item[3][0]) is tuple else None
        return parsed[1] if parsed is not None and self.keyring.knows(parsed[1]) else None

    def devices(self):
        """{device_id: {district, received, accepted, duplicates, rejected, manifests, bytes,
        last_seq, mh (hex or None), manifest (decoded dict or None), gaps [dicts] (as found, in
        that order), open_gaps [dicts] (what is still not stored, from the store: gaps.outstanding)}}."""
        out = {}
        with self.store.lock:
            for dev in self.store.device_ids():
                row = self.store.device(dev)
                st = self._device(dev)
                row["mh"] = row["mh"].hex() if row["mh"] is not None else None
                row["manifest"] = st.manifest
                row["gaps"] = [dict(g) for g in st.gaps]
                row["open_gaps"] = gaps.outstanding(self.store.marks(dev))
                del row["device_id"]
                out[dev] = row
        return out

    def seqs(self, dev):
        """Accepted seqs of a device, ascending."""
        with self.store.lock:
            return self.store.seqs(dev)

    def close(self):
        self.store.close()

    # -- one message ---------------------------------------------------------------------
    def _device(self, dev):
        """The device's state, locked for this transaction; re-read when another collector (or
        a rejection) recorded a message of it since we last looked."""
        st = self._devices.get(dev)
        if st is not None and dev in self._locked:
            return st  # locked and read already in this transaction
        version = self.store.lock_device(dev)
        if st is None or st.version != version:
            st = self._devices[dev] = _Device(self.store, dev, version)
        self._locked.add(dev)
        return st

    @staticmethod
    def _counted(st):
        st.version = (st.version or 0) + 1  # store.count() added one to `received`

    def _handle(self, topic, payload, now, verdict):
        if verdict[0] == "defect":
            return self._reject(topic, None, verdict[1], payload, now)
        parsed, v = verdict
        if parsed is not None and parsed[2] == STATUS:
            return self._status(parsed[1], parsed[0], payload, now)
        topic_dev = parsed[1] if parsed else None
        owner = topic_dev if topic_dev is not None and self.keyring.knows(topic_dev) else None
        if v is None:
            return self._reject(topic, owner, "topic %r is not %s/{district}/{device_id}/summary or /manifest"
                                % (topic[:200], self.prefix), payload, now)
        district, _, kind = parsed
        if v.unknown and v.device_id == topic_dev:
            reason = "signed by %s, not in the registry yet: held until it is" % topic_dev
            if self.store.hold(topic, topic_dev, payload, now):
                return [{"event": "held", "device_id": topic_dev, "topic": topic, "reason": reason}]
            return self._reject(topic, None, reason.split(":")[0] + ", and too many of its messages are held "
                                "already", payload, now)
        if v.device_id is not None and v.device_id != topic_dev:
            return self._reject(topic, owner, "signed by %s but published on the topic of %s"
                                % (v.device_id, topic_dev), payload, now)
        if not v.ok:
            return self._reject(topic, owner, v.reason, payload, now)
        dev = v.device_id
        st = self._device(dev)
        filed = self.keyring.districts.get(dev) or st.district or district
        if district != filed:
            return self._reject(topic, dev, "published under district %r, but %s is in district %r"
                                % (district, dev, filed), payload, now)
        if v.kind != kind:
            return self._reject(topic, dev, "a %s published on the %s topic" % (v.kind, kind), payload, now)
        if kind == "manifest":
            return self._manifest(dev, filed, v.payload, v.mh, payload, now)
        return self._summary(dev, filed, v.payload, topic, payload, now)

    def _status(self, dev, district, payload, now):
        # Only the device's own certificate may publish here (broker ACL); anything else is ignored
        # rather than rejected, as a status carries no data and no signature to judge. The district
        # is the registry's, as for every message.
        word = payload.split(b";")[0]  # "online; waiting: ...", "online; the city has stored up to seq N at T"
        if word not in STATUSES or not self.keyring.knows(dev):
            return []
        district = self.keyring.districts.get(dev) or district
        self.store.set_status(dev, district, word.decode(), now)
        return [{"event": "status", "device_id": dev, "district": district, "status": word.decode()}]

    def _reject(self, topic, dev, reason, payload, now):
        self.store.add_rejected(topic, dev, reason, payload, now)
        if dev is not None:
            self.store.count(dev, self.keyring.districts.get(dev), now, len(payload), rejected=1)
        return [{"event": "rejected", "device_id": dev, "topic": topic, "reason": reason}]

    def _manifest(self, dev, district, manifest, mh, message, now):
        st = self._device(dev)
        self.store.count(dev, district, now, len(message), manifests=1)
        self._counted(st)
        new = self.store.add_manifest(dev, mh, manifest, message, now)
        st.mh, st.manifest, st.district = mh, manifest, district
        return [{"event": "manifest", "device_id": dev, "district": district, "mh": mh.hex(), "new": new,
                 "manifest": manifest}]

    def _summary(self, dev, district, s, topic, message, now):
        seq = s["seq"]
        st = self._device(dev)
        stored = self.store.summary_payload(dev, seq)
        if stored is not None:
            self.store.count(dev, district, now, len(message), duplicates=1)
            self._counted(st)
            conflict = stored != message and open_envelope(stored)[1] != open_envelope(message)[1]
            return [{"event": "duplicate", "device_id": dev, "seq": seq, "conflict": conflict}]
        events = []
        if "gap" in s:
            # A device announces its drops again in every summary until one of those summaries is
            # delivered, so only the part of the range not announced before is news.
            count, first, last = s["gap"]
            fresh = uncovered(st.announced, first, last)
            if fresh:
                known = 0
                for a, b, c in st.announced:
                    if first <= a and b <= last:
                        known += c
                new = max(1, count - known)
                st.announced.append((first, last, count))
                if new == sum(y - x + 1 for x, y in fresh):
                    for x, y in fresh:
                        events.append(self._gap(st, dev, x, y, y - x + 1, DROPPED, seq, now))
                else:  # the device merged runs: say how many within the fresh envelope
                    events.append(self._gap(st, dev, fresh[0][0], fresh[-1][1], new, DROPPED, seq, now))
        if st.high is not None and seq > st.high + 1:
            boot = (s.get("h") or {}).get("boot")
            if (s.get("h") or {}).get("sr") == 2 and boot is not None and boot > st.high + 1:
                events.append(self._gap(st, dev, st.high + 1, boot - 1, 0, SEQ_RESET, seq, now))
                st.announced.append((st.high + 1, boot - 1, 0))
            for first, last, cause in holes(st.announced, st.high + 1, seq - 1, boot):
                events.append(self._gap(st, dev, first, last, last - first + 1, cause, seq, now))
        late = st.high is not None and seq < st.high
        mh_ok = None if st.mh is None else s["mh"] == st.mh
        self.store.add_summary(s, mh_ok, topic, now, message)
        self.store.count(dev, district, now, len(message), accepted=1)
        self._counted(st)
        st.district = district
        if st.high is None or seq > st.high:
            st.high = seq
            self.store.set_last_seq(dev, seq)
        events.append({"event": "summary", "device_id": dev, "district": district, "seq": seq, "t0": s["t0"],
                       "t1": s["t1"], "m": s["m"], "bytes": len(message), "mh_ok": mh_ok, "late": late})
        return events

    def _gap(self, st, dev, first, last, count, cause, reported_by, now):
        g = {"first": first, "last": last, "count": count, "cause": cause, "reported_by": reported_by}
        st.gaps.append(g)
        self.store.add_gap(dev, first, last, count, cause, reported_by, now)
        ev = {"event": "gap", "device_id": dev}
        ev.update(g)
        return ev
