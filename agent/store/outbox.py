"""The outbox: a bounded, crash-safe, oldest-first queue of signed summaries on flash.

Records live in a ring of preallocated segment files (`seg000` ...), each `segment` bytes
(4 KiB: one ext4 block, one littlefs/rp2 erase block; the filesystem's block size if larger).
The files are created full size once, and every later write lands in place on blocks they
already own, so the bound is what the queue really takes on disk, and a full disk cannot stop
a put. Within a segment records are packed one after another:

    magic "CR"(2) | flags(1) | 0(1) | length(2) | seq(8) | announced(8) | crc32(data)(4)
    | crc32(header without flags)(4) | data

`announced` is the last dropped seq this summary announces (0: none). `flags` is rewritten in
place: 0 queued, 1 acknowledged, 2 dead (found torn or corrupt, counted as dropped). Seqs only
grow, so a record left over from an earlier lap of the ring has a smaller seq than every live
one, and a start-up scan tells them apart without any per-record bookkeeping.

`index` (agent/store/slots.py) holds the head seq (every seq below it was acknowledged or
dropped) and the pending drop runs. A drop is one index write: the head moves past the
victims and the runs grow in the same atomic step, so a loss is never silent. Summaries
announce `drop_report()`; the runs stay pending until a summary that announced them is
acknowledged by the broker. RAM holds a fixed handful of numbers, never one object per record.

With receipts (agent/runtime/receipts.py) the PUBACK retires nothing: `peek_after(seq)` gives the
next record to send without re-reading the ones before it, and `retire(lo, hi)` retires what the
city's receipt covers (then the drops those records announced are known to the city).
"""
import binascii
import os
import struct

from agent.errors import AgentError, DecodeError
from agent.store import atomic, drops
from agent.store.slots import SlotFile, write_at

SEGMENT = 4096
HDR = 30
OVERHEAD = HDR  # on-flash bytes per record beyond its data
_HFMT = ">2sBBHQQI"  # magic, flags, 0, length, seq, announced, data crc (26 bytes) + header crc
_MAGIC = b"CR"
QUEUED, ACKED, DEAD = 0, 1, 2
INDEX_SLOT = 256
_CHUNK = 256  # data is CRC-checked in chunks of this many bytes


def _seg_name(i):
    return "seg%03d" % i


def _crc(buf, crc=0):
    return binascii.crc32(buf, crc) & 0xFFFFFFFF


def _hcrc(head26):
    return _crc(head26[3:], _crc(head26[:2]))


def block_size(path):
    """The filesystem's allocation unit under path (4096 if it cannot be asked)."""
    try:
        st = os.statvfs(path)
        return st[1] or st[0] or SEGMENT
    except (OSError, AttributeError):
        return SEGMENT


class Outbox:
    """Outbox(dirpath, max_bytes, max_count, segment=None): see the module docstring.

    max_bytes: disk taken by the ring (rounded down to whole segments, at least two);
    max_count: records queued at most. segment: bytes per segment file (default: 4096, or the
    filesystem's block size if larger). An existing ring keeps the geometry it was made with.
    """

    def __init__(self, dirpath, max_bytes=65536, max_count=256, segment=None):
        self.dir = dirpath.rstrip("/") or "/"
        try:
            atomic.makedirs(self.dir)
        except OSError as e:
            if not _no_space(e):
                raise
        seg = segment or max(SEGMENT, block_size(self.dir))
        if max_count < 1 or max_bytes < 2 * seg:
            raise AgentError("outbox: max_count must be >= 1 and max_bytes >= two segments (%d)" % (2 * seg))
        self.seg, self.nseg = seg, max_bytes // seg
        self.max_bytes = self.seg * self.nseg
        self.max_count = max_count
        self._index = SlotFile(self._path("index"), INDEX_SLOT)
        self.head_seq = 0  # every seq below this is gone (acknowledged or dropped)
        self._drops = drops.DropRuns()  # dropped and not yet announced to the city
        self._head = None  # (segment, offset, seq) of the oldest record, None when empty
        self._tail = (0, 0)  # where the next record goes
        self._last = -1  # highest seq ever put or seen
        self.depth = 0  # records queued
        self.bytes = 0  # on-flash bytes of queued records
        self.quarantined = []  # seqs found torn or corrupt since open (the last 8), counted as drops
        self.torn = 0  # records found torn or corrupt at start-up
        self.write_errors = 0  # puts that failed (I/O error): counted as drops
        self.ready = False  # the segment files exist
        self._cursor = None  # (segment, offset, seq) of the record peek_after() returned last
        self.saves = 0  # index writes that succeeded: each holds every drop run known in RAM
        self._open()

    # -- files ---------------------------------------------------------------------------
    def _path(self, name):
        return self.dir + "/" + name

    def reserve(self):
        """Make the ring and its index now (at `device init`); OSError (e.g. no space) if it
        cannot be, leaving no half-made file behind. A no-op once the ring is whole."""
        self._ensure_ring()

    def _ensure_ring(self):
        if self.ready:
            return
        atomic.makedirs(self.dir)
        for i in range(self.nseg):  # nothing is allocated when the ring is whole (every start but the first)
            p = self._path(_seg_name(i))
            if not atomic.exists(p) or os.stat(p)[6] != self.seg:
                _create(p, self.seg)
        if self._index.read() is None:
            self._save()  # the ring is whole: from now on its files say its geometry
        self.ready = True

    def _header(self, s, o):
        """(flags, length, seq, announced, data crc) of an intact header at (s, o), else None."""
        if o + HDR > self.seg:
            return None
        try:
            with open(self._path(_seg_name(s)), "rb") as f:
                f.seek(o)
                b = f.read(HDR)
        except OSError:
            return None
        if len(b) < HDR or b[:2] != _MAGIC or _hcrc(b[:26]) != struct.unpack(">I", b[26:30])[0]:
            return None
        _, flags, _, n, seq, ann, dcrc = struct.unpack(_HFMT, b[:26])
        if o + HDR + n > self.seg:
            return None
        return flags, n, seq, ann, dcrc

    def _data(self, s, o, h, check_only=False):
        """The record's data (or True when check_only), or None if it fails its CRC."""
        try:
            with open(self._path(_seg_name(s)), "rb") as f:
                f.seek(o + HDR)
                if not check_only:
                    data = f.read(h[1])
                    return data if len(data) == h[1] and _crc(data) == h[4] else None
                crc, left, buf = 0, h[1], bytearray(_CHUNK)
                mv = memoryview(buf)
                while left:
                    k = f.readinto(mv[:min(left, _CHUNK)])
                    if not k:
                        return None
                    crc = _crc(mv[:k], crc)
                    left -= k
                return True if crc == h[4] else None
        except OSError:
            return None

    def _set_flag(self, s, o, flag, sync=True):
        try:
            write_at(self._path(_seg_name(s)), o + 2, bytes((flag,)), sync)
        except OSError:
            self.write_errors += 1  # the index still moves on; at worst a record is sent again

    # -- start-up ------------------------------------------------------------------------
    def _open(self):
        try:
            names = os.listdir(self.dir)
        except OSError as e:
            if not _no_space(e) and atomic.exists(self.dir):
                raise  # damaged state (a file where the folder should be): the caller says so
            names = []
        segs = [n for n in names if n.startswith("seg") and n[3:].isdigit()]
        if segs and "index" in names:  # a finished ring keeps its geometry (else: finish making it)
            self.nseg = max(2, len(segs))
            self.seg = os.stat(self._path(_seg_name(0)))[6] or self.seg
            self.max_bytes = self.seg * self.nseg
        raw = self._index.read()
        if raw is not None:
            try:
                self.head_seq, self._drops = drops.decode(raw)
            except DecodeError:
                pass
        try:
            self._ensure_ring()
        except OSError:
            self.write_errors += 1  # no room for the ring yet: puts count as drops until there is
            return
        self._scan()
        if any(n.endswith(".rec") or n == "dropped" for n in names):
            self._migrate(names)

    def _scan(self):
        firsts = []
        for i in range(self.nseg):
            h = self._header(i, 0)
            firsts.append(None if h is None else h[2])
        tail = -1
        for i in range(self.nseg):
            if firsts[i] is not None and (tail < 0 or firsts[i] > firsts[tail]):
                tail = i
        if tail < 0:
            return
        start = tail  # walk back over the chain of earlier segments that may still hold live records
        for _ in range(self.nseg - 1):
            p = (start - 1) % self.nseg
            if firsts[p] is None or firsts[p] >= firsts[start] or firsts[start] <= self.head_seq:
                break
            start = p
        del firsts
        s, o, prev, dirty = start, 0, -1, False
        while True:
            h = self._header(s, o)
            if h is None or h[2] <= prev:
                if s == tail:
                    break
                s, o = (s + 1) % self.nseg, 0
                continue
            flags, n, seq = h[0], h[1], h[2]
            prev = self._last = seq
            if flags == QUEUED and seq >= self.head_seq:
                if self._data(s, o, h, check_only=True):
                    if self._head is None:
                        self._head = (s, o, seq)
                    self.depth += 1
                    self.bytes += HDR + n
                else:  # torn by a power cut, or corrupt: its summary is lost, and said so
                    self.torn += 1
                    self._note_bad(seq)
                    dirty |= self._drops.add(seq, seq, 1)
                    self._set_flag(s, o, DEAD)
            o += HDR + n
        self._tail = (s, o)
        if self._head is not None:
            self.head_seq = self._head[2]
        if dirty:
            self._save()
        self._trim_count()

    def _migrate(self, names):
        # The queue of an agent from before the ring: one CRC-framed file per record.
        try:
            raw = atomic.read_file(self._path("dropped"), "outbox drop report")
            if raw and len(raw) >= 8:
                for r in drops.legacy_runs(raw):
                    self._drops.add(r[0], r[1], r[2])
                self._save()
        except (DecodeError, OSError):
            pass
        recs = sorted(int(n[:-4]) for n in names if n.endswith(".rec") and n[:-4].isdigit())
        for seq in recs:
            try:
                payload = atomic.read_file(self._path("%d.rec" % seq))
                if payload and seq > self._last:
                    self.put(seq, payload[8:])
            except (DecodeError, OSError):
                pass
        for n in names:
            if n.endswith(".rec") or n.endswith(".tmp") or n.endswith(".bad") or n == "dropped":
                atomic.remove_quietly(self._path(n))

    # -- walking the queue ---------------------------------------------------------------
    def _records(self):
        """(segment, offset, header) of every record from the head to the tail, oldest first."""
        if self._head is None:
            return
        yield from self._records_from(self._head[0], self._head[1], self._head[2] - 1)

    def _live(self):
        for s, o, h in self._records():
            if h[0] == QUEUED:
                yield s, o, h

    def peek(self, n=1, skip=()):
        """Up to n records, oldest first, as [(seq, data)], leaving out (and not reading) the
        seqs in `skip`. A record found corrupt now is marked dead, counted as dropped and skipped."""
        out = []
        for s, o, h in self._live():
            if len(out) >= n:
                break
            if h[2] in skip:
                continue
            data = self._data(s, o, h)
            if data is None:
                self._kill(s, o, h)
                continue
            out.append((h[2], data))
        return out

    def __iter__(self):
        for s, o, h in self._live():
            data = self._data(s, o, h)
            if data is not None:
                yield h[2], data

    def peek_seq(self, seq):
        """[(seq, data)] for one queued seq, or [] if it is gone (acked, dropped, corrupt)."""
        for s, o, h in self._live():
            if h[2] == seq:
                data = self._data(s, o, h)
                return [] if data is None else [(seq, data)]
            if h[2] > seq:
                break
        return []

    def seqs(self):
        """Queued seqs, oldest first (a list: for tools and tests, not the agent's loop)."""
        return [h[2] for _, _, h in self._live()]

    def contains(self, seq):
        return bool(self.peek_seq(seq))

    @property
    def last_seq(self):
        """The highest seq this outbox has held (0 if none)."""
        return max(self._last, 0)

    # -- writing -------------------------------------------------------------------------
    def put(self, seq, data, announced=None):
        """Queue data (bytes) under seq; return the list of seqs dropped, this one included
        if it could not be written (an I/O error: counted as a drop, never raised).

        seq must exceed every seq this outbox has seen. When put returns, the record is on
        flash. announced: a drop_report() tuple that `data` announces; those drops stay
        pending (later records announce them again) until this record is acknowledged.
        """
        if seq <= self._last:
            raise AgentError("outbox: seq %d is not above the last seq %d" % (seq, self._last))
        size = HDR + len(data)
        if size > self.seg:
            raise AgentError("outbox: a record of %d bytes exceeds the %d-byte segment" % (size, self.seg))
        self._last = seq
        try:
            self._ensure_ring()
            dropped = self._make_room(size)
            s, o = self._tail
            if o + size > self.seg:
                s, o = (s + 1) % self.nseg, 0
            ann = announced[2] if announced else 0
            head = struct.pack(_HFMT, _MAGIC, QUEUED, 0, len(data), seq, ann, _crc(data))
            write_at(self._path(_seg_name(s)), o, head + struct.pack(">I", _hcrc(head)) + data)
        except OSError:
            self.write_errors += 1
            self._note_bad(seq)
            if self._drops.add(seq, seq, 1):
                self._save(quiet=True)
            return [seq]
        self._tail = (s, o + size)
        if self._head is None:
            self._head = (s, o, seq)
        self.depth += 1
        self.bytes += size
        return dropped

    def _make_room(self, size):
        victims = []
        nxt = None
        s, o = self._tail
        if o + size > self.seg:
            nxt = (s + 1) % self.nseg  # the record goes to the start of the next segment
        need = self.depth + 1 - self.max_count
        for vs, vo, h in self._live():
            if not (need > 0 or (nxt is not None and vs == nxt)):
                break
            victims.append((h[2], HDR + h[1]))
            need -= 1
        if not victims:
            return []
        self._drops.add(victims[0][0], victims[-1][0], len(victims))
        self._advance(victims[-1][0] + 1)
        for v in victims:
            self.depth -= 1
            self.bytes -= v[1]
        self._save()  # head and drop runs move together: one atomic write
        if nxt is not None and self._head is not None and self._head[0] == nxt:
            raise AgentError("outbox: segment %d still holds records after dropping" % nxt)
        return [v[0] for v in victims]

    def _advance(self, head_seq):
        """Move the head to the first queued record at or after head_seq (RAM only)."""
        self.head_seq = head_seq
        found = None
        for s, o, h in self._records():
            if h[2] >= head_seq and h[0] == QUEUED:
                found = (s, o, h[2])
                break
        self._head = found
        if found is not None:
            self.head_seq = found[2]

    def ack(self, seq):
        """The broker acknowledged seq: retire it. False if it was not queued (dropped earlier)."""
        for s, o, h in self._live():
            if h[2] > seq:
                break
            if h[2] != seq:
                continue
            # Retired in place too, so a lost index cannot bring it back. Neither write is synced:
            # losing an acknowledgement only sends the summary again (the city drops the copy).
            self._set_flag(s, o, ACKED, sync=False)
            if (s, o) == self._head[:2]:
                self._advance(seq + 1)
            self.depth -= 1
            self.bytes -= HDR + h[1]
            if h[3]:  # delivered: the drops it announced reached the city
                self._drops.clear(h[3])
            self._save(quiet=True, sync=False)
            return True
        return False

    # -- receipts (agent/runtime/receipts.py): kept after the PUBACK until the city has stored it ----
    def peek_after(self, seq, skip=()):
        """[(seq, data)] of the oldest queued record above seq and not in skip, or [].

        Resumes from where the previous call stopped when asked for the seq it returned, so a
        flush of the whole queue reads each header once, not once per record before it."""
        cur = self._cursor if self._head is not None else None
        if cur is not None and cur[2] == seq:
            h = self._header(cur[0], cur[1])
            walk = self._records_from(cur[0], cur[1], seq - 1) if h is not None and h[2] == seq else self._records()
        else:
            walk = self._records()
        for s, o, h in walk:
            if h[2] <= seq or h[0] != QUEUED or h[2] in skip:
                continue
            data = self._data(s, o, h)
            if data is None:
                self._kill(s, o, h)
                continue
            self._cursor = (s, o, h[2])
            return [(h[2], data)]
        return []

    def retire(self, lo, hi):
        """A receipt says every seq in [lo, hi] is stored: retire those still queued; -> how many."""
        n = 0
        head = self._head
        for s, o, h in self._live():
            if h[2] > hi:
                break
            if h[2] < lo:
                continue
            self._set_flag(s, o, ACKED, sync=False)
            self.depth -= 1
            self.bytes -= HDR + h[1]
            if h[3]:  # stored: the drops it announced reached the city
                self._drops.clear(h[3])
            n += 1
        if n:
            if head is not None and lo <= head[2] <= hi:
                self._advance(head[2] + 1)
            self._save(quiet=True, sync=False)
        return n

    def _records_from(self, s, o, prev):
        """(segment, offset, header) of every record from (s, o) to the tail with a seq above prev."""
        hops = 0
        while (s, o) != self._tail and hops <= self.nseg:
            h = self._header(s, o)
            if h is not None and h[2] > prev:
                yield s, o, h
                prev = h[2]
                o += HDR + h[1]
            else:
                s, o, hops = (s + 1) % self.nseg, 0, hops + 1

    def _kill(self, s, o, h):
        self._note_bad(h[2])
        self._drops.add(h[2], h[2], 1)
        self._set_flag(s, o, DEAD)
        self.depth -= 1
        self.bytes -= HDR + h[1]
        if self._head is not None and (s, o) == self._head[:2]:
            self._advance(h[2] + 1)
        self._save(quiet=True)

    def _trim_count(self):
        if self.depth > self.max_count:  # the bound may have shrunk since the last run
            victims = [(h[2], HDR + h[1]) for _, _, h in self._live()][: self.depth - self.max_count]
            self._drops.add(victims[0][0], victims[-1][0], len(victims))
            self._advance(victims[-1][0] + 1)
            self._save(quiet=True)
            for v in victims:
                self.depth -= 1
                self.bytes -= v[1]

    def _note_bad(self, seq):
        self.quarantined.append(seq)
        if len(self.quarantined) > 8:
            self.quarantined.pop(0)

    # -- drop reporting ------------------------------------------------------------------
    def drop_report(self):
        """(count, first_seq, last_seq) of drops not yet announced, or None."""
        return self._drops.report()

    def adopt_drops(self, first, last, count):
        """Drops recorded elsewhere (the sequence file's unqueued run) become pending here; True
        once the index holds them."""
        self._drops.add(first, last, count)
        before = self.saves
        self._save(quiet=True)
        return self.saves > before

    def clear_drop_report(self, announced):
        """Forget the drops covered by `announced` (a tuple drop_report() returned)."""
        if self._drops.clear(announced[2]):
            self._save(quiet=True)

    def _save(self, quiet=False, sync=True):
        try:
            self._index.write(self._drops.encode(self.head_seq), sync)
            self.saves += 1
        except OSError:
            self.write_errors += 1
            if not quiet:
                raise


def _create(path, size):
    """A segment file of size zero bytes, written a chunk at a time (no size-long buffer in RAM)
    and renamed into place: a cut leaves the old file or none, never a short one, and a full
    disk leaves no temporary file behind."""
    from agent.compat import write_chunks_atomic, zero_chunks

    write_chunks_atomic(path, zero_chunks(size))


def _no_space(e):
    return bool(e.args) and e.args[0] in (28, 122)  # ENOSPC, EDQUOT: args[0] is the errno on both runtimes
