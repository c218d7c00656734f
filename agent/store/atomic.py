"""Framed files replaced atomically: tmp file + fsync + rename, CRC-32 over the payload.

A frame is MAGIC(4) | length(4, big-endian) | crc32(4, big-endian, of the payload) | payload.
The rename is atomic on littlefs and POSIX, so a reader sees the old file or the new one,
never a mix; the CRC and length catch what the medium itself gets wrong. On FAT, where a
rename cannot replace an existing file, we remove then rename, and `read_file` falls back
to a complete `.tmp` left by a cut between the two.
"""
import binascii
import os
import struct

from agent.compat import file_exists, write_file_atomic
from agent.errors import DecodeError

MAGIC = b"CMf1"
HEADER = 12
TMP = ".tmp"


def frame(payload):
    """The bytes written to flash for payload (bytes)."""
    crc = binascii.crc32(payload) & 0xFFFFFFFF
    return MAGIC + struct.pack(">II", len(payload), crc) + payload


def unframe(buf, what):
    """The payload inside buf; DecodeError naming `what` if the frame is torn or corrupt."""
    if len(buf) < HEADER:
        raise DecodeError("%s: %d bytes is shorter than the %d-byte header (torn write)" % (what, len(buf), HEADER))
    if buf[:4] != MAGIC:
        raise DecodeError("%s: bad magic %r" % (what, bytes(buf[:4])))
    length, crc = struct.unpack(">II", buf[4:HEADER])
    if length != len(buf) - HEADER:
        raise DecodeError("%s: header says %d payload bytes, file holds %d (torn write)"
                          % (what, length, len(buf) - HEADER))
    payload = bytes(buf[HEADER:])
    if binascii.crc32(payload) & 0xFFFFFFFF != crc:
        raise DecodeError("%s: CRC-32 mismatch (corrupt record)" % what)
    return payload


exists = file_exists


def makedirs(path):
    """Create path and its parents if missing (MicroPython has no os.makedirs)."""
    parts = path.split("/")
    cur = "/" if path.startswith("/") else ""
    for p in parts:
        if not p:
            continue
        cur = cur + p if cur in ("", "/") else cur + "/" + p
        if not exists(cur):
            os.mkdir(cur)


def remove_quietly(path):
    try:
        os.remove(path)
        return True
    except OSError:
        return False


def write_new(path, payload):
    """Write a framed file: tmp + fsync + rename + fsync of the directory, through
    compat.write_file_atomic (the one place that knows how each runtime syncs and renames)."""
    write_file_atomic(path, frame(payload))


write_file = write_new  # replacing an existing file goes through the same steps


def read_file(path, what=None):
    """The payload of the framed file at path, or None if there is none.

    Falls back to a complete `path.tmp` when path itself is missing (a cut during a FAT
    replace). Raises DecodeError naming the file when it is torn or corrupt.
    """
    what = what or path
    for p in (path, path + TMP):
        try:
            with open(p, "rb") as f:
                buf = f.read()
        except OSError:
            continue
        if p == path:
            return unframe(buf, what)
        try:
            payload = unframe(buf, what + TMP)
        except DecodeError:
            return None  # a torn tmp never replaced anything: the value was never committed
        os.rename(p, path)
        return payload
    return None
