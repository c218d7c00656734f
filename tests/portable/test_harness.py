"""The harness itself: the runtime we are on, and randomness from the host's CSPRNG."""
import os
import sys

from support import MICROPYTHON, tmpdir


def test_runtime_is_what_support_says():
    assert (sys.implementation.name == "micropython") == MICROPYTHON


def test_urandom_gives_distinct_bytes():
    a = os.urandom(32)
    b = os.urandom(32)
    assert len(a) == 32 and isinstance(a, bytes)
    assert a != b


def test_tmpdir_is_writable():
    d = tmpdir()
    p = d + "/x.bin"
    with open(p, "wb") as f:
        f.write(b"\x00\x01")
    with open(p, "rb") as f:
        assert f.read() == b"\x00\x01"
