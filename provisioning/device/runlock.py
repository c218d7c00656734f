"""One agent per device folder: an exclusive lock held for the life of `civicmote run` (CPython only).

`DIR/agent.lock` is locked with fcntl.flock(LOCK_EX | LOCK_NB) before anything else in the
folder is read, and stays locked until the process exits (the kernel drops it then, even on
SIGKILL, so a crash never leaves a stale lock). The holder writes one line into the file,
"pid PID started UNIX_S: COMMAND", so a refused second run can name it. Two agents on one
folder would each keep their own copy of the privacy ledger, hand out the same sequence
numbers and take over each other's broker session: the second one is refused instead.
"""
import fcntl
import os
import sys
import time

from provisioning.errors import EnvironmentProblem, StateError

LOCK_FILE = "agent.lock"


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
            os.close(fd)
            raise StateError("%s is in use by another agent (%s); stop it first (e.g. systemctl stop civicmote) "
                             "and try again" % (os.path.dirname(self.path), holder))
        cmd = " ".join(argv if argv is not None else sys.argv)
        line = ("pid %d started %d: %s\n" % (os.getpid(), int(time.time()), cmd[:200])).encode()
        os.ftruncate(fd, 0)
        os.pwrite(fd, line, 0)
        self.fd = fd
        return self

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
