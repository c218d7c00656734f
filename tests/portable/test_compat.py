"""The runtime shims: a millisecond clock that never goes back, atomic replacement of files."""
import time

from agent import compat
from support import tmpdir


def test_monotonic_ms_advances_and_never_goes_back():
    a = compat.monotonic_ms()
    if hasattr(time, "sleep_ms"):
        time.sleep_ms(20)
    else:
        time.sleep(0.02)
    b = compat.monotonic_ms()
    c = compat.monotonic_ms()
    assert 15 <= b - a < 5000 and c >= b


def test_write_file_atomic_replaces_whole_files():
    d = tmpdir()
    p = d + "/f"
    compat.write_file_atomic(p, b"old")
    compat.write_file_atomic(p, b"new contents")
    with open(p, "rb") as f:
        assert f.read() == b"new contents"
    assert compat.file_exists(p) and not compat.file_exists(p + ".tmp")
    assert not compat.file_exists(d + "/nothing")
