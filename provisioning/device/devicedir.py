"""A device directory: where a Linux or simulated device keeps its state (CPython only).

    device.key    the private key (COSE_Key, mode 0600), made here, never copied out
    device.json   device_id, public key, board name, district
    board.json    the board profile the agent runs with
"""
import os
from pathlib import Path

from agent.errors import DecodeError
from agent.store import identity
from provisioning.errors import EnvironmentProblem, UsageError
from provisioning.files import read_json

DEVICE_FILE = "device.json"
BOARD_FILE = "board.json"


def ensure_dir(device_dir):
    d = Path(device_dir)
    try:
        d.mkdir(parents=True, exist_ok=True)
        os.chmod(d, 0o700)
    except OSError as e:
        raise EnvironmentProblem("%s: cannot create the device directory (%s)" % (d, e.strerror))
    return d


# What the agent reads and rewrites in the folder (agent/runtime/device.py): files, and the outbox folder.
STATE_FILES = ("device.key", "device.json", "board.json", "config.json", "privacy.ledger", "seq", "progress",
               "manifest.cose")
STATE_DIRS = ("outbox",)


def check_state(device_dir):
    """Before the agent starts: every piece of state that is there must be of the right kind and
    readable and writable, and the folder writable. EnvironmentProblem (exit 3) naming the first
    that is not, instead of a traceback (or a file silently taken for lost) later."""
    d = Path(device_dir)
    for name in STATE_DIRS:
        p = d / name
        if p.exists() and not p.is_dir():
            raise EnvironmentProblem("%s: a file where the outbox folder should be; move it away (the agent "
                                     "makes a new outbox) and re-run" % p)
        if p.is_dir():
            for sub in sorted(p.iterdir()):
                _check_file(sub, "outbox " + ("index" if sub.name == "index" else "segment"))
    for name in STATE_FILES:
        _check_file(d / name, "device state")
    if not os.access(str(d), os.W_OK):
        raise EnvironmentProblem("%s: the device folder is read-only (%s); the agent must write its state there"
                                 % (d, os.strerror(getattr(os, "EROFS", 30))))


def _check_file(p, what):
    if not os.path.lexists(p):
        return
    if p.is_dir():
        raise EnvironmentProblem("%s: a folder where the %s file should be; remove it and re-run" % (p, what))
    try:
        with open(p, "r+b") as f:
            f.read(1)
    except OSError as e:
        raise EnvironmentProblem("%s: the %s file cannot be read and written (%s)" % (p, what, e.strerror or e))


def load_identity(device_dir):
    """(key, device_id, public_sec1) of an initialised device dir, or UsageError saying to run init."""
    d = Path(device_dir)
    if not (d / "device.key").exists():
        raise UsageError("%s: no device identity here; run 'civicmote device init --device-dir %s --board FILE'"
                         % (d, d))
    try:
        key = identity.load_key(str(d))
    except DecodeError as e:
        raise UsageError(str(e))
    dev, pub = identity.public_identity(key)
    return key, dev, pub


def read_device(device_dir):
    p = Path(device_dir) / DEVICE_FILE
    return read_json(p, "device record") if p.exists() else {}
