"""The signing table on flash: written once, then read a row at a time (portable edge).

p256's fixed-base table (86 rows of 256 bytes at W=3) is public data, the same on every
device: multiples of the curve's generator. Kept in RAM it is the largest thing a board's
agent holds (25.6 KB live on the 64-bit unix port). On flash it costs one 256-byte buffer:
a signature reads each row once, in order (86 reads of 256 bytes, a few ms of flash).

File layout: MAGIC, W (1 byte), the rows, then SHA-256 of everything before it. The hash is
checked when the file is opened (a torn write or a flipped bit means a rebuild, never a
wrong signature); the file is written beside its place and renamed in.
"""
import hashlib
import os

from agent.crypto import p256

MAGIC = b"CMT1"
_HEAD = len(MAGIC) + 1
_CHUNK = 256


class FlashTable:
    """rows[i] for p256.use_table(): row i read from the open file into one reused buffer."""

    def __init__(self, f):
        self._f = f
        self._buf = bytearray(p256.ROW_BYTES)

    def __getitem__(self, i):
        self._f.seek(_HEAD + i * p256.ROW_BYTES)
        if self._f.readinto(self._buf) != p256.ROW_BYTES:
            raise OSError("signing table: short read")
        return self._buf

    def close(self):
        self._f.close()


def _head():
    # MAGIC and W (from the row size: 2^(W-1) points of 64 bytes), so a table of another W is rebuilt
    n, w = p256.ROW_BYTES // 64, 1
    while n > 1:
        n >>= 1
        w += 1
    return MAGIC + bytes((w,))


def _valid(path):
    """True if path holds this build's table with a matching hash."""
    try:
        f = open(path, "rb")
    except OSError:
        return False
    try:
        if f.read(_HEAD) != _head():
            return False
        h = hashlib.sha256(_head())
        buf = bytearray(_CHUNK)
        left = p256.WINDOWS * p256.ROW_BYTES
        while left:
            n = f.readinto(buf)
            if not n:
                return False
            n = min(n, left)
            h.update(buf if n == _CHUNK else buf[:n])
            left -= n
        return f.read(33) == h.digest()
    finally:
        f.close()


def write(path):
    """Build the table and write it to path (beside it first, then renamed in). One row in RAM."""
    tmp = path + ".tmp"
    head = _head()
    h = hashlib.sha256(head)
    with open(tmp, "wb") as f:
        f.write(head)
        for row in p256.table_rows():
            f.write(row)
            h.update(row)
        f.write(h.digest())
    try:
        os.rename(tmp, path)
    except OSError:
        # FAT cannot rename onto an existing file (a table that failed its check)
        os.remove(path)
        os.rename(tmp, path)


def open_table(path):
    """A FlashTable over path, written first if it is missing or fails its hash check."""
    if not _valid(path):
        write(path)
    return FlashTable(open(path, "rb"))
