"""`civicmote device init|show`: a device's identity where it lives (CPython only)."""
import shutil
import time
from pathlib import Path

from agent.runtime.device import init_device
from provisioning import devicedir
from provisioning.commands import add_command, add_group
from provisioning.pop import register_pop

FIELDS = ("device_id", "public_key", "board", "district", "device_dir")


def register(sub, common):
    g = add_group(sub, "device", "make or show a device's identity (its key never leaves the device)")
    p = add_command(g, "init", do_init, common,
                    "generate the device's key pair where the device keeps its state, and derive its device_id",
                    "Generate the device's P-256 key pair in DIR (kept there, mode 0600) and derive its "
                    "device_id. Idempotent: an existing identity is kept; board and district are updated.")
    p.add_argument("--device-dir", required=True, metavar="DIR", help="the device's state folder")
    p.add_argument("--board", required=True, metavar="FILE", help="board profile (boards/*.json)")
    p.add_argument("--district", metavar="D", help="district the device is installed in")
    p = add_command(g, "show", do_show, common, "show a device's identity (never its private key)")
    p.add_argument("--device-dir", required=True, metavar="DIR", help="the device's state folder")
    register_pop(g, common)  # `device pop`: the device's side of the proof of possession


def do_init(out, args):
    board_path = Path(args.board)
    profile = devicedir.load_board(board_path)
    d = devicedir.ensure_dir(args.device_dir)
    devicedir.read_device(d)  # a damaged device.json is an error to see, not to overwrite silently
    rec = init_device(str(d), profile.name, args.district, int(time.time()))
    if board_path.resolve() != (d / devicedir.BOARD_FILE).resolve():
        shutil.copyfile(board_path, d / devicedir.BOARD_FILE)
    result = {"device_id": rec["device_id"], "public_key": rec["public_key"], "created": rec["created"],
              "board": profile.name, "district": rec["district"], "device_dir": str(d)}
    out.record(result, lambda r: "%s device %s (board %s%s)\npublic key %s" % (
        "created" if r["created"] else "kept existing", r["device_id"], r["board"],
        ", district " + r["district"] if r["district"] else "", r["public_key"]))
    return 0


def do_show(out, args):
    key, dev, pub = devicedir.load_identity(args.device_dir)
    record = devicedir.read_device(args.device_dir)
    result = {"device_id": dev, "public_key": pub.hex(), "board": record.get("board"),
              "district": record.get("district"), "device_dir": str(Path(args.device_dir))}
    out.record(result)
    return 0
