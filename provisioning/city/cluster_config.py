"""The clustered city broker's configuration: RabbitMQ (MQTT plugin, quorum queue), from the CA and registry (CPython only).

`civicmote broker-config --kind rabbitmq` writes, for a cluster of NODES (default: one, on this
host), the same rules as for Mosquitto:
    ca.crt, server.crt/.key   mutual TLS on every listener; the broker's certificate (SANs as Mosquitto's)
    collector.crt/.key        the collectors' identity (AMQPS, SASL EXTERNAL: its CN)
    collector.receipt         collector.key certified by the CA for signing receipts (city/receipts.py)
    rollout.crt/.key, rollout.orders   the rollout service's identity (MQTT) and its order-signing
                              certificate (pki/rollout_key.py)
    crl.pem                   the CRL, as for Mosquitto (for a TLS front end; see "revocation" below)
    definitions.json          users = the active devices (CN = identity, no password: only a certificate
                              logs in) and the collector; a device may write only under its own id
                              and registered district
                              (topic permission on amq.topic), read only its receipts (through its
                              MQTT session's own queue), declare nothing else; the collectors
                              write only receipts
    enabled_plugins           rabbitmq_mqtt, rabbitmq_auth_mechanism_ssl
    NODE/rabbitmq.conf        per node: its MQTTS and AMQPS ports, TLS required, classic peer discovery
    sync-users.sh             after `civicmote registry revoke|disable`: deletes refused devices' users
                              (which closes their logins) and imports the definitions again
Revocation: RabbitMQ 3.10 gives MQTT logins by certificate only to users that exist, so a
refused device, absent from definitions.json and deleted by sync-users.sh, cannot log in
although its certificate still chains.

Devices publish over MQTT 3.1.1 (QoS 1) to any node; the broker turns PREFIX/d/id/kind into the
routing key PREFIX.d.id.kind (it swaps '/' and '.'). The collectors declare one quorum queue,
QUEUE, bound to the device topics (replicated on every node present when it is declared), and
consume it as competing consumers; a PUBACK is sent only once the quorum has the message.
"""
import json
import socket
from pathlib import Path

from provisioning.city import broker_config
from provisioning.errors import EnvironmentProblem, UsageError
from provisioning.pki import rollout_key

QUEUE = "civicmote.city"
KINDS = ("summary", "manifest")
RECEIPT = "receipt"  # the collector writes it, the device reads its own (docs/wire-format.md)
DEFAULT_MQTTS, DEFAULT_AMQPS = 8883, 5671
PLUGINS = "[rabbitmq_mqtt,rabbitmq_auth_mechanism_ssl].\n"


def routing_key(topic):
    """The routing key RabbitMQ's MQTT plugin gives an MQTT topic (and back: it is its own inverse)."""
    return topic.translate(str.maketrans("./", "/."))


def parse_node(text):
    """NAME[:MQTTS_PORT:AMQPS_PORT] -> {name, mqtts, amqps}; NAME is rabbit@host (host defaults to this one)."""
    parts = text.split(":")
    name = parts[0] if "@" in parts[0] else "%s@%s" % (parts[0], socket.gethostname().split(".")[0])
    try:
        if len(parts) == 1:
            return {"name": name, "mqtts": DEFAULT_MQTTS, "amqps": DEFAULT_AMQPS}
        if len(parts) == 3:
            return {"name": name, "mqtts": int(parts[1]), "amqps": int(parts[2])}
    except ValueError:
        pass
    raise UsageError("--node %r: expected NAME or NAME:MQTTS_PORT:AMQPS_PORT (e.g. rabbit@city1:8883:5671)" % text)


def _re(s):
    return "".join("\\" + c if c in ".^$*+?()[]{}|\\" else c for c in s)


def definitions(records, prefix=broker_config.PREFIX, collector=broker_config.COLLECTOR_CN):
    """RabbitMQ definitions: who may log in and what each may touch."""
    key = _re(routing_key(prefix))
    users = [{"name": collector, "password_hash": "", "tags": []}]
    perms = [{"user": collector, "vhost": "/", "configure": "^%s$" % _re(QUEUE),
              "write": "^(%s|amq\\.topic)$" % _re(QUEUE), "read": "^(%s|amq\\.topic)$" % _re(QUEUE)}]
    topics = [{"user": collector, "vhost": "/", "exchange": "amq.topic",
               "write": "^%s\\.[^.]+\\.[^.]+\\.%s$" % (key, RECEIPT),  # receipts to devices, nothing else
               "read": "^%s\\.[^.]+\\.[^.]+\\.(%s)$" % (key, "|".join(KINDS))}]
    # the rollout service (docs/updates.md): reads update requests and statuses through its MQTT
    # session's own queue; writes district orders and per-device answers
    rollout = broker_config.ROLLOUT_CN
    own = "mqtt-subscription-%sqos[01]" % _re(rollout)
    users.append({"name": rollout, "password_hash": "", "tags": []})
    perms.append({"user": rollout, "vhost": "/", "configure": "^%s$" % own, "write": "^(amq\\.topic|%s)$" % own,
                  "read": "^(amq\\.topic|%s)$" % own})
    topics.append({"user": rollout, "vhost": "/", "exchange": "amq.topic",
                   "write": "^%s\\.[^.]+\\.(ota\\.order|[^.]+\\.ota\\.down)$" % key,
                   "read": "^%s\\.[^.]+\\.[^.]+\\.ota\\.(req|status)$" % key})
    for r in records:
        if r["status"] != "active":
            continue
        dev = r["device_id"]
        users.append({"name": dev, "password_hash": "", "tags": []})
        # Its MQTT session's own queue (to receive its receipts), and nothing else to declare or read.
        own = "mqtt-subscription-%sqos[01]" % _re(dev)
        perms.append({"user": dev, "vhost": "/", "configure": "^%s$" % own, "write": "^(amq\\.topic|%s)$" % own,
                      "read": "^(amq\\.topic|%s)$" % own})
        district = _re(routing_key(r["district"])) if r.get("district") else "[^.]+"  # pinned, as Mosquitto's ACL
        topics.append({"user": dev, "vhost": "/", "exchange": "amq.topic",
                       "write": "^%s\\.%s\\.%s\\.(%s|status|ota\\.req|ota\\.status)$"
                                % (key, district, _re(dev), "|".join(KINDS)),
                       "read": "^%s\\.%s\\.(%s\\.(%s|ota\\.down)|ota\\.order)$" % (key, district, _re(dev), RECEIPT)})
    return {"rabbit_version": "3.10.8", "vhosts": [{"name": "/"}], "users": users, "permissions": perms,
            "topic_permissions": topics}


def conf_text(d, node, nodes):
    d = Path(d).absolute()
    lines = ["# generated by civicmote broker-config --kind rabbitmq for %s; do not edit, re-run it" % node["name"],
             "listeners.tcp = none", "listeners.ssl.default = %d" % node["amqps"],
             "mqtt.listeners.tcp = none", "mqtt.listeners.ssl.default = %d" % node["mqtts"],
             "ssl_options.cacertfile = %s" % (d / "ca.crt"), "ssl_options.certfile = %s" % (d / "server.crt"),
             "ssl_options.keyfile = %s" % (d / "server.key"), "ssl_options.verify = verify_peer",
             "ssl_options.fail_if_no_peer_cert = true", "ssl_options.versions.1 = tlsv1.3",
             "ssl_options.versions.2 = tlsv1.2",
             "ssl_cert_login_from = common_name", "auth_mechanisms.1 = EXTERNAL",
             "mqtt.ssl_cert_login = true", "mqtt.allow_anonymous = false", "mqtt.vhost = /",
             "mqtt.exchange = amq.topic", "loopback_users = none", "load_definitions = %s" % (d / "definitions.json"),
             "cluster_formation.peer_discovery_backend = classic_config"]
    lines += ["cluster_formation.classic_config.nodes.%d = %s" % (i, n["name"]) for i, n in enumerate(nodes, 1)]
    return "\n".join(lines) + "\n"


def sync_script(d, records):
    lines = ["#!/bin/sh", "# generated by civicmote broker-config --kind rabbitmq: run on one node after a",
             "# revoke, disable or enable (rabbitmqctl reaches the cluster)", "set -e"]
    for r in records:
        if r["status"] != "active":
            lines.append("rabbitmqctl delete_user %s >/dev/null 2>&1 || true  # %s" % (r["device_id"], r["status"]))
    lines.append("rabbitmqctl import_definitions %s" % (Path(d).absolute() / "definitions.json"))
    return "\n".join(lines) + "\n"


def write(authority, records, out_dir, nodes=None, hosts=()):
    """Write the cluster's folder; returns a summary dict. records: registry records (all statuses)."""
    import datetime

    from provisioning import files
    from provisioning.pki.ca import cert_serial

    nodes = nodes or [parse_node("rabbit")]
    d = Path(out_dir)
    now = datetime.datetime.now(datetime.timezone.utc)
    try:
        files.make_dir(d, 0o755)
        sans = broker_config._san_list(list(hosts) + [n["name"].split("@", 1)[1] for n in nodes])
        new_server = broker_config._keep_or_issue(authority, d / "server.crt", d / "server.key",
                                                  broker_config.BROKER_CN, "server", sans, None, 0o600, now)
        new_collector = broker_config._keep_or_issue(authority, d / "collector.crt", d / "collector.key",
                                                     broker_config.COLLECTOR_CN, "client", [], None, 0o600, now)
        broker_config._receipts_cert(authority, d)
        rollout_key.write_identity(authority, d, now, broker_config._keep_or_issue, broker_config.ROLLOUT_CN)
        refused = [(cert_serial(r["certificate"]),
                    datetime.datetime.fromtimestamp(r["updated"], datetime.timezone.utc), r["status"] == "disabled")
                   for r in records if r["status"] != "active" and r.get("certificate")]
        w = files.write_file
        w(d / "ca.crt", authority.pem, 0o644)
        w(d / "crl.pem", authority.crl(refused, now=now), 0o644)
        w(d / "definitions.json", json.dumps(definitions(records), indent=1, sort_keys=True).encode(), 0o640)
        w(d / "enabled_plugins", PLUGINS.encode(), 0o644)
        w(d / "sync-users.sh", sync_script(d, records).encode(), 0o750)
        for n in nodes:
            files.make_dir(d / n["name"], 0o755)
            w(d / n["name"] / "rabbitmq.conf", conf_text(d, n, nodes).encode(), 0o640)
    except OSError as e:
        raise EnvironmentProblem("%s: cannot write the cluster configuration (%s)" % (d, e.strerror))
    return {"out": str(d.absolute()), "kind": "rabbitmq", "nodes": [n["name"] for n in nodes],
            "active": sum(1 for r in records if r["status"] == "active"), "refused": len(refused),
            "new_server_cert": new_server, "new_collector_cert": new_collector}
