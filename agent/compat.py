"""The one place where CPython and MicroPython differ: other agent modules ask this one, never sys.implementation."""
import sys
import time as _time

MICROPYTHON = sys.implementation.name == "micropython"

# Bits per window of the P-256 fixed-base table (agent/crypto/p256.py): 3 keeps the table at
# 22 KB for a board's small heap; 4 is 25% faster for 33 KB, fine where RAM is plentiful.
ECC_TABLE_BITS = 3 if MICROPYTHON else 4

try:
    from micropython import const  # noqa: F401
except ImportError:

    def const(x):
        return x


def urandom(n):
    """n bytes from the platform CSPRNG (os.urandom on both runtimes; looked up at call time)."""
    import os

    return os.urandom(n)


if MICROPYTHON:
    ticks_ms = _time.ticks_ms
    ticks_diff = _time.ticks_diff
    _mono = [0, None]  # milliseconds so far, last raw tick

    def monotonic_ms():
        """Milliseconds since start, never wrapping (a board's ticks_ms wraps after days).
        Call it at least once per half wrap period (days): the agent's loop does, every step."""
        t = _time.ticks_ms()
        if _mono[1] is not None:
            _mono[0] += _time.ticks_diff(t, _mono[1])
        _mono[1] = t
        return _mono[0]
else:

    def ticks_ms():
        return int(_time.monotonic() * 1000)

    def ticks_diff(a, b):
        return a - b

    def monotonic_ms():
        return int(_time.monotonic() * 1000)


def write_file_atomic(path, data, private=False):
    """Write data to path so that a power cut leaves either the old file or the new one.

    Writes path + ".tmp", flushes it to storage, then renames it over path (rename is atomic
    on POSIX filesystems and on MicroPython's littlefs). private=True makes the file readable
    by its owner only where the platform has permissions (mode 0600 on Linux).
    """
    write_chunks_atomic(path, (data,), private)


def write_chunks_atomic(path, chunks, private=False):
    """write_file_atomic of the concatenated chunks (an iterable of bytes-like): a large file
    is written without ever holding it in RAM whole."""
    import os

    tmp = path + ".tmp"
    try:
        _write_tmp(tmp, chunks, private)
    except OSError:
        try:
            os.remove(tmp)  # a full disk leaves no half-written file behind
        except OSError:
            pass
        raise
    try:
        os.rename(tmp, path)
    except OSError:
        # FAT cannot rename onto an existing file: remove it, then rename. A cut in between
        # leaves only the complete tmp, which the readers accept (atomic.read_file, the ledger).
        if not file_exists(path):
            raise
        os.remove(path)
        os.rename(tmp, path)
    if not MICROPYTHON:
        _fsync_dir(path)


def _write_tmp(tmp, chunks, private):
    import os

    if MICROPYTHON:
        with open(tmp, "wb") as f:
            for data in chunks:
                f.write(data)
        return
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600 if private else 0o644)
    try:
        if private:
            os.fchmod(fd, 0o600)
        for data in chunks:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
        os.fsync(fd)
    finally:
        os.close(fd)


def zero_chunks(size, chunk=256):
    """size zero bytes as pieces of at most chunk bytes (for write_chunks_atomic)."""
    zeros = memoryview(bytes(chunk))
    while size > 0:
        yield zeros[:min(size, chunk)]
        size -= chunk


def _fsync_dir(path):
    import os

    d = os.path.dirname(path) or "."
    try:
        fd = os.open(d, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def file_exists(path):
    """True if path exists (MicroPython has no os.path)."""
    import os

    try:
        os.stat(path)
        return True
    except OSError:
        return False

