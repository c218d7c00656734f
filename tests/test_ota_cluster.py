"""Orders reach devices on a RabbitMQ cluster, whose retained messages stay on the node they
were published to (rabbitmq/rabbitmq-server#8096).

A 2-node cluster configured by `broker-config --kind rabbitmq` (provisioning/city/cluster_config.py,
with the rollout service's user and the devices' update topics): the rollout service is connected
to node 0, every device to node 1. The retained order is published on node 0 only; devices get
it because they ask for it on connect ({"op": "order"} on their ota/req), and the service answers
on each device's own ota/down. Every device then downloads its blocks through the cluster and
confirms; the rollout completes. Devices are simulated at the protocol level (ota_fleet).
"""
import pytest
from provision_support import wait_for
from rabbit import RabbitCluster, rabbit_nodes

from provisioning.city import cluster_config
from ota_fleet_city import OtaCity


def test_rollout_through_rabbitmq_cluster(tmp_path):
    reason = RabbitCluster.available()
    if reason:
        pytest.skip(reason)
    with OtaCity(tmp_path / "city", devices=6, mosquitto=False) as oc:
        nodes = rabbit_nodes(2)
        oc.broker_dir = tmp_path / "broker"
        cluster_config.write(oc.city.ca, oc.city.records, oc.broker_dir, nodes)
        with RabbitCluster(oc.broker_dir, nodes, home=tmp_path / "nodes"):
            oc.start_service(port=nodes[0]["mqtts"], protocol="3.1.1")
            rid = oc.start(stages="50,100")
            assert wait_for(lambda: oc.rollout(rid)["order_seq"] == 1, 20)  # published (retained) on node 0
            devs = oc.run_fleet(until=oc.finished(rid), timeout=120, port=nodes[1]["mqtts"])
            r = oc.rollout(rid)
            assert r["state"] == "done", (r, [(d.d.dev, d.states) for d in devs])
            assert all(d.sw == 2 for d in devs)
            # the first order reached every device on node 1 only as the answer to its request, on its own
            # ota/down: the retained copy stayed on node 0
            seen = {d.d.dev: d.orders_seen for d in devs}
            assert all(("down", 1) in s and ("order", 1) not in s for s in seen.values()), seen
            assert oc.service.blocks.served["O"] >= len(devs)
            assert oc.service.counts["answers"] >= len(devs)
            oc.__exit__(None, None, None)  # the service leaves before the cluster stops
