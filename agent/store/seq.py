"""Sequence numbers that strictly increase across reboots, with one flash write per block.

The file holds the end of the reserved block (a CRC-framed 8-byte big-endian integer,
replaced atomically). Before handing out the first number of a block we persist its end;
after a reboot we start at the persisted end. So no number is ever handed out twice, at
most `block - 1` numbers are skipped per reboot, and the flash sees one write per block.
"""
import struct

from agent.errors import DecodeError
from agent.store import atomic


class SeqAllocator:
    """SeqAllocator(path, block=64, floor=1).next() -> int.

    floor: the lowest acceptable next number (e.g. the outbox's highest seq + 1), a guard
    should the file ever be lost or found corrupt (then `recovered` is False and the
    corrupt file is kept as `path.bad`).
    """

    def __init__(self, path, block=64, floor=1):
        if block < 1:
            raise ValueError("block must be >= 1")
        self.path = path
        self.block = block
        self.recovered = True
        stored = None
        try:
            raw = atomic.read_file(path, "sequence file")
            if raw is not None:
                if len(raw) != 8:
                    raise DecodeError("sequence file: %d bytes, expected 8" % len(raw))
                stored = struct.unpack(">Q", raw)[0]
        except DecodeError:
            self.recovered = False
            try:
                import os

                os.rename(path, path + ".bad")
            except OSError:
                pass
        self._next = max(stored or 0, floor)
        self.first = self._next  # the first number this boot may hand out
        self._limit = self._next  # nothing reserved yet in this boot

    def next(self):
        """The next sequence number (an int strictly above every one handed out before)."""
        if self._next >= self._limit:
            limit = self._next + self.block
            atomic.write_file(self.path, struct.pack(">Q", limit))
            self._limit = limit
        n = self._next
        self._next += 1
        return n

    def peek(self):
        """The number next() will return, without reserving it."""
        return self._next
