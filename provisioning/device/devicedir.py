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
