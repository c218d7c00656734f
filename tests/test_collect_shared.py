"""N `civicmote collect` processes sharing one stream (MQTT shared subscription on a real Mosquitto)
and one store (SQLite file or PostgreSQL): every summary stored exactly once, the work split."""
import subprocess

import paho.mqtt.client as paho
import pytest
from broker import Broker
from cli_helpers import CIVICMOTE, cli, json_lines
from delivery_support import make_device
from pg import PgServer
from provision_support import signed_summary

from provisioning.city.gaps import outstanding
from provisioning.city.store_pg import open_store


def _publish(port, items):
    c = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="test-device")
    c.connect("127.0.0.1", port, 30)
    c.loop_start()
    try:
        for topic, msg in items:
            c.publish(topic, msg, qos=1).wait_for_publish(5)
    finally:
        c.disconnect()
        c.loop_stop()


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_three_collectors_share_the_stream_and_store_each_summary_once(backend, tmp_path):
    if backend == "postgresql" and PgServer.available():
        pytest.skip(PgServer.available())
    devs = [tmp_path / ("dev%d" % i) for i in range(2)]
    ids = [make_device(d)[0] for d in devs]
    pg = PgServer().start() if backend == "postgresql" else None
    store = pg.new_database() if pg else str(tmp_path / "city.db")
    try:
        with Broker(tmp_path) as b:
            procs = []
            for i in range(3):
                procs.append(subprocess.Popen(
                    [CIVICMOTE, "collect", "--broker", b.url, "--device-dir"] + [str(d) for d in devs] +
                    ["--store", store, "--share", "city", "--client-id", "city-%d" % i, "--idle", "3",
                     "--duration", "60", "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
            for p in procs:  # each says it is connected (and subscribed right after) before we publish
                assert p.stderr.readline().startswith("connected to"), p.stderr.read()
            sent = [signed_summary(d, "north", seq) for seq in range(1, 31) for d in devs]
            _publish(b.port, [(topic, msg) for _, topic, msg in sent] + [(sent[5][1], sent[5][2])])
            outs = [p.communicate(timeout=60) for p in procs]
        per = []
        for (out, err), p in zip(outs, procs):
            assert p.returncode == 0, err
            per.append(json_lines(out)[-1])
        assert sum(r["accepted"] for r in per) == 60 and sum(r["duplicates"] for r in per) == 1
        assert sum(1 for r in per if r["accepted"] > 0) >= 2  # the broker dealt the stream out
        s = open_store(store)
        for dev in ids:
            assert s.seqs(dev) == list(range(1, 31))
            assert outstanding(s.marks(dev)) == []
        s.close()
    finally:
        if pg:
            pg.stop()


def test_share_needs_a_group_and_own_client_id(tmp_path, capsys):
    d = tmp_path / "dev"
    make_device(d)
    capsys.readouterr()
    base = ["collect", "--broker", "mqtt://127.0.0.1:1", "--device-dir", d]
    code, _, err = cli(capsys, *base, "--share", "city")
    assert code == 2 and "--share needs a --client-id" in err
    code, _, err = cli(capsys, *base, "--share", "a/b", "--client-id", "c1")
    assert code == 2 and "--share 'a/b'" in err


def test_amqps_broker_urls(tmp_path, capsys):
    d = tmp_path / "dev"
    make_device(d)
    capsys.readouterr()
    code, _, err = cli(capsys, "collect", "--broker", "amqps://city1", "--device-dir", d)
    assert code == 2 and "expected amqps://HOST:PORT" in err
    code, _, err = cli(capsys, "collect", "--broker", "amqps://city1:5671,city2:5671", "--device-dir", d,
                       "--share", "g", "--client-id", "c1")
    assert code == 2 and "already share its queue" in err
    code, _, err = cli(capsys, "collect", "--broker", "amqps://city1:5671", "--device-dir", d)
    assert code == 2 and "needs --tls-ca, --tls-cert and --tls-key" in err
