"""Real small disks for the device-state tests: a tmpfs of a given size (the tests run as root),
and filling one to the last byte."""
import os
import subprocess

import pytest


def mount_tmpfs(path, size):
    """Mount a tmpfs of `size` (e.g. "64k", "2m") on the new folder path; skip the test where that
    is not allowed. The caller unmounts it (umount_lazy)."""
    path.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=%s" % size, "tmpfs", str(path)], capture_output=True,
                       text=True)
    if r.returncode != 0:
        pytest.skip("cannot mount a tmpfs here (%s): the full-disk cases need one" % r.stderr.strip())
    return path


def umount_lazy(path):
    subprocess.run(["umount", "-l", str(path)])


def fill(mnt):
    """Fill the filesystem at mnt with the file mnt/filler until not one byte more fits."""
    fd = os.open(str(mnt / "filler"), os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        for size in (65536, 4096, 1):
            try:
                while True:
                    os.write(fd, b"\0" * size)
            except OSError:
                pass
    finally:
        os.close(fd)
    with pytest.raises(OSError):  # really full
        (mnt / "probe").write_bytes(b"x")
