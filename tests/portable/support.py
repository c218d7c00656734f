"""Helpers for the portable test suite (runs under pytest on CPython and on MicroPython).

Nothing here may use pytest or anything MicroPython lacks.
"""
import json
import os
import sys

MICROPYTHON = sys.implementation.name == "micropython"

if MICROPYTHON:
    VECTOR_DIR = "/vectors"
    BOARD_DIR = "/boards"
    _TMP_ROOT = "/flash/tmp"
else:
    _TESTS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    VECTOR_DIR = os.path.join(_TESTS, "vectors")
    BOARD_DIR = os.path.join(os.path.dirname(_TESTS), "boards")
    _TMP_ROOT = None


def load_vectors(name):
    """Load tests/vectors/NAME: lines starting with '#' are the provenance header, the rest is JSON."""
    with open(VECTOR_DIR + "/" + name) as f:
        body = "".join(line for line in f if not line.startswith("#"))
    return json.loads(body)


def unhex(s):
    import binascii

    return binascii.unhexlify(s)


def tohex(b):
    import binascii

    return binascii.hexlify(b).decode()


_counter = [0]


def tmpdir():
    """A new empty directory (on MicroPython, on the interpreter's filesystem)."""
    if _TMP_ROOT is None:
        import tempfile

        return tempfile.mkdtemp(prefix="civicmote-")
    _counter[0] += 1
    for d in (_TMP_ROOT, _TMP_ROOT + "/" + str(_counter[0])):
        try:
            os.mkdir(d)
        except OSError:
            pass
    return _TMP_ROOT + "/" + str(_counter[0])


def seeded_rng(seed):
    """Deterministic rng for vectors: the stream sha256(seed || uint32_be(i)), i = 0, 1, ..."""
    import hashlib

    st = {"c": 0, "buf": b""}

    def rng(n):
        while len(st["buf"]) < n:
            st["buf"] += hashlib.sha256(seed + st["c"].to_bytes(4, "big")).digest()
            st["c"] += 1
        out = st["buf"][:n]
        st["buf"] = st["buf"][n:]
        return out

    return rng


def raises(exc_type, fn, *args, **kwargs):
    """Call fn and return the exception of exc_type it raised; fail if it raised none."""
    try:
        fn(*args, **kwargs)
    except exc_type as e:
        return e
    raise AssertionError("expected %s from %r" % (exc_type.__name__, fn))
