"""`civicmote rollout start|status|pause|resume|abort|serve`: who gets a release, when (CPython only).

start/pause/resume/abort write what the operator wants into the rollout state (SQLite); `serve`
is the long-running service that signs the orders, answers devices and runs the stages
(provisioning/ota/service.py). docs/updates.md is the operator's guide.
"""
import os
import time

from provisioning.cli.common import add_command, add_group
from provisioning.errors import UsageError
from provisioning.ota import keys, rollout_store, stages
from provisioning.ota.service import DEFAULT_CAP

THRESHOLD = 10  # % of the finished devices that may fail before the rollout halts
MIN_DONE = 10   # finished devices before the threshold applies (a failed canary halts at once)
MAX_CANARIES = 10


def _state_option(p):
    p.add_argument("--state", metavar="FILE", default=None,
                   help="the rollout state (default $%s or ./%s)" % (rollout_store.DEFAULT_ENV,
                                                                     rollout_store.DEFAULT_PATH))


def register(sub, common):
    g = add_group(sub, "rollout", "staged rollouts of signed releases, and the service that runs them")
    p = add_command(g, "start", do_start, common, "start rolling a signed release out to a district",
                    "Check the release against the trusted release keys (and its artefact against it), then "
                    "record a rollout: the canaries first, then each stage's share of the district (default "
                    "%s), advancing when every device of a stage confirmed or failed, halting when a canary "
                    "fails or more than --threshold %% of the finished devices failed. 'rollout serve' carries "
                    "it out." % ",".join(str(s) for s in stages.DEFAULT_STAGES))
    _state_option(p)
    p.add_argument("--release", required=True, metavar="FILE", help="the signed release document")
    p.add_argument("--artefact", required=True, metavar="FILE", help="its artefact (served to devices from here)")
    p.add_argument("--district", required=True, metavar="D", help="the district to roll out to")
    p.add_argument("--release-key", action="append", default=[], required=True, metavar="HEX",
                   help="a trusted release key (the ones devices pin; repeatable)")
    p.add_argument("--ca", metavar="DIR", help="the provisioning CA folder: a release it signed is refused by name")
    p.add_argument("--canary", action="append", default=[], metavar="DEVICE_ID",
                   help="a canary device (repeatable, at most %d)" % MAX_CANARIES)
    p.add_argument("--stages", default=",".join(str(s) for s in stages.DEFAULT_STAGES), metavar="PCT,...",
                   help="the stages' shares of the district, increasing, ending at 100 (default %(default)s)")
    p.add_argument("--threshold", type=int, default=THRESHOLD, metavar="PCT",
                   help="halt when more than PCT %% of the finished devices failed (default %(default)s)")
    p.add_argument("--min-done", type=int, default=MIN_DONE, metavar="N",
                   help="finished devices before the threshold applies (default %(default)s)")
    p.add_argument("--stage-timeout", type=int, default=0, metavar="S",
                   help="a stage goes on S seconds after it began without the devices that have not finished "
                   "(they still update when they come back; default 0: wait for every device)")
    p.add_argument("--cap", type=int, default=DEFAULT_CAP, metavar="N",
                   help="devices downloading at once in the district (default %(default)s)")
    p = add_command(g, "status", do_status, common, "show the rollouts: stage, state, counts per device state",
                    "One line per rollout (or the one named): its stage and share, state and why it halted, "
                    "how many of the targeted devices are in each state, and which devices a stage waits for.")
    _state_option(p)
    p.add_argument("rollout", nargs="?", type=int, metavar="ID", help="one rollout")
    for name, verb, what in (("pause", do_pause, "pause a rollout: devices are told to stop (an order without "
                                                 "a release); downloads not yet in trial are abandoned"),
                             ("resume", do_resume, "resume a paused or halted rollout at its stage (the "
                                                   "failures that halted it no longer count; new ones do)"),
                             ("abort", do_abort, "abort a rollout for good: devices are told to stop")):
        p = add_command(g, name, verb, common, what)
        _state_option(p)
        p.add_argument("rollout", type=int, metavar="ID", help="the rollout (see rollout status)")
    p = add_command(g, "serve", do_serve, common, "run the rollout service (long-running)",
                    "Connect to the broker as the rollout service (broker-config's rollout.crt/.key), publish "
                    "signed orders (retained on PREFIX/<district>/ota/order and on each device's ota/down when "
                    "it asks), answer release and block requests within the download cap, record device-signed "
                    "status and run the stages. One JSON line per event with --json. Stops on Ctrl-C or after "
                    "--for seconds.")
    _state_option(p)
    p.add_argument("--registry", required=True, metavar="FILE",
                   help="the registry export (broker-config's registry.json): device keys and districts")
    p.add_argument("--broker", required=True, metavar="URL", help="the broker, e.g. mqtts://localhost:8883")
    p.add_argument("--broker-dir", required=True, metavar="DIR",
                   help="broker-config's folder: ca.crt, rollout.crt, rollout.key, rollout.orders")
    p.add_argument("--mqtt", choices=("5", "3.1.1"), default="5",
                   help="MQTT version (3.1.1 for RabbitMQ's MQTT plugin; default 5)")
    p.add_argument("--prefix", default="civicmote/v1", help="topic prefix (default %(default)s)")
    p.add_argument("--for", dest="run_for", type=float, metavar="S", help="stop after S seconds")


def _store(args, create=False, readonly=False):
    return rollout_store.RolloutStore(args.state or rollout_store.default_path(), create=create, readonly=readonly)


def do_start(out, args):
    from provisioning.cli.release import _ca_key
    from provisioning.ota import release_doc

    stage_list = stages.parse_stages(args.stages)
    for name in ("threshold", "min_done", "cap", "stage_timeout"):
        v = getattr(args, name)
        if v < (0 if name != "cap" else 1) or (name == "threshold" and v > 100):
            raise UsageError("--%s %d: out of range" % (name.replace("_", "-"), v))
    from agent.core.identity import is_device_id

    bad = [d for d in args.canary if not is_device_id(d)]
    if bad or len(set(args.canary)) > MAX_CANARIES:
        raise UsageError("--canary %s: device ids (cm + 16 base32 characters), at most %d (they are named in "
                         "every order, which stays under 1 KiB)" % ((bad or ["..."])[0], MAX_CANARIES))
    if not args.district or any(c in args.district for c in "/+#"):
        raise UsageError("--district %r: a topic level (no '/', '+' or '#')" % args.district)
    try:
        with open(args.release, "rb") as f:
            cose = f.read()
        with open(args.artefact, "rb") as f:
            data = f.read()
    except OSError as e:
        raise UsageError("%s: cannot read (%s)" % (e.filename, e.strerror))
    trusted = [keys.parse_public(k) for k in args.release_key]
    try:
        rel = release_doc.verify(cose, trusted, _ca_key(args.ca) if args.ca else None)
    except release_doc.Refused as e:
        raise UsageError("%s: refused: %s" % (args.release, e))
    import hashlib

    if len(data) != rel["size"] or hashlib.sha256(data).digest() != rel["sha256"]:
        raise UsageError("%s: is not the artefact %s describes (size or SHA-256 differ)"
                         % (args.artefact, args.release))
    digest = hashlib.sha256(cose).digest()
    store = _store(args, create=True)
    try:
        with store.transaction():
            store.add_release(digest, rel, cose, os.path.abspath(args.artefact))
        rid = store.start(digest, args.district, args.canary, stage_list, args.threshold, args.min_done, args.cap,
                          os.urandom(8), args.stage_timeout)
        r = store.rollout(rid)
    finally:
        store.close()
    out.record(_row(r, rel), lambda x: "rollout %d: release %s (seq %d) to district %s, stages %s; "
               "'civicmote rollout serve' carries it out" % (x["rollout"], x["ver"], x["seq"], x["district"],
                                                            "canaries, " * bool(x["canaries"]) + args.stages))
    return 0


def _row(r, rel=None):
    plan = stages.plan(r)
    out = {"rollout": r["id"], "district": r["district"], "release": r["release"].hex(), "state": r["state"],
           "reason": r["reason"], "stage": r["stage"], "pct": plan[min(r["stage"], len(plan) - 1)],
           "canaries": r["canaries"], "stages": r["stages"], "threshold": r["threshold"], "cap": r["cap"],
           "counts": r["counts"], "targeted": r["targeted"], "waiting_for": r["pending"], "order_seq": r["order_seq"],
           "accepted_failures": r["forgiven"], "stage_timeout": r["stage_timeout"],
           "started": r["started"], "done_at": r["done_at"]}
    if rel is not None:
        out.update(seq=rel["seq"], ver=rel["ver"])
    return out


def _human(x):
    took = " in %.0f s" % (x["done_at"] - x["started"]) if x["done_at"] else ""
    line = "rollout %d  %-8s %s  district %s  release %s (seq %s)  stage %s (%s%%)  targeted %d  %s" % (
        x["rollout"], x["state"], x["reason"] or "", x["district"], x.get("ver"), x.get("seq"),
        "canaries" if x["canaries"] and x["stage"] == 0 else x["stage"], x["pct"], x["targeted"],
        " ".join("%s %d" % kv for kv in sorted(x["counts"].items())) or "-")
    if x["waiting_for"] and x["state"] == "running":
        line += "\n  waiting for %s" % ", ".join(x["waiting_for"][:10])
    return line + took


def do_status(out, args):
    store = _store(args, readonly=True)
    try:
        rows = [store.rollout(args.rollout)] if args.rollout else store.rollouts()
        rels = {r["hash"]: r for r in store.releases()}
    finally:
        store.close()
    items = [_row(r, rels.get(r["release"])) for r in rows]
    if out.json:
        out.record({"rollouts": items})
    else:
        out.record({}, "\n".join(_human(x) for x in items) or "no rollouts yet")
    return 0


def _move(args, state, allowed, out):
    store = _store(args)
    try:
        r = store.set_state(args.rollout, state, None, allowed=allowed)
    finally:
        store.close()
    out.record(_row(r), lambda x: "rollout %d is %s; the service tells the devices within a second" % (
        x["rollout"], x["state"]))
    return 0


def do_pause(out, args):
    return _move(args, "paused", ("running",), out)


def do_resume(out, args):
    store = _store(args)
    try:
        r = store.resume(args.rollout)
    finally:
        store.close()
    out.record(_row(r), lambda x: "rollout %d is running again%s; the service tells the devices within a second"
               % (x["rollout"], " (%d failure(s) accepted)" % len(r["forgiven"]) if r["forgiven"] else ""))
    return 0


def do_abort(out, args):
    return _move(args, "aborted", ("running", "paused", "halted"), out)


def do_serve(out, args):
    from provisioning.ota import serve

    return serve.serve(out, args, time.monotonic)
