"""The artefact being downloaded (portable): `ota/part`, written at its offset, with a running SHA-256.

    part = Part(path, size, sha256, off)   off: the offset persisted (0: a new download); the
                                           prefix already on flash is hashed again (resume)
    part.add(off, data) -> True if taken; raises Refused("bad_size") for a block that would go
                           past `size` or a short block that does not end there
    part.done            every byte is in
    part.check()         raises Refused("bad_digest") unless SHA-256 over exactly `size` bytes matches
    part.sync()          flush what was written (before its offset is persisted)

Memory: the hash state, and a read buffer of REHASH bytes while resuming. Blocks are written
from the buffer they arrived in; nothing is kept.
"""
import hashlib

from agent.compat import MICROPYTHON
from agent.ota.docs import Refused

BLOCK = 4096
REHASH = 1024


class Part:
    def __init__(self, path, size, sha256, off=0):
        self.path = path
        self.size = size
        self.sha256 = bytes(sha256)
        self.off = 0
        self._h = hashlib.sha256()
        self._f = None
        if off:
            self._resume(off)
        if self.off == 0:
            self._f = open(path, "wb")  # a new download: nothing of an older one is kept
        else:
            self._f = open(path, "r+b")
            self._f.seek(self.off)

    def _resume(self, off):
        """Hash the first off bytes again; a shorter file (a cut before its data reached flash)
        starts the download over."""
        buf = bytearray(REHASH)
        mv = memoryview(buf)
        done = 0
        try:
            with open(self.path, "rb") as f:
                while done < off:
                    want = off - done if off - done < REHASH else REHASH
                    n = f.readinto(mv[:want])
                    if not n:
                        break
                    self._h.update(mv[:n])
                    done += n
        except OSError:
            done = -1
        if done != off:
            self._h = hashlib.sha256()
            return
        self.off = off

    @property
    def done(self):
        return self.off == self.size

    def add(self, off, data):
        """Take the block at off if it is the next one; False for a duplicate or out of order."""
        n = len(data)
        if off >= self.size or off + n > self.size:
            raise Refused("bad_size", "a block at %d..%d is past the declared size %d" % (off, off + n, self.size))
        if off != self.off:
            return False
        if n < BLOCK and off + n != self.size:
            raise Refused("bad_size", "a short block (%d bytes) at %d before the end (%d)" % (n, off, self.size))
        self._f.write(data)
        self._h.update(data)
        self.off += n
        return True

    def sync(self):
        self._f.flush()
        if not MICROPYTHON:
            import os

            os.fsync(self._f.fileno())

    def check(self):
        if self.off != self.size:
            raise Refused("bad_size", "%d of %d bytes" % (self.off, self.size))
        if self._h.digest() != self.sha256:
            raise Refused("bad_digest", "the artefact's SHA-256 is not the release's")

    def close(self):
        if self._f is not None:
            try:
                self._f.close()
            except OSError:
                pass
            self._f = None


def remove(path):
    import os

    try:
        os.remove(path)
    except OSError:
        pass
