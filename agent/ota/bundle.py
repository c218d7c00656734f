"""The bundle: the archive a release of kind "agent" carries, for the Pi and for boards (pure).

    b"CMBUNDLE1\\n"
    then per file: u16 BE path length, path (UTF-8, relative, '/'-separated), u32 BE size, data
    then u16 0 (the end), and nothing after.

A path is at most MAX_PATH bytes, has no empty, "." or ".." part and does not start with "/".
unpack() streams: it holds one buffer of at most CHUNK bytes, so a board can unpack into its
second slot with the heap it has. The release's signed SHA-256 covers the bundle's bytes, and
the digest is checked before unpack() runs: unpack() still refuses anything malformed (a
release key can be wrong too), naming what and where.
"""
from agent.errors import DecodeError

MAGIC = b"CMBUNDLE1\n"
MAX_PATH = 200
MAX_FILES = 1024
CHUNK = 4096


def _check_path(path):
    if not path or len(path) > MAX_PATH or path[0] == "/" or "\\" in path or "\x00" in path:
        raise DecodeError("bundle: bad path %r" % path)
    for part in path.split("/"):
        if part in ("", ".", ".."):
            raise DecodeError("bundle: bad path %r" % path)


def pack(files):
    """The bundle's bytes from [(path, data)], in the order given (host side)."""
    out = [MAGIC]
    seen = set()
    for path, data in files:
        _check_path(path)
        if path in seen:
            raise DecodeError("bundle: %r twice" % path)
        seen.add(path)
        p = path.encode()
        out += [len(p).to_bytes(2, "big"), p, len(data).to_bytes(4, "big"), bytes(data)]
    out.append(b"\x00\x00")
    return b"".join(out)


def _exact(read, n, what):
    b = read(n)
    if b is None or len(b) != n:
        raise DecodeError("bundle: truncated in %s" % what)
    return b


def unpack(read, open_file, limit=None, chunk=CHUNK):
    """Stream a bundle from read(n) -> bytes into files: open_file(path) -> a writable file (its
    folders are the caller's business); each is closed here. limit: the bytes the bundle may
    take in all (the release's size). chunk: the largest read (a board with a cut-up heap asks
    less). Returns [(path, size)]; DecodeError on anything malformed."""
    if _exact(read, len(MAGIC), "the header") != MAGIC:
        raise DecodeError("bundle: not a civicmote bundle (header)")
    used = len(MAGIC)
    out = []
    while True:
        n = int.from_bytes(_exact(read, 2, "a path length"), "big")
        used += 2
        if limit is not None and used > limit:
            raise DecodeError("bundle: runs past the declared size")
        if n == 0:
            break
        if n > MAX_PATH or len(out) >= MAX_FILES:
            raise DecodeError("bundle: more than %d files or a path over %d bytes" % (MAX_FILES, MAX_PATH))
        try:
            path = _exact(read, n, "a path").decode()
        except UnicodeError:
            raise DecodeError("bundle: a path is not UTF-8")
        _check_path(path)
        size = int.from_bytes(_exact(read, 4, path), "big")
        used += n + 4 + size
        if limit is not None and used > limit:
            raise DecodeError("bundle: %s runs past the declared size" % path)
        f = open_file(path)
        try:
            left = size
            while left:
                b = _exact(read, min(chunk, left), path)
                f.write(b)
                left -= len(b)
        finally:
            f.close()
        out.append((path, size))
    if read(1):
        raise DecodeError("bundle: bytes after the end")
    return out
