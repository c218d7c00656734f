"""`civicmote device init|show|pop`: a device's identity where it lives (CPython only)."""
from provisioning.cli.common import add_command, add_group
from provisioning.device import actions


def register(sub, common):
    g = add_group(sub, "device", "make or show a device's identity (its key never leaves the device)")
    p = add_command(g, "init", do_init, common,
                    "generate the device's key pair where the device keeps its state, and derive its device_id",
                    "Generate the device's P-256 key pair in DIR (kept there, mode 0600) and derive its "
                    "device_id. Idempotent: an existing identity is kept; board and district are updated. Also "
                    "reserves the disk space the agent rewrites in place (outbox ring and index, progress, lock: "
                    "about 264 KiB), so a disk that fills up later loses nothing silently; exits 3 if it does "
                    "not fit.")
    p.add_argument("--device-dir", required=True, metavar="DIR", help="the device's state folder")
    p.add_argument("--board", required=True, metavar="FILE", help="board profile (boards/*.json)")
    p.add_argument("--district", metavar="D", help="district the device is installed in")
    add_release_key_option(p)
    p = add_command(g, "show", do_show, common, "show a device's identity (never its private key)")
    p.add_argument("--device-dir", required=True, metavar="DIR", help="the device's state folder")
    p = add_command(g, "pop", do_pop, common,
                    "prove possession of the device key: sign a provisioning challenge (device side)",
                    "Sign the host's challenge (domain-separated: 'civicmote-pop-v1' || challenge || "
                    "device_id) with the key in DIR and print device_id, public_key and signature. Also "
                    "writes DIR/device.pem (mode 0600), the same key in the PEM form TLS libraries load. "
                    "The private key never leaves DIR.")
    p.add_argument("--device-dir", required=True, metavar="DIR", help="the device's state folder")
    p.add_argument("--challenge", required=True, metavar="HEX", help="the host's 32-byte challenge, hex")
    p = add_command(g, "check", do_check, common,
                    "connect to the broker once with the device's own certificate (commissioning check)",
                    "Connect to the broker named in DIR/config.json (or --broker) with the device's key and "
                    "certificate, using the transport the agent runs with (paho-mqtt if installed, else the "
                    "agent's own MQTT client on the standard library), as DEVICE_ID-check so a running agent "
                    "is not disturbed, and show what the city has stored of its data (its last signed receipt, "
                    "checked against the device's CA: 'the city has stored up to seq N at T'). Exits 0 when "
                    "the broker accepts it, 4 when it refuses it (revoked, "
                    "unknown CA, ACL), 3 when it cannot be reached.")
    p.add_argument("--device-dir", required=True, metavar="DIR", help="the device's state folder")
    p.add_argument("--broker", metavar="URL", help="the broker (default: the one in DIR/config.json)")
    p.add_argument("--timeout", type=float, default=15.0, metavar="S", help="seconds to wait (default 15)")


def add_release_key_option(p):
    p.add_argument("--release-key", action="append", default=[], metavar="HEX",
                   help="a release public key the device trusts for updates (SEC1 hex, as 'civicmote release "
                   "keygen' printed it); give it twice for the current key and its successor. Written to "
                   "DIR/release_keys; a device without that file refuses every update (docs/updates.md)")


def do_init(out, args):
    result = actions.init(args.device_dir, args.board, args.district, release_keys=args.release_key)
    out.record(result, lambda r: "%s device %s (board %s%s)\npublic key %s" % (
        "created" if r["key_created"] else "kept existing", r["device_id"], r["board"],
        ", district " + r["district"] if r["district"] else "", r["public_key"]))
    return 0


def do_show(out, args):
    out.record(actions.show(args.device_dir))
    return 0


def do_pop(out, args):
    """The device side of provisioning: sign the host's challenge."""
    out.record(actions.pop(args.device_dir, args.challenge))
    return 0


def do_check(out, args):
    out.record(actions.check(args.device_dir, args.broker, args.timeout), lambda r: "connected to %s as %s "
               "in %.1f s (transport %s)\n%s" % (r["broker"], r["device_id"], r["seconds"], r["transport"],
                                                 (r["stored_up_to"] or {}).get("text") or "no receipt from the city "
                                                 "yet (nothing proves it stored this device's data)"))
    return 0
