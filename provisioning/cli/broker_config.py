"""`civicmote broker-config`: a Mosquitto config for the city broker, kept current (CPython only)."""
import os

from provisioning import files
from provisioning.city import broker_config, broker_ops, cluster_config, units
from provisioning.cli.common import add_command
from provisioning.errors import EXIT_FAILED, UsageError
from provisioning.pki import ca
from provisioning.pki.registry import Registry, default_path


def register(sub, common):
    p = add_command(sub, "broker-config", do_broker_config, common,
                    "write a Mosquitto config: mutual TLS, per-device ACLs, a CRL, persistence, the collector's "
                    "identity and systemd units; --reload applies it to a running broker; --check warns of expiry",
                    "Write OUT/mosquitto.conf and the files it names (ca.crt, server.crt/.key, crl.pem, acl, data/) "
                    "plus OUT/collector.crt, OUT/collector.key, OUT/collector.receipt (the CA certifying that key for "
                    "signing receipts to devices), OUT/registry.json (the export the collector "
                    "verifies against) and OUT/systemd/ (units for the broker, the collector and the daily "
                    "refresh). Each active device may write only under civicmote/v1/<its registered district>/"
                    "<its id>/ (summary, manifest, status) and read only its receipt there; the collector reads every "
                    "device topic and writes only receipts; revoked "
                    "and disabled devices are on the CRL, which is valid --crl-days and re-signed by every run. "
                    "Run as root, the files Mosquitto reads after dropping to --user (default mosquitto) are "
                    "given to that user's group. --reload also sends SIGHUP to the broker running from OUT. "
                    "--check only reads OUT and warns (exit 1) when the CRL or a certificate has fewer than "
                    "%d days left." % broker_config.WARN_DAYS)
    p.add_argument("--ca", metavar="DIR", help="provisioning CA folder (not needed with --check)")
    p.add_argument("--kind", choices=("mosquitto", "rabbitmq"), default="mosquitto",
                   help="mosquitto (one machine, the default) or rabbitmq: the same rules for a RabbitMQ cluster "
                   "(MQTT plugin, quorum queue; one folder per --node, definitions.json, sync-users.sh; "
                   "docs/scale.md)")
    p.add_argument("--node", action="append", default=[], metavar="NAME[:MQTTS:AMQPS]",
                   help="--kind rabbitmq: a cluster node, e.g. rabbit@city1 or rabbit1@localhost:8883:5671 "
                   "(repeatable; default one node on this host, ports 8883 and 5671)")
    p.add_argument("--registry", metavar="FILE", help="registry database (default $CIVICMOTE_REGISTRY or "
                                                      "./registry.db)")
    p.add_argument("--out", required=True, metavar="DIR", help="folder to write the broker configuration into")
    p.add_argument("--port", type=int, default=broker_config.DEFAULT_PORT, metavar="N",
                   help="TLS listener port (default %d)" % broker_config.DEFAULT_PORT)
    p.add_argument("--bind", metavar="ADDRESS", help="listen on this address only (default: all)")
    p.add_argument("--host", action="append", default=[], metavar="NAME",
                   help="a name or address devices use to reach the broker (repeatable; localhost is always in)")
    p.add_argument("--user", metavar="NAME", help="the user Mosquitto drops to when started as root; it is given "
                                                  "read access to what it reads (default when root: mosquitto)")
    p.add_argument("--collector-user", metavar="NAME", help="the user the collector runs as: owns collector.key "
                                                            "and registry.json (default: whoever runs this)")
    p.add_argument("--crl-days", type=int, default=broker_config.CRL_DAYS, metavar="N",
                   help="CRL validity in days (default %d; the refresh timer re-signs it daily)"
                   % broker_config.CRL_DAYS)
    p.add_argument("--queue-hours", type=int, default=broker_config.QUEUE_HOURS, metavar="H",
                   help="size the collector's queue for an absence of H hours at the fleet's rate (default %d)"
                   % broker_config.QUEUE_HOURS)
    p.add_argument("--window", type=int, default=broker_config.WINDOW_S, metavar="S",
                   help="the devices' summary window in seconds, for sizing the queue (default %d)"
                   % broker_config.WINDOW_S)
    act = p.add_mutually_exclusive_group()
    act.add_argument("--reload", action="store_true", help="after writing, SIGHUP the Mosquitto running from OUT")
    act.add_argument("--check", action="store_true", help="only report how long the CRL and certificates last")


def do_broker_config(out, args):
    if args.check:
        report = broker_ops.check(args.out, warn_days=broker_config.WARN_DAYS)
        out.record(report, lambda r: "\n".join(
            ["CRL valid until %s (%.1f days)" % (r["crl_next_update"], r["crl_days_left"])]
            + ["%s valid until %s (%.1f days)" % (k, v["not_after"], v["days_left"]) for k, v in r["certs"].items()]
            + ["WARNING: %s" % w for w in r["warnings"]] + ["EXPIRED: %s" % w for w in r["expired"]]))
        return EXIT_FAILED if report["warnings"] or report["expired"] else 0
    if not args.ca:
        raise UsageError("--ca DIR is needed to write the broker configuration (only --check goes without)")
    for name in ("crl_days", "queue_hours", "window"):
        if getattr(args, name) <= 0:
            raise UsageError("--%s must be positive" % name.replace("_", "-"))
    registry = os.path.abspath(args.registry or default_path())
    reg = Registry(registry)
    try:
        records = reg.list()
        export = reg.export()
    finally:
        reg.close()
    authority = ca.LazyCA(args.ca).get()
    if args.kind == "rabbitmq":
        return _rabbitmq(out, args, authority, records)
    if args.node:
        raise UsageError("--node is for --kind rabbitmq")
    result = broker_config.write(authority, records, args.out, args.port, args.bind, args.host, args.user,
                                 export=export, crl_days=args.crl_days, queue_hours=args.queue_hours,
                                 window_s=args.window, collector_user=args.collector_user)
    out_dir = os.path.abspath(args.out)
    files.make_dir(os.path.join(out_dir, "systemd"), 0o755)
    for name, text in units.units(out_dir, os.path.abspath(args.ca), registry, args.port, args.bind, args.host,
                                  args.user, args.collector_user).items():
        files.write_file(os.path.join(out_dir, "systemd", name), text.encode(), 0o644)
    result["systemd"] = os.path.join(out_dir, "systemd")
    result["reloaded_pid"] = broker_ops.reload(args.out) if args.reload else None
    out.record(result, _human)
    return 0


def _rabbitmq(out, args, authority, records):
    if args.reload:
        raise UsageError("--reload is for Mosquitto; for RabbitMQ run OUT/sync-users.sh on one node")
    nodes = [cluster_config.parse_node(n) for n in args.node] or None
    result = cluster_config.write(authority, records, args.out, nodes, args.host)
    out.record(result, lambda r: "wrote %s for %s: %d active device(s), %d refused\nstart each node with "
               "RABBITMQ_CONFIG_FILE=%s/NODE/rabbitmq.conf RABBITMQ_ENABLED_PLUGINS_FILE=%s/enabled_plugins\n"
               "after a registry change: re-run this, then sh %s/sync-users.sh on one node"
               % (r["out"], ", ".join(r["nodes"]), r["active"], r["refused"], r["out"], r["out"], r["out"]))
    return 0


def _human(r):
    lines = ["wrote %s (port %d): %d active device(s), %d on the CRL, CRL valid until %s"
             % (r["out"], r["port"], r["active"], r["refused"], r["crl_next_update"]),
             "Mosquitto reads its files as %s; the collector reads collector.key and registry.json as %s"
             % (r["broker_user"], r["readers"]["collector.key"]),
             "collector queue: %d messages (--queue-hours)" % r["max_queued_messages"],
             "start: mosquitto -c %s   (or the units in %s)" % (r["conf"], r["systemd"])]
    if r["reloaded_pid"]:
        lines.append("reloaded the running broker (pid %d)" % r["reloaded_pid"])
    else:
        lines.append("after a registry change: re-run this with --reload (the refresh timer does it daily)")
    return "\n".join(lines)
