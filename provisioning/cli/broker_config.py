"""`civicmote broker-config`: the city broker's config, Mosquitto or a RabbitMQ cluster (CPython only)."""
from provisioning.city import broker_config, cluster_config
from provisioning.pki import ca
from provisioning.cli.common import add_command
from provisioning.errors import UsageError
from provisioning.pki.registry import Registry, default_path


def register(sub, common):
    p = add_command(sub, "broker-config", do_broker_config, common,
                    "write a Mosquitto config: mutual TLS, per-device ACLs, a CRL, and the collector's identity",
                    "Write OUT/mosquitto.conf and the files it names (ca.crt, server.crt/.key, crl.pem, acl) "
                    "plus OUT/collector.crt and OUT/collector.key. Devices may write only under "
                    "civicmote/v1/+/<their id>/ and read nothing; the collector reads every device topic and "
                    "writes none; revoked and disabled devices are on the CRL. Start the broker with "
                    "'mosquitto -c OUT/mosquitto.conf'; after a registry change re-run this and send it SIGHUP. "
                    "With --kind rabbitmq: the same rules for a RabbitMQ cluster (one folder per --node, "
                    "definitions.json, sync-users.sh; see docs/scale.md).")
    p.add_argument("--kind", choices=("mosquitto", "rabbitmq"), default="mosquitto",
                   help="mosquitto (one machine, the default) or rabbitmq (a cluster: MQTT plugin, quorum queue)")
    p.add_argument("--node", action="append", default=[], metavar="NAME[:MQTTS:AMQPS]",
                   help="--kind rabbitmq: a cluster node, e.g. rabbit@city1 or rabbit1@localhost:8883:5671 "
                   "(repeatable; default one node on this host, ports 8883 and 5671)")
    p.add_argument("--ca", required=True, metavar="DIR", help="provisioning CA folder")
    p.add_argument("--registry", metavar="FILE", help="registry database (default $CIVICMOTE_REGISTRY or "
                                                      "./registry.db)")
    p.add_argument("--out", required=True, metavar="DIR", help="folder to write the broker configuration into")
    p.add_argument("--port", type=int, default=broker_config.DEFAULT_PORT, metavar="N",
                   help="TLS listener port (default %d)" % broker_config.DEFAULT_PORT)
    p.add_argument("--bind", metavar="ADDRESS", help="listen on this address only (default: all)")
    p.add_argument("--host", action="append", default=[], metavar="NAME",
                   help="a name or address devices use to reach the broker (repeatable; localhost is always in)")
    p.add_argument("--user", metavar="NAME", help="the user Mosquitto drops to when started as root; it must be "
                                                  "able to read OUT (Mosquitto's default: mosquitto)")


def do_broker_config(out, args):
    reg = Registry(args.registry or default_path())
    try:
        records = reg.list()
    finally:
        reg.close()
    authority = ca.LazyCA(args.ca).get()
    if args.kind == "rabbitmq":
        nodes = [cluster_config.parse_node(n) for n in args.node] or None
        result = cluster_config.write(authority, records, args.out, nodes, args.host)
        out.record(result, lambda r: "wrote %s for %s: %d active device(s), %d refused\nstart each node with "
                   "RABBITMQ_CONFIG_FILE=%s/NODE/rabbitmq.conf RABBITMQ_ENABLED_PLUGINS_FILE=%s/enabled_plugins\n"
                   "after a registry change: re-run this, then sh %s/sync-users.sh on one node"
                   % (r["out"], ", ".join(r["nodes"]), r["active"], r["refused"], r["out"], r["out"], r["out"]))
        return 0
    if args.node:
        raise UsageError("--node is for --kind rabbitmq")
    result = broker_config.write(authority, records, args.out, args.port, args.bind, args.host, args.user)
    out.record(result, lambda r: "wrote %s (port %d): %d active device(s), %d on the CRL\nstart: mosquitto -c %s\n"
               "reload after a registry change: re-run this, then kill -HUP <mosquitto pid>"
               % (r["out"], r["port"], r["active"], r["refused"], r["conf"]))
    return 0
