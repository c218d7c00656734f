"""`civicmote ca init|show`: the city's provisioning CA (CPython only)."""
from provisioning.pki import ca
from provisioning.cli.common import add_command, add_group


def register(sub, common):
    g = add_group(sub, "ca", "the city's provisioning CA (its key is encrypted with a passphrase)")
    p = add_command(g, "init", do_init, common,
                    "create the provisioning CA: a P-256 key encrypted at rest and a self-signed certificate",
                    "Create DIR/ca.key (P-256, PKCS#8 PEM encrypted with the passphrase from $%s or a prompt, "
                    "mode 0600) and DIR/ca.crt (self-signed). An existing CA is kept (the passphrase must "
                    "open it). To use an existing CA instead, see docs/provisioning.md." % ca.PASSPHRASE_ENV)
    p.add_argument("--dir", required=True, metavar="DIR", help="folder for ca.key and ca.crt")
    p.add_argument("--name", default="civicmote provisioning CA", metavar="CN", help="the CA's common name")
    p = add_command(g, "show", do_show, common, "show the CA certificate (no passphrase needed)")
    p.add_argument("--dir", required=True, metavar="DIR", help="folder with ca.crt")


def _summary(cert, pem, directory):
    return {"dir": str(directory), "subject": cert.subject.rfc4514_string(),
            "not_after": int(cert.not_valid_after_utc.timestamp()), "cert_fingerprint": ca.fingerprint(pem)}


def _human(r):
    import datetime

    until = datetime.datetime.fromtimestamp(r["not_after"], datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    head = ("created CA in %s\n" if r["ca_created"] else "kept the existing CA in %s\n") % r["dir"] \
        if "ca_created" in r else "CA in %s\n" % r["dir"]
    return head + "subject %s\nsha256 %s\nvalid until %s" % (r["subject"], r["cert_fingerprint"], until)


def do_init(out, args):
    authority, created = ca.init_ca(args.dir, ca.passphrase_from_env_or_prompt(confirm=True), args.name)
    result = _summary(authority.cert, authority.pem, args.dir)
    result["ca_created"] = created
    out.record(result, _human)
    return 0


def do_show(out, args):
    cert, pem = ca.read_ca_cert(args.dir)
    out.record(_summary(cert, pem, args.dir), _human)
    return 0
