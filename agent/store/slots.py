"""Small state rewritten in place: a file of two fixed-size slots, written alternately.

A slot is MAGIC(4) | gen(8) | length(2) | crc32(4) | payload, all big-endian, the CRC over
gen, length and payload. A write goes to the slot that does not hold the newest value, in
place, then flush + fsync: a power cut tears at most the slot being written, and the other
still holds the previous value, so a reader always finds the last value written or the one
before it, never a mix. The file is created full size once (tmp + rename), and every later
write lands on blocks it already owns: a full disk (ext4, FAT, tmpfs) cannot fail it, and
littlefs rewrites only the slot's block.
"""
import binascii
import os
import struct

from agent.compat import MICROPYTHON, file_exists, write_chunks_atomic, zero_chunks

MAGIC = b"CMs1"
HEAD = 18  # MAGIC(4) gen(8) length(2) crc(4)


class SlotFile:
    """SlotFile(path, size): read() -> payload bytes or None; write(payload). size: bytes per slot."""

    def __init__(self, path, size):
        self.path = path
        self.size = size
        self.gen = 0
        self.newest = None  # index of the slot holding the newest valid value, or None
        self.found = 0  # valid slots found by the last read()
        self.torn = 0  # slots found neither valid nor blank (a write cut short, or damage)
        self._loaded = False

    def read(self):
        """The newest intact payload, or None if neither slot holds one (missing, torn, corrupt)."""
        best = None
        self.found = self.torn = 0
        self._loaded = True
        try:
            f = open(self.path, "rb")
        except OSError:
            self.newest = None
            return None
        try:
            for i in (0, 1):
                got = _read_slot(f, i * self.size, self.size)
                if got is None:
                    if not _blank(f, i * self.size, self.size):
                        self.torn += 1
                    continue
                self.found += 1
                if best is None or got[0] > best[0]:
                    best = (got[0], got[1], i)
        finally:
            f.close()
        if best is None:
            self.newest = None
            return None
        self.gen, self.newest = best[0], best[2]
        return best[1]

    def reserve(self):
        """Create the file full size, both slots blank, if it is missing (at `device init`, so a
        disk that fills up later cannot stop the first write). OSError if there is no room."""
        if not file_exists(self.path):
            self._create()

    def _create(self):
        write_chunks_atomic(self.path, zero_chunks(2 * self.size))  # leaves no .tmp behind on a full disk
        self.newest = None

    def write(self, payload, sync=True):
        """Store payload (bytes, at most size - 18) in the slot not holding the newest value;
        durably unless sync=False (for values whose loss is harmless: the previous one stands)."""
        if len(payload) > self.size - HEAD:
            raise ValueError("%s: %d bytes exceed the slot's %d" % (self.path, len(payload), self.size - HEAD))
        if not self._loaded:
            self.read()  # never write a generation below the one on file
        if not file_exists(self.path):
            self._create()
        gen = self.gen + 1
        body = struct.pack(">QH", gen, len(payload)) + payload
        rec = MAGIC + body[:10] + struct.pack(">I", binascii.crc32(body) & 0xFFFFFFFF) + payload
        slot = 0 if self.newest == 1 else 1 if self.newest == 0 else 0
        write_at(self.path, slot * self.size, rec, sync)
        self.gen, self.newest = gen, slot


def _read_slot(f, offset, size):
    """(gen, payload) of the slot at offset if it is intact, else None. Reads the header, then
    exactly the payload it announces: a board allocates what the value needs, not the slot."""
    f.seek(offset)
    head = f.read(HEAD)
    if len(head) < HEAD or head[:4] != MAGIC:
        return None
    gen, n = struct.unpack(">QH", head[4:14])
    if HEAD + n > size:
        return None
    payload = f.read(n)
    if len(payload) != n:
        return None
    crc = binascii.crc32(payload, binascii.crc32(head[4:14])) & 0xFFFFFFFF
    if crc != struct.unpack(">I", head[14:18])[0]:
        return None
    return gen, payload


def _blank(f, offset, size):
    """True if the slot at offset reads as zeros only (never written) or is missing."""
    f.seek(offset)
    left = size
    while left:
        b = f.read(min(left, 256))
        if not b:
            return True
        if b.count(b"\x00") != len(b):
            return False
        left -= len(b)
    return True


def write_at(path, offset, data, sync=True):
    """Overwrite len(data) bytes of an existing file at offset, then flush it (to storage if sync)."""
    with open(path, "r+b") as f:
        f.seek(offset)
        f.write(data)
        f.flush()
        if sync and not MICROPYTHON:
            os.fsync(f.fileno())
