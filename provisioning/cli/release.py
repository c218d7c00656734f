"""`civicmote release keygen|build|sign|show`: what code is genuine, signed offline (CPython only)."""
import time

from provisioning import files
from provisioning.cli.common import add_command, add_group
from provisioning.errors import EXIT_FAILED, UsageError
from provisioning.ota import keys

GUIDE = "docs/updates.md"


def register(sub, common):
    g = add_group(sub, "release", "release keys and signed releases (offline; docs/updates.md)")
    p = add_command(g, "keygen", do_keygen, common, "make a release key (on an offline machine)",
                    "Write a new P-256 release key to FILE (PKCS#8 PEM encrypted with the passphrase from $%s, the "
                    "file named by $%s, or a prompt; mode 0600; never overwritten) and print its public key (SEC1 "
                    "hex: what devices pin with --release-key) and its kid. A release key is neither the "
                    "provisioning CA nor any key the platform operator holds: keep it offline."
                    % (keys.RELEASE_PASSPHRASE_ENV, keys.RELEASE_PASSPHRASE_FILE_ENV))
    p.add_argument("--out", required=True, metavar="FILE", help="where to write the new key")
    p = add_command(g, "build", do_build, common, "build a release artefact: the Pi bundle, the board bundle or "
                    "a firmware image",
                    "--kind pi: the agent/ and provisioning/ packages as source; --kind board: the .mpy set "
                    "'provision --port' deploys (compiled by mpy-cross); --kind fw: the image 'make firmware' "
                    "built (--firmware). Writes OUT and OUT.json (what 'release sign' checks).")
    p.add_argument("--kind", required=True, choices=("pi", "board", "fw"), help="what to build")
    p.add_argument("--class", dest="classes", action="append", default=[], metavar="CLASS",
                   help="a device class the release runs on (repeatable; default for --kind pi: cpython3): "
                   "cpython3, mpy<ABI> (sys.implementation._mpy), fw-<firmware name>")
    p.add_argument("--firmware", metavar="FILE", help="(--kind fw) the firmware image")
    p.add_argument("--out", required=True, metavar="FILE", help="the artefact to write")
    p = add_command(g, "sign", do_sign, common, "sign a release document for a built artefact (offline)",
                    "Check ARTEFACT against its build record, then write OUT: the release (COSE_Sign1, ES256, "
                    "docs/wire-format.md 'Updates') signed by the release key: seq, version, component, classes, "
                    "size and SHA-256 of the artefact, state format, privacy manifest hash, optional min_seq "
                    "and expiry.")
    p.add_argument("--key", required=True, metavar="FILE", help="the release key (from release keygen)")
    p.add_argument("--artefact", required=True, metavar="FILE", help="what release build wrote")
    p.add_argument("--seq", required=True, type=int, metavar="N",
                   help="the release seq: higher than every release before it (devices refuse older ones)")
    p.add_argument("--ver", required=True, metavar="TEXT", help="the human version, e.g. 0.9.1")
    p.add_argument("--state", type=int, metavar="N", help="the device-state format it reads and writes "
                   "(default: this agent's)")
    p.add_argument("--privacy", required=True, metavar="HEX",
                   help="first 8 bytes (16 hex digits) of the hash of the privacy manifest this software "
                   "publishes, made public before the rollout")
    p.add_argument("--min-seq", type=int, metavar="N", help="devices must already run at least this release seq")
    p.add_argument("--expires-days", type=float, metavar="DAYS", help="void this many days from now")
    p.add_argument("--out", required=True, metavar="FILE", help="the release document to write")
    p = add_command(g, "show", do_show, common, "show a release document; --verify checks who signed it",
                    "Print the release's fields and its hash (what an order names). With --release-key, exit 1 "
                    "unless one of those keys signed it; --ca DIR and --registry FILE name the provisioning CA or "
                    "a device as the signer (never acceptable); --artefact checks size and SHA-256.")
    p.add_argument("release", metavar="FILE", help="the release document")
    p.add_argument("--release-key", action="append", default=[], metavar="HEX", help="a trusted release key")
    p.add_argument("--ca", metavar="DIR", help="the provisioning CA folder (to name it as a wrong signer)")
    p.add_argument("--registry", metavar="FILE", help="a registry export (to name a device as a wrong signer)")
    p.add_argument("--artefact", metavar="FILE", help="the artefact it should describe")


def do_keygen(out, args):
    sec1, kid = keys.keygen(args.out)
    out.record({"key_file": args.out, "public_key": sec1.hex(), "kid": kid.decode()},
               lambda r: "wrote %s (keep it offline)\npublic key %s\nkid %s\npin it on devices with: civicmote "
               "provision ... --release-key %s" % (r["key_file"], r["public_key"], r["kid"], r["public_key"]))
    return 0


def do_build(out, args):
    from provisioning.ota import build

    classes = args.classes or (["cpython3"] if args.kind == "pi" else [])
    info = build.build(args.kind, args.out, classes, firmware=args.firmware)
    out.record(info, lambda r: "wrote %s: %s bundle, %d file(s), %d bytes, sha256 %s, classes %s"
               % (r["out"], r["kind"], r["files"], r["size"], r["sha256"], ", ".join(r["class"])))
    return 0


def do_sign(out, args):
    from agent.ota import docs
    from provisioning.ota import build, release_doc

    data, info = build.read_artefact(args.artefact)
    try:
        privacy = bytes.fromhex(args.privacy)
    except ValueError:
        privacy = b""
    if len(privacy) != 8:
        raise UsageError("--privacy %s: 16 hex digits (the first 8 bytes of the manifest hash)" % args.privacy)
    if args.seq <= 0:
        raise UsageError("--seq must be positive")
    key, sec1, kid = keys.load_signing_key(args.key)
    fields = {"seq": args.seq, "ver": args.ver, "comp": info["comp"], "classes": list(info["class"]),
              "size": info["size"], "sha256": bytes.fromhex(info["sha256"]),
              "state": docs.STATE_FORMAT if args.state is None else args.state, "privacy": privacy}
    if args.min_seq is not None:
        fields["min_seq"] = args.min_seq
    if args.expires_days is not None:
        fields["exp"] = int(time.time() + args.expires_days * 86400)
    cose = release_doc.sign(key, sec1, fields)
    files.write_file(args.out, cose, 0o644)
    rel, digest, _ = release_doc.read(cose)
    out.record(_fields(rel, digest, kid, args.out), _human)
    return 0


def _fields(rel, digest, kid, path):
    r = {"file": path, "hash": digest.hex(), "kid": kid.decode(errors="replace") if isinstance(kid, bytes) else None}
    for k, v in rel.items():
        r[k] = v.hex() if isinstance(v, bytes) else v
    return r


def _human(r):
    lines = ["release %s (seq %s, %s for %s) in %s" % (r["ver"], r["seq"], r["comp"], ", ".join(r["class"]), r["file"]),
             "artefact %d bytes, sha256 %s" % (r["size"], r["sha256"]),
             "state format %s, privacy manifest %s%s%s" % (r["state"], r["privacy"], ", min_seq %s" % r["min_seq"]
                                                            if r.get("min_seq") is not None else "",
                                                            ", expires %s" % time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                                                                           time.gmtime(r["exp"]))
                                                            if r.get("exp") else ""),
             "signed by %s; hash %s (what an order names)" % (r["kid"], r["hash"])]
    if "verified" in r:
        lines.append("verified: %s" % ("yes, by a trusted release key" if r["verified"] else "NO: " + r["refused"]))
    return "\n".join(lines)


def do_show(out, args):
    import hashlib

    from provisioning.ota import release_doc

    try:
        with open(args.release, "rb") as f:
            cose = f.read()
    except OSError as e:
        raise UsageError("%s: cannot read (%s)" % (args.release, e.strerror))
    try:
        rel, digest, kid = release_doc.read(cose)
    except release_doc.Refused as e:
        raise UsageError("%s: %s" % (args.release, e))
    r = _fields(rel, digest, kid, args.release)
    ok = True
    if args.release_key:
        trusted = [keys.parse_public(k) for k in args.release_key]
        ca_sec1 = _ca_key(args.ca) if args.ca else None
        devices = _device_keys(args.registry) if args.registry else None
        try:
            release_doc.verify(cose, trusted, ca_sec1, devices)
            r["verified"] = True
        except release_doc.Refused as e:
            r["verified"], r["refused"], ok = False, str(e), False
    if args.artefact:
        try:
            with open(args.artefact, "rb") as f:
                data = f.read()
        except OSError as e:
            raise UsageError("%s: cannot read (%s)" % (args.artefact, e.strerror))
        r["artefact_matches"] = len(data) == rel["size"] and hashlib.sha256(data).digest() == rel["sha256"]
        ok = ok and r["artefact_matches"]
    out.record(r, _human)
    return 0 if ok else EXIT_FAILED


def _ca_key(directory):
    from agent.core.receipt import ca_public_key
    from agent.net.tls_files import der
    from provisioning.pki import ca

    return ca_public_key(der(ca.read_ca_cert(directory)[1]))


def _device_keys(path):
    doc = files.read_json(path, "registry export")
    return {d["device_id"]: bytes.fromhex(d["public_key"]) for d in (doc.get("devices") or [])
            if isinstance(d, dict) and d.get("public_key")}
