"""Sequence numbers that strictly increase across reboots and survive losing their own file.

`seq` (a two-slot file, agent/store/slots.py) holds the end of the reserved block. Before
handing out the first number of a block we persist its end; after a reboot we start there.
So no number is handed out twice, at most `block - 1` are skipped per reboot, and the flash
sees one in-place write per block.

If both slots are lost (deleted, truncated, corrupt), two other records bound what the city
may have seen: the device's progress file (the last seq it queued, written every window) and
the outbox (the highest seq it holds); the caller passes them as `floor` and `known`:
- known=True (the progress file is intact): numbering goes on from the floor (`lost` = 1);
- known=False: nothing on the device can be trusted to say how far numbering went, so it
  starts a new *era* at `now_s * 2**30` (`lost` = 2). An era begun at a later time is above
  every number of an earlier one (an era holds 2**30 numbers: a billion windows), so the
  numbers stay strictly increasing as long as the clock that starts an era is valid, which
  the agent ensures (it closes no window before it is). Until then next() refuses to guess.
See docs/wire-format.md ("seq").

The same file is the fixed, pre-reserved place for summaries that could not be queued while
the outbox could not record their loss (a disk full before the outbox ring was made):
`unqueued` = [first, last, count], written in place beside the block end, handed to the
outbox at the next start and cleared once the outbox's index holds it. So even that loss
reaches the city as a `gap`.
"""
import struct

from agent.errors import AgentError, DecodeError
from agent.store import atomic
from agent.store.slots import SlotFile

ERA_BITS = 30
ERA_MIN_S = 1704067200  # 2024-01-01: a clock earlier than this is not valid


def era_start(now_s):
    """The first seq of the era begun at Unix time now_s."""
    return int(now_s) << ERA_BITS


class SeqAllocator:
    """SeqAllocator(path, block=64, floor=1, known=True).next(now_s) -> int.

    floor: the lowest acceptable next number (the outbox's and the progress file's last seq + 1).
    After construction: `lost` is 0 (the file was intact), 1 (lost, continued from a trusted
    floor) or 2 (lost, a new era starts at the first next()).
    """

    def __init__(self, path, block=64, floor=1, known=True):
        if block < 1:
            raise ValueError("block must be >= 1")
        self.block = block
        self._file = SlotFile(path, 64)
        stored = None
        self.unqueued = None  # [first, last, count] of summaries dropped before the outbox could say so
        raw = self._file.read()
        if raw is not None and len(raw) in (8, 28):
            stored = struct.unpack(">Q", raw[:8])[0]
            if len(raw) == 28:
                self.unqueued = list(struct.unpack(">QQI", raw[8:]))
        elif raw is None:
            stored = _legacy(path)
        self.lost = 0 if stored is not None else (1 if known else 2)
        self._next = max(stored or 0, floor)
        self.first = self._next  # the first number this boot may hand out (era: set by next())
        self._limit = self._next  # nothing reserved yet in this boot
        self.write_errors = 0

    def next(self, now_s=None):
        """The next sequence number (an int strictly above every one handed out before).
        now_s: valid Unix time; required for the first number after the state was lost."""
        if self.lost == 2 and self._limit == self.first:
            if now_s is None or now_s < ERA_MIN_S:
                raise AgentError("sequence state lost: a new era needs a valid clock (now %r)" % (now_s,))
            if era_start(now_s) > self._next:
                self._next = self.first = self._limit = era_start(now_s)
        if self._next >= self._limit:
            limit = self._next + self.block
            try:
                self._file.write(self._payload(limit))
            except OSError:
                # Only (re)creating the file can fail (a full disk): the number is still safe to
                # use, because the outbox and the progress file, both written in place, record
                # every number that leaves and are the floor at the next start.
                self.write_errors += 1
            self._limit = limit
        n = self._next
        self._next += 1
        return n

    def note_unqueued(self, seq):
        """seq could not be queued, and the outbox could not record it either: keep it here."""
        u = self.unqueued
        self.unqueued = [seq, seq, 1] if u is None else [min(u[0], seq), max(u[1], seq), u[2] + 1]
        return self._rewrite()

    def clear_unqueued(self):
        """The outbox's index now holds the unqueued run: forget it here."""
        if self.unqueued is not None:
            self.unqueued = None
            self._rewrite()

    def _payload(self, limit):
        u = self.unqueued
        return struct.pack(">Q", limit) + (struct.pack(">QQI", u[0], u[1], u[2]) if u else b"")

    def _rewrite(self):
        try:
            self._file.write(self._payload(max(self._limit, self._next)))
            return True
        except OSError:
            self.write_errors += 1
            return False

    def peek(self):
        """The number next() will return, without reserving it (before an era starts: its floor)."""
        return self._next


def create(path):
    """The sequence file of a device that has never run: numbering starts at 1."""
    SlotFile(path, 64).write(struct.pack(">Q", 1))


def _legacy(path):
    # The reserved block's end as agents before the two-slot file wrote it (a CRC frame).
    try:
        with open(path, "rb") as f:
            buf = f.read(64)
        raw = atomic.unframe(buf, "sequence file")
        return struct.unpack(">Q", raw)[0] if len(raw) == 8 else None
    except (OSError, DecodeError):
        return None
