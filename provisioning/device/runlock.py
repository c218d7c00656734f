"""One agent per device folder: an exclusive lock held for the life of `civicmote run` (CPython only).

`DIR/agent.lock` is locked with fcntl.flock(LOCK_EX | LOCK_NB) before anything else in the
folder is read, and stays locked until the process exits (the kernel drops it then, even on
SIGKILL, so a crash never leaves a stale lock). The holder writes one line into the file,
"pid PID started UNIX_S: COMMAND", so a refused second run can name it. The line is written
over the old one before the file is cut to its length (never empty once written), and a
refused run reads until it finds a line whose pid is alive: one that started an instant after
the holder took the lock, before its line was there, waits for it (up to NAME_WAIT_S) rather
than say "holder unknown" or name the previous, dead holder. Two agents on one
folder would each keep their own copy of the privacy ledger, hand out the same sequence
numbers and take over each other's broker session: the second one is refused instead.
"""
import fcntl
import os
import sys
import time

from provisioning.errors import EnvironmentProblem, StateError

LOCK_FILE = "agent.lock"
LINE_BYTES = 256  # the holder's line, padded: rewritten in place
NAME_WAIT_S = 2.0  # how long a refused run waits for the holder's line (written right after it locks)


class RunLock:
    """RunLock(device_dir).acquire() -> self, or StateError naming the holder; release() or exit."""

    def __init__(self, device_dir):
        self.path = os.path.join(str(device_dir), LOCK_FILE)
        self.fd = None

    def acquire(self, argv=None):
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as e:
            raise EnvironmentProblem("%s: cannot open the agent lock (%s)" % (self.path, e.strerror))
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = _holder(fd)
            deadline = time.monotonic() + NAME_WAIT_S
            while not _alive(holder) and time.monotonic() < deadline:
                time.sleep(0.01)
                holder = _holder(fd)
            os.close(fd)
            raise StateError("%s is in use by another agent (%s); stop it first (e.g. systemctl stop civicmote) "
                             "and try again" % (os.path.dirname(self.path), holder))
        cmd = " ".join(argv if argv is not None else sys.argv)
        line = ("pid %d started %d: %s\n" % (os.getpid(), int(time.time()), cmd[:200])).encode()
        try:  # over the old line, padded to a fixed size: never empty once written, and in place
            os.pwrite(fd, line[:LINE_BYTES - 1].ljust(LINE_BYTES - 1) + b"\n", 0)
        except OSError:
            pass  # a full disk (the file was not reserved at init): the lock holds, unnamed
        self.fd = fd
        return self

    @staticmethod
    def reserve(device_dir):
        """Create the lock file full size at `device init`, so its line is written in place later."""
        path = os.path.join(str(device_dir), LOCK_FILE)
        if not os.path.exists(path):
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
            try:
                os.pwrite(fd, b" " * (LINE_BYTES - 1) + b"\n", 0)
            finally:
                os.close(fd)

    def release(self):
        if self.fd is not None:
            os.close(self.fd)  # closing the descriptor drops the flock
            self.fd = None


def _holder(fd):
    try:
        text = os.pread(fd, 512, 0).decode("utf-8", "replace").strip()
    except OSError:
        text = ""
    return text.splitlines()[0] if text else "holder unknown"


def _alive(holder):
    """True if holder is 'pid N ...' of a running process."""
    parts = holder.split()
    if len(parts) < 2 or parts[0] != "pid" or not parts[1].isdigit():
        return False
    try:
        os.kill(int(parts[1]), 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # it exists, owned by someone else
    return True
