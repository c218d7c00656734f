"""`civicmote verify`: check signed messages against a registry or one public key (CPython only)."""
from pathlib import Path

from provisioning.cli.common import add_command
from provisioning.errors import EXIT_FAILED, EXIT_USAGE, UsageError
from provisioning.city.verifier import KeyRing, verify_message

MAX_FILE = 65536


def register(sub, common):
    p = add_command(sub, "verify", do_verify, common,
                    "verify signed summaries and manifests (.cose files)",
                    "Verify COSE_Sign1 messages. Prints one JSON line per message: ok, device_id, seq, "
                    "kind and, when not ok, reason. Exits 0 only if every message verified, 1 if one did not, 2 if a "
                    "file could not be read or the registry export is bad (naming the file or entry).")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--registry", metavar="FILE", help="registry export (civicmote registry export --json)")
    src.add_argument("--public-key", metavar="HEX", help="one device's SEC1 public key, hex")
    p.add_argument("files", nargs="+", metavar="FILE", help="messages to verify")


def keyring_from_args(args):
    ring = KeyRing()
    if args.public_key:
        try:
            sec1 = bytes.fromhex(args.public_key)
            ring.add_public_key(sec1)
        except ValueError:
            raise UsageError("--public-key: not a hex SEC1 public key")
        except Exception as e:  # SignatureError from the key checks
            raise UsageError("--public-key: %s" % e)
    else:
        from provisioning.pki.registry_export import load_export

        load_export(args.registry, ring)
    return ring


def do_verify(out, args):
    ring = keyring_from_args(args)
    ok = 0
    unreadable = []
    for name in args.files:
        path = Path(name)
        try:
            data = path.read_bytes()[:MAX_FILE + 1]
        except OSError as e:
            rec = {"ok": False, "device_id": None, "seq": None, "kind": None, "file": name,
                   "reason": "cannot read %s (%s)" % (name, e.strerror)}
            unreadable.append(rec["reason"])
        else:
            rec = verify_message(data, ring).as_dict()
            rec["file"] = name
        ok += rec["ok"]
        out.json = True  # contract: one JSON line per message, with or without --json
        out.record(rec)
    total = len(args.files)
    if not getattr(args, "json", False):
        out.note("%d of %d messages verified" % (ok, total))
    if unreadable:  # a file that is not there is bad input (2), not a message that failed to verify (1)
        out.error("%s%s" % (unreadable[0], " and %d more" % (len(unreadable) - 1) if len(unreadable) > 1 else ""))
        return EXIT_USAGE
    return 0 if ok == total else EXIT_FAILED
