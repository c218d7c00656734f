"""`civicmote registry list|show|disable|enable|revoke|export` (CPython only).

Disable is reversible (the broker CRL marks it 'certificateHold'); revoke is permanent and
idempotent. After either, re-run `civicmote broker-config` and reload the broker (SIGHUP).
"""
from provisioning.cli.common import add_command, add_group
from provisioning.pki.registry import STATUSES, Registry, default_path

SHOWN = ("device_id", "status", "district", "board", "location", "target", "contact", "cert_fingerprint",
         "public_key", "reason", "created", "updated")


def register(sub, common):
    g = add_group(sub, "registry", "the registry of provisioned devices (SQLite)")

    def cmd(name, handler, help, device=False):
        p = add_command(g, name, handler, common, help)
        p.add_argument("--registry", metavar="FILE", help="registry database (default $CIVICMOTE_REGISTRY or "
                                                          "./registry.db)")
        if device:
            p.add_argument("device_id", metavar="ID", help="the device_id")
        return p

    p = cmd("list", do_list, "list devices (one JSON line each with --json)")
    p.add_argument("--status", choices=STATUSES, help="only devices with this status")
    p.add_argument("--district", metavar="D", help="only devices in this district")
    cmd("show", do_show, "show one device and its history", device=True)
    p = cmd("disable", do_disable, "disable a device (reversible: 'registry enable')", device=True)
    p.add_argument("--reason", metavar="TEXT", help="why (kept in the history)")
    cmd("enable", do_enable, "enable a disabled device again", device=True)
    p = cmd("revoke", do_revoke, "revoke a device for good (idempotent; it cannot come back)", device=True)
    p.add_argument("--reason", metavar="TEXT", help="why (kept in the history)")
    cmd("export", do_export, "print the registry export for verifiers and collectors (JSON)")


def _open(args):
    return Registry(args.registry or default_path())


def _brief(r):
    return {k: r[k] for k in ("device_id", "status", "district", "board", "location", "cert_fingerprint")}


def do_list(out, args):
    reg = _open(args)
    rows = reg.list(args.status, args.district)
    reg.close()
    if out.json:
        for r in rows:
            out.record(_brief(r))
        return 0
    out.say("%-18s  %-8s  %-12s  %-14s  %s" % ("DEVICE", "STATUS", "DISTRICT", "BOARD", "LOCATION"))
    for r in rows:
        out.say("%-18s  %-8s  %-12s  %-14s  %s" % (r["device_id"], r["status"], r["district"], r["board"],
                                                   r["location"] or "-"))
    out.note("%d device(s)" % len(rows))
    return 0


def do_show(out, args):
    reg = _open(args)
    rec = reg.require(args.device_id)
    result = {k: rec[k] for k in SHOWN}
    result["created"], result["updated"] = int(rec["created"]), int(rec["updated"])
    result["measures"] = [m["metric"] for m in rec["measures"]]
    result["history"] = [{"at": int(e["at"]), "action": e["action"], "detail": e["detail"]}
                         for e in reg.events(args.device_id)]
    reg.close()
    out.record(result, _human_show)
    return 0


def _human_show(r):
    width = max(len(k) for k in SHOWN)
    lines = ["%-*s  %s" % (width, k, _ts(r[k]) if k in ("created", "updated") else
                           "-" if r[k] is None else r[k]) for k in SHOWN]
    lines.append("%-*s  %s" % (width, "measures", ", ".join(r["measures"])))
    lines += ["%-*s  %s %s%s" % (width, "history" if i == 0 else "", _ts(e["at"]), e["action"],
                                 " (%s)" % e["detail"] if e["detail"] else "") for i, e in enumerate(r["history"])]
    return "\n".join(lines)


def _ts(t):
    import datetime

    return datetime.datetime.fromtimestamp(t, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _change(out, args, status, verb):
    reg = _open(args)
    try:
        rec, changed = reg.set_status(args.device_id, status, getattr(args, "reason", None))
    finally:
        reg.close()
    result = {"device_id": rec["device_id"], "status": rec["status"], "changed": changed}
    out.record(result, lambda r: "%s %s%s" % (
        r["device_id"], verb if changed else "was already " + r["status"],
        "; now run 'civicmote broker-config' and reload the broker" if changed else ""))
    return 0


def do_disable(out, args):
    return _change(out, args, "disabled", "disabled")


def do_enable(out, args):
    return _change(out, args, "active", "enabled")


def do_revoke(out, args):
    return _change(out, args, "revoked", "revoked (permanent)")


def do_export(out, args):
    reg = _open(args)
    doc = reg.export()
    reg.close()
    out.json = True  # the export is data for programs, with or without --json
    out.record(doc)
    return 0
