"""The device's side of provisioning, run where the key lives (CPython only).

`civicmote device init|show|pop` call these on a Linux device; a folder target calls them in
this process, as the device would; an ssh target runs the same commands on the device.
Each returns the JSON record the command prints. The private key never leaves the folder.
"""
import binascii
import shutil
import time
from pathlib import Path

from agent.runtime.device import init_device, reserve_state
from agent.store import identity
from provisioning import files
from provisioning.device import devicedir, runlock
from provisioning.errors import EnvironmentProblem, UsageError


def init(device_dir, board_path, district=None, now_s=None, release_keys=()):
    """Make (or keep) the identity in device_dir; copy the board profile there; write the pinned
    release keys (hex) when given. A record with `key_created`."""
    from provisioning.device import release_keys as release

    board_path = Path(board_path)
    profile = files.load_board(board_path)
    pinned = release.device_file([release.parse_public(k) for k in release_keys]) if release_keys else None
    d = devicedir.ensure_dir(device_dir)
    devicedir.read_device(d)  # a damaged device.json is an error to see, not to overwrite silently
    try:
        rec = init_device(str(d), profile.name, district, int(time.time() if now_s is None else now_s))
        reserve_state(str(d))
        runlock.RunLock.reserve(d)
    except OSError as e:
        raise state_error(e, d, "make the device's state")
    if board_path.resolve() != (d / devicedir.BOARD_FILE).resolve():
        shutil.copyfile(board_path, d / devicedir.BOARD_FILE)
    result = {"device_id": rec["device_id"], "public_key": rec["public_key"], "key_created": rec["created"],
              "board": profile.name, "district": rec["district"], "device_dir": str(d)}
    if pinned is not None:
        for k in release_keys:  # its own key can never say what code is genuine
            release.refuse_known(bytes.fromhex(k), None, [bytes.fromhex(rec["public_key"])])
        files.write_file(d / release.DEVICE_FILE, pinned, 0o644)
        result["release_keys"] = [release.kid(bytes.fromhex(k)).decode() for k in release_keys]
    return result


def state_error(e, device_dir, doing):
    """The one line an OS error on device state becomes (exit 3): the file, and what is wrong."""
    import errno

    where = e.filename or device_dir
    if e.errno in (errno.ENOSPC, errno.EDQUOT):
        return EnvironmentProblem(
            "%s: no space left to %s: the device needs %d KiB reserved for its state (outbox ring and index, "
            "progress, sequence and ledger files); use a larger disk or free some space and re-run" % (
                where, doing, state_kib()))
    return EnvironmentProblem("%s: cannot %s (%s)" % (where, doing, e.strerror or e))


def state_kib():
    from agent.runtime import device

    return (device.OUTBOX_BYTES + 8192) // 1024


def show(device_dir):
    """The identity of device_dir, never its private key."""
    key, dev, pub = devicedir.load_identity(device_dir)
    record = devicedir.read_device(device_dir)
    return {"device_id": dev, "public_key": pub.hex(), "board": record.get("board"),
            "district": record.get("district"), "device_dir": str(Path(device_dir))}


def pop(device_dir, challenge_hex):
    """Sign the challenge with the device key in device_dir; also make sure device.pem exists.

    Returns {device_id, public_key, signature} (hex). The private key stays in this process.
    """
    try:
        challenge = binascii.unhexlify(challenge_hex)
    except (binascii.Error, ValueError):
        raise UsageError("--challenge: not hex")
    devicedir.load_identity(device_dir)  # a clear error if there is no identity here
    try:
        return identity.answer_pop(str(device_dir), challenge)
    except ValueError as e:
        raise UsageError("--challenge: %s" % e)


def check(device_dir, broker=None, timeout_s=15.0):
    """Connect to the broker once with the device's own certificate (see device/link.py)."""
    from provisioning import broker_url
    from provisioning.device import link, runner

    _, dev, _ = devicedir.load_identity(device_dir)
    config = runner.read_config(str(device_dir))
    url = broker or config.get("broker")
    if not url:
        raise UsageError("%s: no broker to check: config.json names none and --broker was not given" % device_dir)
    where = "--broker" if broker else "%s/config.json: broker" % device_dir
    r = link.check(str(device_dir), dev, broker_url.parse(url, where), url, config, timeout_s)
    r["stored_up_to"] = stored_up_to(str(device_dir), dev, config)
    return r


def stored_up_to(device_dir, dev, config):
    """The commissioning proof: the last receipt the device kept, checked again here against its own
    CA certificate; {"seq", "at", "text", "verified"} or None before the first receipt."""
    from agent.core.receipt import Verifier, ca_public_key
    from agent.crypto import verifying_key_from_sec1
    from agent.net.tls_files import der
    from agent.runtime.receipts import last_proof
    from provisioning.device import link

    p = last_proof(device_dir)
    if p is None:
        return None
    out = {"seq": p["seq"], "at": p["at"], "text": p["text"], "verified": True}
    try:
        ca = der(Path(link.tls_files(device_dir, config)["cafile"]).read_bytes())
        Verifier(verifying_key_from_sec1(ca_public_key(ca)), verifying_key_from_sec1).check(p["message"], dev, None,
                                                                                          p["seq"])
    except Exception as e:  # noqa: BLE001 - reported, never raised: the connection check stands on its own
        out["verified"] = False
        out["text"] = "the receipt on the device does not verify (%s)" % e
    return out
