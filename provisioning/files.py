"""Files the host tools read and write: JSON and board profiles, with errors that name the file (CPython only).

Shared by every role (field, PKI, city, device side); it imports nothing above provisioning.errors.
"""
import json

from provisioning.errors import EnvironmentProblem, UsageError


def read_json(path, what):
    try:
        with open(path) as f:
            return json.load(f)
    except FileNotFoundError:
        raise UsageError("%s: no such file (%s)" % (path, what))
    except json.JSONDecodeError as e:
        raise UsageError("%s: not valid JSON (line %d: %s)" % (path, e.lineno, e.msg))
    except OSError as e:
        raise EnvironmentProblem("%s: cannot read (%s)" % (path, e.strerror))


def load_board(path):
    """Read and validate a board profile; errors name the file and the field."""
    from agent import board as boards

    try:
        return boards.load_profile(str(path))
    except (OSError, ValueError) as e:
        raise UsageError("%s: %s" % (path, e))


def write_file(path, data, mode=0o644, owner=None):
    """Write bytes to path atomically with exactly `mode`, whatever the umask.

    A temporary file in the same folder is created owner-only, given `mode` with fchmod (the
    umask never applies to it), chowned to owner (uid, gid) if given, flushed to storage and
    renamed over path, so a reader sees the old file or the new one, never a mixture or a
    moment with looser permissions. Secrets use 0o600, files a service reads 0o640 or 0o644.
    """
    import os

    path = str(path)
    tmp = "%s.tmp%d" % (path, os.getpid())
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    try:
        try:
            if owner is not None:
                os.fchown(fd, owner[0], owner[1])
            os.fchmod(fd, mode)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def make_dir(path, mode=0o755, owner=None):
    """Create path (and missing parents, 0o755) and give the folder itself exactly `mode`, whatever the umask."""
    import os

    path = str(path)
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        make_dir(parent, 0o755)
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        if not os.path.isdir(path):
            raise
    if os.stat(path).st_uid != os.geteuid() and os.geteuid() != 0:
        return  # someone else's folder (e.g. /tmp): not ours to change
    if owner is not None:
        os.chown(path, owner[0], owner[1])
    os.chmod(path, mode)


def own_file(path, mode=0o600):
    """Create path empty if missing, and give it exactly `mode` (e.g. a database before SQLite opens it)."""
    import os

    fd = os.open(str(path), os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    try:
        os.fchmod(fd, mode)
    finally:
        os.close(fd)
