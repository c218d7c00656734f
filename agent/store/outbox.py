"""The outbox: a bounded, crash-safe, oldest-first queue of signed summaries on flash.

One file per record, `<seq>.rec`, each a CRC-framed `seq(8) | data` written as tmp +
fsync + rename (agent/store/atomic.py), so a power cut leaves a record whole or absent,
never half. A record leaves only through `ack(seq)`, which the loop calls on the broker's
PUBACK. When a new record would exceed `max_bytes` or `max_count`, the oldest records are
dropped and remembered as *pending drop runs* in the crash-safe file `dropped`, written
*before* the victims are removed, so a loss is never silent: every summary announces
`drop_report()` (`put(..., announced=report)`), and the runs stay pending until a summary
that announced them is acknowledged by the broker. An announcing summary that is itself
dropped takes nothing with it: the next one announces the same runs again.
A corrupt record found at start-up is renamed `<seq>.rec.bad`, named in `quarantined`,
and counted as a drop too (its summary is lost).
"""
import os
import struct

from agent.errors import AgentError, DecodeError
from agent.store import atomic

REC = ".rec"
BAD = ".bad"
DROP_FILE = "dropped"
SEQ_BYTES = 8
OVERHEAD = atomic.HEADER + SEQ_BYTES  # on-flash bytes per record beyond its data
MAX_RUNS = 8  # pending drop runs kept apart before the oldest two are merged
_RUN = ">QQI"  # first seq, last seq, count
_RUN_SIZE = 20


class Outbox:
    """Outbox(dirpath, max_bytes, max_count): see the module docstring.

    max_bytes counts on-flash bytes of records (data + 20 bytes each); max_count records.
    keep_bad: how many quarantined files to keep for inspection (older ones are deleted).
    """

    def __init__(self, dirpath, max_bytes=65536, max_count=256, keep_bad=4):
        if max_count < 1 or max_bytes < OVERHEAD + 1:
            raise AgentError("outbox: max_count must be >= 1 and max_bytes >= %d" % (OVERHEAD + 1))
        self.dir = dirpath.rstrip("/") or "/"
        self.max_bytes = max_bytes
        self.max_count = max_count
        self.keep_bad = keep_bad
        self._items = []  # [seq, size] ascending by seq
        self._bytes = 0
        self._runs = []  # [[first, last, count]] ascending by first
        self._drop_upto = -1  # every record <= this seq was chosen as a victim (write-ahead)
        self._last = -1  # highest seq ever put or seen, for the strictly-increasing check
        # seq of a queued record -> last dropped seq it announces. RAM only: after a reboot the
        # pending runs are simply announced again, which is harmless.
        self._announcers = {}
        self.quarantined = []  # file names quarantined since this Outbox was opened
        self.torn = 0  # .tmp files discarded at start-up (writes cut before their rename)
        atomic.makedirs(self.dir)
        self._recover()

    # -- paths -------------------------------------------------------------------------
    def _path(self, name):
        return self.dir + "/" + name

    def _rec_path(self, seq):
        return self._path("%d%s" % (seq, REC))

    # -- start-up ----------------------------------------------------------------------
    def _recover(self):
        try:
            raw = atomic.read_file(self._path(DROP_FILE), "outbox drop report")
            if raw is not None:
                self._drop_upto, self._runs = _decode_drops(raw)
        except DecodeError:
            self._quarantine(DROP_FILE)
        bad = []
        found = []
        dirty = False
        for name in os.listdir(self.dir):
            if name.endswith(atomic.TMP):
                atomic.remove_quietly(self._path(name))
                self.torn += 1
            elif name.endswith(BAD):
                bad.append(name)
            elif name.endswith(REC):
                seq = _seq_of(name)
                if seq is None:
                    self._quarantine(name)
                    continue
                self._last = max(self._last, seq)
                try:
                    self._read(seq)
                except DecodeError:
                    self._quarantine(name)
                    if seq > self._drop_upto:  # a victim needs no second report
                        self._add_run(seq, seq, 1)
                        dirty = True
                    continue
                found.append(seq)
        found.sort()
        for seq in found:
            self._items.append([seq, _size_on_flash(self._rec_path(seq))])
            self._bytes += self._items[-1][1]
        # Roll forward a drop that was cut short: its intent is on flash, so every record up
        # to the last intended victim goes (victims are always the oldest).
        while self._items and self._items[0][0] <= self._drop_upto:
            self._remove_head()
        self._last = max(self._last, self._drop_upto)
        if dirty:
            self._save_runs()
        self._make_room(0)  # the bounds may have shrunk since the last run
        self._trim_bad(bad + [n + BAD for n in self.quarantined])

    def _quarantine(self, name):
        try:
            os.rename(self._path(name), self._path(name + BAD))
        except OSError:
            atomic.remove_quietly(self._path(name))
        self.quarantined.append(name)
        if name == DROP_FILE:
            self._runs = []
            self._drop_upto = -1

    def _trim_bad(self, names):
        names = sorted(set(names))
        while len(names) > self.keep_bad:
            atomic.remove_quietly(self._path(names.pop(0)))

    # -- reading -----------------------------------------------------------------------
    def _read(self, seq):
        with open(self._rec_path(seq), "rb") as f:
            payload = atomic.unframe(f.read(), "outbox record %d" % seq)
        if len(payload) < SEQ_BYTES or struct.unpack(">Q", payload[:SEQ_BYTES])[0] != seq:
            raise DecodeError("outbox record %d: seq inside the record differs from its file name" % seq)
        return payload[SEQ_BYTES:]

    def peek(self, n=1, skip=()):
        """Up to n records, oldest first, as [(seq, data)], leaving out (and not reading) the
        seqs in `skip`. A record found corrupt now is quarantined, counted as dropped and skipped."""
        out = []
        for seq in self.seqs():
            if len(out) >= n:
                break
            if seq in skip:
                continue
            try:
                out.append((seq, self._read(seq)))
            except (DecodeError, OSError):
                self._quarantine("%d%s" % (seq, REC))
                self._forget(seq)
                self._add_run(seq, seq, 1)
                self._save_runs()
        return out

    def __iter__(self):
        for seq in self.seqs():
            for item in self.peek_seq(seq):
                yield item

    def peek_seq(self, seq):
        """[(seq, data)] for one queued seq, or [] if it is gone (acked, dropped, corrupt)."""
        if not self.contains(seq):
            return []
        try:
            return [(seq, self._read(seq))]
        except (DecodeError, OSError):
            return []

    def seqs(self):
        """Queued seqs, oldest first."""
        return [it[0] for it in self._items]

    def contains(self, seq):
        for it in self._items:
            if it[0] == seq:
                return True
        return False

    @property
    def depth(self):
        """Number of queued records."""
        return len(self._items)

    @property
    def bytes(self):
        """On-flash bytes of queued records."""
        return self._bytes

    # -- writing -----------------------------------------------------------------------
    def put(self, seq, data, announced=None):
        """Queue data (bytes) under seq; return the list of seqs dropped to make room.

        seq must exceed every seq this outbox has seen. When put returns, the record is on
        flash. announced: a drop_report() tuple that `data` announces; those drops stay
        pending (later records announce them again) until this record is acknowledged.
        """
        if seq <= self._last:
            raise AgentError("outbox: seq %d is not above the last seq %d" % (seq, self._last))
        size = OVERHEAD + len(data)
        if size > self.max_bytes:
            raise AgentError("outbox: a record of %d bytes exceeds max_bytes %d" % (size, self.max_bytes))
        dropped = self._make_room(size)
        atomic.write_new(self._rec_path(seq), struct.pack(">Q", seq) + data)
        self._items.append([seq, size])
        self._bytes += size
        self._last = seq
        if announced:
            self._announcers[seq] = announced[2]
        return dropped

    def _make_room(self, size):
        victims = []
        n = len(self._items)
        total = self._bytes
        while n and (n + (1 if size else 0) > self.max_count or total + size > self.max_bytes):
            it = self._items[len(victims)]
            victims.append(it[0])
            total -= it[1]
            n -= 1
        if not victims:
            return victims
        self._add_run(victims[0], victims[-1], len(victims))
        self._drop_upto = victims[-1]
        self._save_runs()  # intent first: a cut after this rolls the drop forward at start-up
        for _ in victims:
            self._remove_head()
        return victims

    def ack(self, seq):
        """The broker acknowledged seq: remove it. False if it was not queued (dropped earlier)."""
        if not self.contains(seq):
            return False
        atomic.remove_quietly(self._rec_path(seq))
        self._forget(seq)
        last = self._announcers.pop(seq, None)
        if last is not None:
            # Delivered: the drops it announced have reached the city; stop announcing them.
            self.clear_drop_report((None, None, last))
        return True

    def _remove_head(self):
        seq, size = self._items.pop(0)
        self._bytes -= size
        self._announcers.pop(seq, None)  # dropped unsent: what it announced stays pending
        atomic.remove_quietly(self._rec_path(seq))

    def _forget(self, seq):
        for i, it in enumerate(self._items):
            if it[0] == seq:
                self._bytes -= it[1]
                self._items.pop(i)
                return

    # -- drop reporting ----------------------------------------------------------------
    def drop_report(self):
        """(count, first_seq, last_seq) of drops not yet announced, or None."""
        if not self._runs:
            return None
        count = 0
        for r in self._runs:
            count += r[2]
        return (count, self._runs[0][0], max(r[1] for r in self._runs))

    def clear_drop_report(self, announced):
        """Forget the drops covered by `announced` (a tuple drop_report() returned)."""
        last = announced[2]
        keep = [r for r in self._runs if r[1] > last]
        if len(keep) != len(self._runs):
            self._runs = keep
            self._save_runs()

    def _add_run(self, first, last, count):
        self._runs.append([first, last, count])
        self._runs.sort()
        while len(self._runs) > MAX_RUNS:
            a = self._runs.pop(0)
            b = self._runs[0]
            self._runs[0] = [a[0], max(a[1], b[1]), a[2] + b[2]]

    def _save_runs(self):
        buf = bytearray(struct.pack(">q", self._drop_upto))
        for r in self._runs:
            buf += struct.pack(_RUN, r[0], r[1], r[2])
        atomic.write_file(self._path(DROP_FILE), bytes(buf))


def _seq_of(name):
    digits = name[: -len(REC)]
    if not digits or not digits.isdigit():
        return None
    return int(digits)


def _size_on_flash(path):
    return os.stat(path)[6]


def _decode_drops(raw):
    if len(raw) < 8 or (len(raw) - 8) % _RUN_SIZE:
        raise DecodeError("outbox drop report: %d bytes is not 8 + a whole number of runs" % len(raw))
    upto = struct.unpack(">q", raw[:8])[0]
    runs = []
    for i in range(8, len(raw), _RUN_SIZE):
        first, last, count = struct.unpack(_RUN, raw[i:i + _RUN_SIZE])
        runs.append([first, last, count])
    runs.sort()
    return upto, runs
