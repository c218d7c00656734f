"""`--target` as the technician writes it: a folder, or ssh://USER@HOST[:PORT][/DIR] (CPython only)."""
from pathlib import Path

from provisioning.errors import UsageError
from provisioning.field.ssh_target import SSHTarget
from provisioning.field.targets import DirTarget


def parse_target(text, base=None):
    """A target from '--target': 'ssh://USER@HOST[:PORT][/DIR]' or a folder path (relative to base)."""
    if text.startswith("ssh://"):
        return SSHTarget.from_url(text)
    if "://" in text or text.startswith("/dev/tty") or text.upper().startswith("COM"):
        raise UsageError("--target %s: --target takes a folder or ssh://USER@HOST; for a MicroPython board on a "
                         "serial port use 'civicmote provision --port %s'" % (text, text))
    p = Path(text)
    if base is not None and not p.is_absolute():
        p = Path(base) / p
    return DirTarget(p)
