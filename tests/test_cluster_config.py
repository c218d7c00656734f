"""`civicmote broker-config --kind rabbitmq`: the cluster's files carry Mosquitto's rules (no server
needed here; tests/test_cluster_rabbitmq.py runs them on a real 3-node cluster)."""
import json
import re

from cli_helpers import cli
from provision_support import PASSPHRASE, write_board

from provisioning.city.cluster_config import parse_node, routing_key


def test_rabbitmq_config_from_the_registry(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("CIVICMOTE_CA_PASSPHRASE", PASSPHRASE)
    reg, board, out = tmp_path / "registry.db", write_board(tmp_path), tmp_path / "cluster"
    assert cli(capsys, "ca", "init", "--dir", tmp_path / "ca")[0] == 0
    devs = []
    for name in ("dev1", "dev2"):
        code, o, err = cli(capsys, "provision", "--board", board, "--district", "north", "--target", tmp_path / name,
                           "--ca", tmp_path / "ca", "--registry", reg, "--json")
        assert code == 0, err
        devs.append(json.loads(o)["device_id"])
    assert cli(capsys, "registry", "revoke", devs[1], "--registry", reg, "--json")[0] == 0
    code, o, err = cli(capsys, "broker-config", "--kind", "rabbitmq", "--ca", tmp_path / "ca", "--registry", reg,
                       "--out", out, "--node", "r1@city1:8883:5671", "--node", "r2@city2:8884:5672", "--json")
    assert code == 0, err
    r = json.loads(o)
    assert r["nodes"] == ["r1@city1", "r2@city2"] and r["active"] == 1 and r["refused"] == 1
    d = json.loads((out / "definitions.json").read_text())
    assert {u["name"] for u in d["users"]} == {devs[0], "civicmote-collector", "civicmote-rollout"}  # revoked: none
    assert all(u["password_hash"] == "" for u in d["users"])  # a certificate is the only way in
    tp = {t["user"]: t for t in d["topic_permissions"]}
    own = re.compile(tp[devs[0]]["write"])
    assert own.match(routing_key("civicmote/v1/north/%s/summary" % devs[0]))
    assert not own.match(routing_key("civicmote/v1/north/%s/summary" % devs[1]))
    assert not own.match(routing_key("civicmote/v1/north/%sx/summary" % devs[0]))
    assert not own.match(routing_key("civicmote/v1/south/%s/summary" % devs[0]))  # its registered district only
    assert not own.match(routing_key("civicmote/v1/north/%s/receipt" % devs[0]))  # only the collector writes it
    reads = re.compile(tp[devs[0]]["read"])  # the device reads its own receipts, nothing else
    assert reads.match(routing_key("civicmote/v1/north/%s/receipt" % devs[0]))
    assert not reads.match(routing_key("civicmote/v1/north/%s/receipt" % devs[1]))
    assert not reads.match(routing_key("civicmote/v1/north/%s/summary" % devs[0]))
    # updates (docs/wire-format.md, "Updates"): its own ota/down and its district's order, nothing else
    assert reads.match(routing_key("civicmote/v1/north/%s/ota/down" % devs[0]))
    assert reads.match(routing_key("civicmote/v1/north/ota/order"))
    assert not reads.match(routing_key("civicmote/v1/north/%s/ota/down" % devs[1]))
    assert not reads.match(routing_key("civicmote/v1/south/ota/order"))
    assert own.match(routing_key("civicmote/v1/north/%s/ota/status" % devs[0]))
    assert own.match(routing_key("civicmote/v1/north/%s/ota/req" % devs[0]))
    assert not own.match(routing_key("civicmote/v1/north/%s/ota/status" % devs[1]))
    assert not own.match(routing_key("civicmote/v1/north/ota/order"))
    assert not own.match(routing_key("civicmote/v1/north/%s/ota/down" % devs[0]))
    ro_w, ro_r = re.compile(tp["civicmote-rollout"]["write"]), re.compile(tp["civicmote-rollout"]["read"])
    assert ro_w.match(routing_key("civicmote/v1/north/ota/order"))
    assert ro_w.match(routing_key("civicmote/v1/north/%s/ota/down" % devs[0]))
    assert not ro_w.match(routing_key("civicmote/v1/north/%s/receipt" % devs[0]))
    assert not ro_w.match(routing_key("civicmote/v1/north/%s/ota/status" % devs[0]))
    assert ro_r.match(routing_key("civicmote/v1/north/%s/ota/status" % devs[0]))
    assert not ro_r.match(routing_key("civicmote/v1/north/%s/summary" % devs[0]))
    assert (out / "rollout.orders").read_bytes()[:1] == b"\xd2"
    writes = re.compile(tp["civicmote-collector"]["write"])  # the collector writes receipts only
    assert writes.match(routing_key("civicmote/v1/north/%s/receipt" % devs[0]))
    assert not writes.match(routing_key("civicmote/v1/north/%s/summary" % devs[0]))
    assert (out / "collector.receipt").read_bytes()[:1] == b"\xd2"  # COSE_Sign1 from the CA
    conf = (out / "r2@city2" / "rabbitmq.conf").read_text()
    for line in ("mqtt.listeners.ssl.default = 8884", "listeners.ssl.default = 5672", "listeners.tcp = none",
                 "mqtt.listeners.tcp = none", "ssl_options.fail_if_no_peer_cert = true", "mqtt.ssl_cert_login = true",
                 "ssl_cert_login_from = common_name", "mqtt.allow_anonymous = false",
                 "cluster_formation.classic_config.nodes.1 = r1@city1"):
        assert line in conf
    assert "delete_user %s" % devs[1] in (out / "sync-users.sh").read_text()
    assert (out / "crl.pem").read_bytes().startswith(b"-----BEGIN X509 CRL")
    code, _, err = cli(capsys, "broker-config", "--ca", tmp_path / "ca", "--registry", reg, "--out", out,
                       "--node", "r1")
    assert code == 2 and "--node is for --kind rabbitmq" in err


def test_node_names_and_routing_keys():
    assert parse_node("r@h:1:2") == {"name": "r@h", "mqtts": 1, "amqps": 2}
    assert parse_node("r@h")["mqtts"] == 8883
    assert routing_key("civicmote/v1/a.b/dev/summary") == "civicmote.v1.a/b.dev.summary"
    assert routing_key(routing_key("x/y.z")) == "x/y.z"
