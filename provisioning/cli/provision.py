"""`civicmote provision`: a blank Linux board or simulated device -> a registered device (CPython only).

The flow, the same for a folder and for ssh://:
  1. put the board profile (and over ssh the agent) on the target; `device init` there
  2. check the registry: revoked, disabled, cloned or moved identities are refused
  3. already provisioned and nothing changed -> no-op (no CA passphrase needed)
  4. fresh challenge -> `device pop` on the target -> verify here (the key never moves)
  5. certificate (CN = device_id) from the CA, unless the registry already holds one
  6. write device.crt, ca.crt (and their DER twins for boards), config.json, civicmote.service;
     install the unit on a real Pi
  7. record the device (and retire a re-keyed identity) in one registry transaction
An interruption anywhere leaves a state that the same command completes.
"""
import contextlib
import json
import os

from provisioning.pki import ca as ca_mod
from provisioning import files
from provisioning.pki import pop
from provisioning.field import target_url, targets
from provisioning.cli.common import add_command
from provisioning.errors import EnvironmentProblem, StateError, UsageError
from provisioning.pki.registry import Registry, default_path
from provisioning.ota import keys as ota_keys

TOPIC_PREFIX = "civicmote/v1"
CA_ENV = "CIVICMOTE_CA"
CHECK_TIMEOUT_S = 20


def register(sub, common):
    p = add_command(sub, "provision", do_provision, common,
                    "turn a Linux board or a simulated device folder into a registered device",
                    "Deploy the board profile, have the device make its key (on the device), verify its proof "
                    "of possession, issue its certificate (CN = device_id), write certificate, broker CA, "
                    "config and a systemd unit (installed on a real Pi), and record it in the registry. "
                    "Re-running on a provisioned device is a no-op unless --rekey.")
    add_common_options(p)
    p.add_argument("--board", required=True, metavar="FILE", help="board profile (boards/*.json)")
    p.add_argument("--district", required=True, metavar="D", help="district the device is installed in")
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--target", metavar="DIR|ssh://USER@HOST[:PORT][/DIR]",
                       help="the device folder, or a Linux board over ssh (default folder there %s)"
                       % targets.SSH_DEFAULT_DIR)
    add_serial_options(p, where)  # issue 7: MicroPython boards over serial (--port)
    p.add_argument("--location", metavar="TEXT", help="where the device is mounted (for people)")
    p.add_argument("--rekey", action="store_true",
                   help="give the device a new key and identity; the old one is revoked")


def add_common_options(p):
    p.add_argument("--ca", metavar="DIR", default=os.environ.get(CA_ENV) or "ca",
                   help="provisioning CA folder (default $%s or ./ca)" % CA_ENV)
    p.add_argument("--registry", metavar="FILE", default=None,
                   help="registry database (default $CIVICMOTE_REGISTRY or ./registry.db)")
    p.add_argument("--broker", metavar="URL", help="the city broker, e.g. mqtts://broker.city.example:8883")
    p.add_argument("--contact", metavar="TEXT", help="who to contact about the device (shown on its label)")
    p.add_argument("--release-key", action="append", default=[], metavar="HEX",
                   help="a release public key the device trusts for updates (from 'civicmote release keygen'; "
                   "twice for the current key and its successor); installed as the device's release_keys file "
                   "(on a board too). Without it the device refuses every update (docs/updates.md)")
    p.add_argument("--no-check", dest="check", action="store_false",
                   help="(ssh) do not have the device connect to the broker before its service starts "
                   "(e.g. provisioning on a bench without the city network)")


def add_serial_options(p, where):
    where.add_argument("--port", metavar="PORT", help="a MicroPython board on this serial port (e.g. /dev/ttyACM0)")
    p.add_argument("--wifi-ssid", metavar="SSID", help="(--port) the Wi-Fi network the board joins; the password "
                   "comes from $CIVICMOTE_WIFI_PASSWORD and is never printed")
    p.add_argument("--force", action="store_true", help="(--port) replace another agent found on the board")


def serial_target(args, port=None):
    """The SerialTarget for --port (or a batch row's serial port)."""
    from provisioning.field.serial_target import SerialTarget

    ssid = getattr(args, "wifi_ssid", None)
    wifi = (ssid, os.environ.get("CIVICMOTE_WIFI_PASSWORD")) if ssid else None
    return SerialTarget(port or args.port, wifi=wifi, force=getattr(args, "force", False))


def do_provision(out, args):
    registry = Registry(args.registry or default_path(), create=True)
    target = None
    try:
        target = serial_target(args) if args.port else target_url.parse_target(args.target)
        result = provision(target, args.board, args.district, registry, ca_mod.LazyCA(args.ca),
                           broker=args.broker, location=args.location, contact=args.contact, rekey=args.rekey,
                           check=args.check, release_keys=args.release_key)
        if getattr(target, "deployed", None):
            result["deploy"] = target.deployed
        if args.release_key:
            result["release_keys"] = [ota_keys.kid(ota_keys.parse_public(k)).decode() for k in args.release_key]
        if args.port:
            from provisioning.field.serial_target import WIFI_FILE

            result["wifi"] = target.read_file(WIFI_FILE) is not None
            if not result["wifi"]:
                out.note("civicmote: warning: %s: the board has no Wi-Fi settings, so it cannot reach the broker; "
                         "re-run with --wifi-ssid SSID (password in $CIVICMOTE_WIFI_PASSWORD)" % args.port)
    finally:
        registry.close()
        if hasattr(target, "close"):
            target.close()
    out.record(result, _human)
    return 0


def _human(r):
    verb = {"provisioned": "provisioned", "unchanged": "already provisioned, nothing to do",
            "updated": "updated"}[r["status"]]
    lines = ["%s: device %s, district %s" % (verb, r["device_id"], r["district"]),
             "certificate sha256 %s" % r["cert_fingerprint"], "target %s" % r["target"]]
    if r.get("systemd"):
        lines.append("systemd: %s" % r["systemd"])
    if r.get("retired"):
        lines.append("retired old identity %s" % ", ".join(r["retired"]))
    return "\n".join(lines)


def device_config(dev, district, broker, location):
    # PEM for Linux (paho, OpenSSL); DER twins for boards, whose mbedTLS may parse nothing else
    # (agent/net/tls_files.py; the key's DER is decoded from device.pem on the device).
    return {"device_id": dev, "district": district, "broker": broker, "topic_prefix": TOPIC_PREFIX,
            "location": location, "tls": {"cafile": "ca.crt", "certfile": "device.crt", "keyfile": pop.PEM_FILE,
                                          "cafile_der": "ca.der", "certfile_der": "device.der"}}


def _dump(obj):
    return (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode()


def provision(target, board_path, district, registry, lazy_ca, broker=None, location=None, contact=None,
              rekey=False, rng=os.urandom, check=True, release_keys=()):
    """Provision one device; returns the result record. Raises ProvisioningError with what to do.
    release_keys: hex SEC1 release public keys to pin on the device (docs/updates.md)."""
    from agent.errors import ConfigError

    try:
        profile = files.load_board(board_path)
    except ConfigError as e:  # the profile is bad input: name it and carry on in a batch
        raise UsageError(str(e))
    with open(board_path, "rb") as f:
        board_json = f.read()
    if not district or "/" in district or "+" in district or "#" in district:
        raise UsageError("--district %r: must be non-empty and contain no '/', '+' or '#' (it is a topic level)"
                         % district)
    refuse_mismatch(profile, target, board_path)
    pinned, pinned_keys = _release_keys(release_keys, lazy_ca)
    target.prepare(board_json)
    retire = [r["device_id"] for r in registry.by_target(target.name)]
    if rekey:
        target.forget_identity()
    init = target.civicmote(["device", "init", "--device-dir", target.device_dir,
                             "--board", target.device_dir + "/board.json", "--district", district])[0]
    dev, pub_hex = init["device_id"], init["public_key"]
    retire = [d for d in retire if d != dev]
    rec = registry.get(dev)
    _refuse_conflicts(rec, dev, target, district, retire, rekey)

    if location is None and rec:
        location = rec.get("location")
    have = read_files(target, ("config.json", pop.PEM_FILE, "device.crt", ota_keys.DEVICE_FILE))
    for k in pinned_keys:  # the device's own key can never say what code is genuine
        ota_keys.refuse_known(k, None, [bytes.fromhex(pub_hex)])
    old_config = have["config.json"]
    if broker is None and old_config:  # keep the broker given last time
        try:
            broker = json.loads(old_config).get("broker")
        except ValueError:
            pass
    config = _dump(device_config(dev, district, broker, location))
    unit = targets.unit_text(dev, target.device_dir, target.python, broker, target.pythonpath).encode()
    if rec and not rekey and old_config == config and have[pop.PEM_FILE] is not None \
            and have["device.crt"] == rec["certificate"].encode() and rec.get("board") == profile.name \
            and rec.get("measures") == measures_of(profile):
        if pinned is not None and have[ota_keys.DEVICE_FILE] != pinned:
            target.install({ota_keys.DEVICE_FILE: pinned})
        checked = _check(target, broker, check)
        installed, note = _start(target)
        return _result(rec, target, "unchanged", note, [], checked)

    challenge = pop.new_challenge(rng)
    answer = target.civicmote(["device", "pop", "--device-dir", target.device_dir, "--challenge", challenge.hex()])[0]
    dev, pub = pop.verify_answer(answer, challenge, pub_hex, target.name)

    record = {"device_id": dev, "public_key": pub.hex(), "district": district, "board": profile.name,
              "target": target.name, "location": location,
              "contact": contact if contact is not None else (rec or {}).get("contact")}
    if rec and rec.get("certificate"):  # the same key keeps its certificate; board, place, contact may change
        cert, ca_pem = rec["certificate"], lazy_ca.cert_pem()
        if any(rec.get(k) != v for k, v in (("location", location), ("contact", record["contact"]),
                                             ("board", profile.name), ("measures", measures_of(profile)))):
            registry.register(dict(record, certificate=cert, cert_serial=rec["cert_serial"],
                                   cert_fingerprint=rec["cert_fingerprint"], measures=measures_of(profile)))
    else:
        authority = lazy_ca.get()
        # A certificate is recorded in the same breath as it is issued: an interruption never leaves one
        # that is neither in the registry nor revoked. The device gets its files after that.
        with signals_deferred():
            cert, ca_pem = authority.issue_device(pub, dev), authority.pem
            record.update(certificate=cert, cert_serial=str(ca_mod.cert_serial(cert)),
                          cert_fingerprint=ca_mod.fingerprint(cert), measures=measures_of(profile))
            registry.register(record, retire=retire)
    record = registry.get(dev)
    from agent.net.tls_files import der

    install = {"device.crt": cert.encode(), "ca.crt": ca_pem, "config.json": config,
               "device.der": der(cert.encode()), "ca.der": der(ca_pem), targets.UNIT_FILE: unit}
    if pinned is not None:
        install[ota_keys.DEVICE_FILE] = pinned
    target.install(install)
    checked = _check(target, broker, check)
    installed, note = _start(target)
    # "provisioned" until the device has held its certificate once (also when a re-run completes an interrupted run).
    status = "updated" if rec and have["device.crt"] is not None and not rekey else "provisioned"
    return _result(record, target, status, note, retire, checked)


def _release_keys(hex_keys, lazy_ca):
    """(the release_keys file, [SEC1]) for the keys given ((None, []): none given); never the CA's key."""
    if not hex_keys:
        return None, []
    sec1 = [ota_keys.parse_public(k) for k in hex_keys]
    from agent.core.receipt import ca_public_key
    from agent.net.tls_files import der

    ca_sec1 = ca_public_key(der(lazy_ca.cert_pem()))
    for k in sec1:
        ota_keys.refuse_known(k, ca_sec1)
    return ota_keys.device_file(sec1), sec1


def _check(target, broker, check):
    """Over ssh (a real device): `device check` there, before the service starts. None when not run."""
    if not (check and broker and hasattr(target, "check")):
        return None
    return target.check(CHECK_TIMEOUT_S)


def _start(target):
    """Install and start the unit where there is systemd; a service that does not stay up is an error."""
    installed, note = target.install_unit()
    if note.startswith(targets.UNIT_DOWN):
        raise EnvironmentProblem("%s: registered, but %s; fix it and re-run" % (target.name, note[len("failed: "):]))
    return installed, note


@contextlib.contextmanager
def signals_deferred():
    """Hold SIGINT/SIGTERM (main thread) until the block is done, so it is never cut in half."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    held = {signal.SIGINT, signal.SIGTERM}
    old = signal.pthread_sigmask(signal.SIG_BLOCK, held)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


# Which runtime each kind of target runs the agent with.
TARGET_RUNTIME = {"DirTarget": "cpython", "SSHTarget": "cpython", "SerialTarget": "micropython"}
# MicroPython's sys.platform for each chip a board profile names.
CHIP_PLATFORM = {"esp32": "esp32", "rp2040": "rp2", "rp2350": "rp2"}


def refuse_mismatch(profile, target, board_path):
    """A profile for another runtime or another chip than the target is refused before anything is written."""
    kind = type(target).__name__
    runtime = TARGET_RUNTIME.get(kind)
    if kind == "DirTarget" and profile.runtime == "micropython" and profile.chip == "sim":
        return  # a simulated MicroPython board: the folder is a virtual board's flash (tests/board_city.py)
    if runtime and profile.runtime != runtime:
        how = ("--port PORT (a MicroPython board over USB)" if profile.runtime == "micropython"
               else "--target DIR or --target ssh://USER@HOST (a Linux board)")
        raise UsageError("%s: board %r runs %s, but %s runs %s; provision it with %s"
                         % (board_path, profile.name, profile.runtime, target_label(target), runtime, how))
    if kind == "SerialTarget":
        want = CHIP_PLATFORM.get(profile.chip)
        have = target.board.info().get("platform")
        if want and have and have != want:
            raise UsageError("%s: board %r is for a %s chip, but the board on %s is a %s; pick the profile for "
                             "that board" % (board_path, profile.name, profile.chip, target.port, have))


def target_label(target):
    return "--port %s" % target.port if hasattr(target, "port") else "--target %s" % target.name


def read_files(target, names):
    """{name: bytes or None}: in one round trip where the target can (ssh), else file by file."""
    if hasattr(target, "read_files"):
        return target.read_files(names)
    return {n: target.read_file(n) for n in names}


def _refuse_conflicts(rec, dev, target, district, retire, rekey):
    if rec is None:
        if retire and not rekey:
            raise StateError("%s was registered to device %s but now holds a different key (%s); if the board was "
                             "replaced or re-imaged, re-run with --rekey to retire the old identity"
                             % (target.name, retire[0], dev))
        return
    if rec["status"] == "revoked":
        raise StateError("device %s is revoked; re-run with --rekey to give this board a new identity" % dev)
    if rec["status"] == "disabled":
        raise StateError("device %s is disabled; enable it first ('civicmote registry enable %s')" % (dev, dev))
    if rec["target"] and rec["target"] != target.name:
        raise StateError("device %s is already registered at %s; this target holds a copy of its key (a cloned "
                         "disk?). Re-run with --rekey to give this board its own identity" % (dev, rec["target"]))
    if rec["district"] != district:
        raise StateError("device %s is registered in district %r, not %r; to move it, re-run with --rekey "
                         "(a new identity in the new district)" % (dev, rec["district"], district))


def measures_of(profile):
    """What the device measures, for people (labels): name, unit, class, description."""
    out = []
    for name in sorted(profile.metrics):
        m = profile.metrics[name]
        out.append({"metric": name, "unit": m.get("unit"), "class": m.get("class"),
                    "description": m.get("description")})
    return out


def _result(rec, target, status, note, retired, checked=None):
    r = {"device_id": rec["device_id"], "district": rec["district"], "board": rec["board"],
         "target": target.name, "cert_fingerprint": rec["cert_fingerprint"], "status": status,
         "systemd": note, "retired": retired}
    if checked is not None:
        r["broker_check"] = {"connected": checked["connected"], "broker": checked["broker"],
                             "transport": checked["transport"], "seconds": checked["seconds"]}
    return r
