"""`civicmote label ID --out FILE.svg|.png`: the transparency label for the pole (CPython only)."""
import os
from pathlib import Path

from provisioning.field import label
from provisioning.cli.common import add_command
from provisioning.errors import EnvironmentProblem, UsageError
from provisioning.pki.registry import Registry, default_path

URL_ENV = "CIVICMOTE_MANIFEST_URL"
BASE_ENV = "CIVICMOTE_URL_BASE"


def register(sub, common):
    p = add_command(sub, "label", do_label, common,
                    "make the device's pole label: QR code to its manifest, what it measures, what it never "
                    "collects, who to contact",
                    "Write the label for device ID. FILE.svg is the full label; FILE.png is the QR code alone. "
                    "The QR code holds URL/d/ID with --url-base URL (or $%s), the device's page served by "
                    "civicmote web; else --manifest-url (a template with {device_id} and {district}; default $%s "
                    "or the manifest's MQTT topic)." % (BASE_ENV, URL_ENV))
    p.add_argument("device_id", metavar="ID", help="the device_id")
    p.add_argument("--out", required=True, metavar="FILE", help="FILE.svg (label) or FILE.png (QR code only)")
    p.add_argument("--registry", metavar="FILE", help="registry database (default $CIVICMOTE_REGISTRY or "
                                                      "./registry.db)")
    p.add_argument("--contact", metavar="TEXT", help="who to contact (default: the contact recorded at provisioning)")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--url-base", metavar="URL", help="where the city publishes civicmote web, e.g. "
                                                         "https://sensors.city.example: the QR code opens URL/d/ID")
    where.add_argument("--manifest-url", metavar="TEMPLATE", help="what the QR code points to, as a template")


def do_label(out, args):
    path = Path(args.out)
    kind = path.suffix.lower()
    if kind not in (".svg", ".png"):
        raise UsageError("--out %s: use a .svg (full label) or .png (QR code only) file name" % path)
    reg = Registry(args.registry or default_path())
    try:
        rec = reg.require(args.device_id)
    finally:
        reg.close()
    if rec["status"] != "active":
        out.note("note: device %s is %s; its label should come off the pole" % (rec["device_id"], rec["status"]))
    contact = args.contact or rec.get("contact")
    if not contact:
        raise UsageError("no contact for device %s: pass --contact (e.g. 'sensors@city.example, 555-0100')"
                         % rec["device_id"])
    base = args.url_base or (None if args.manifest_url else os.environ.get(BASE_ENV))
    if base:
        url = label.page_url(base, rec)
    else:
        url = label.manifest_url(args.manifest_url or os.environ.get(URL_ENV) or label.DEFAULT_URL, rec)
    try:
        if kind == ".svg":
            path.write_text(label.svg(rec, url, contact), encoding="utf-8")
        else:
            label.png(url, path)
    except OSError as e:
        raise EnvironmentProblem("%s: cannot write the label (%s)" % (path, e.strerror))
    result = {"device_id": rec["device_id"], "out": str(path), "url": url, "format": kind[1:]}
    out.record(result, lambda r: "wrote %s for %s (QR: %s)%s" % (
        r["out"], r["device_id"], r["url"], "" if kind == ".svg" else "; PNG holds the QR code only, the SVG is "
                                                                     "the full label"))
    return 0
