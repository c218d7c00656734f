"""`civicmote collect`: usage and exit codes, a persistent session across collector restarts,
and the documented path from nothing to collected summaries over mutual TLS (broker-config)."""
import json
import os
import subprocess
import time

import paho.mqtt.client as paho
import pytest
from broker import MOSQUITTO, Broker, free_port
from cli_helpers import CIVICMOTE, cli, json_lines, run_cli
from delivery_support import make_device
from provision_support import PASSPHRASE, Mosquitto, signed_summary, write_board


def test_usage_errors_exit_2(tmp_path, capsys):
    d = tmp_path / "dev"
    make_device(d)
    capsys.readouterr()
    base = ["collect", "--broker", "mqtt://127.0.0.1:1", "--device-dir", d]
    code, _, err = cli(capsys, *base, "--count", "0")
    assert code == 2 and "--count must be positive" in err
    code, _, err = cli(capsys, *base, "--tls-ca", d / "ca.crt")
    assert code == 2 and "need an mqtts:// broker" in err
    code, _, err = cli(capsys, "collect", "--broker", "mqtt://127.0.0.1:1", "--device-dir", tmp_path / "none")
    assert code == 2 and "no device identity" in err
    code, _, err = cli(capsys, "collect", "--broker", "mqtt://127.0.0.1:1")
    assert code == 2 and "--registry" in err
    code, _, err = cli(capsys, *base[:3], "--registry", tmp_path / "missing.json")
    assert code == 2 and "missing.json" in err


def test_unreachable_broker_exits_3(tmp_path, capsys):
    d = tmp_path / "dev"
    make_device(d)
    capsys.readouterr()
    t = time.monotonic()
    code, out, err = cli(capsys, "collect", "--broker", "mqtt://127.0.0.1:%d" % free_port(), "--device-dir", d,
                         "--connect-timeout", "1", "--json")
    assert code == 3 and out == ""
    last = err.strip().splitlines()[-1]  # before it: one note per failed attempt
    assert last.startswith("civicmote: error: ") and "did not let the collector in within 1s" in last
    assert time.monotonic() - t < 5


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


def test_restarted_collector_gets_what_it_missed_and_drops_duplicates(tmp_path, capsys):
    d = tmp_path / "dev"
    make_device(d)
    store = tmp_path / "city.db"
    with Broker(tmp_path) as b:
        args = ["collect", "--broker", b.url, "--device-dir", d, "--store", store, "--client-id", "city-1", "--json"]
        # First run: subscribes (a persistent session), nothing to read; --count not reached -> 1.
        code, out, err = cli(capsys, *args, "--count", "1", "--duration", "0.5")
        assert code == 1, err
        assert json_lines(out)[-1] == {"event": "stopped", "reason": "duration", "accepted": 0, "duplicates": 0,
                                       "rejected": 0, "held": 0, "gaps": 0}
        # While the collector is away, the device publishes three summaries: the broker queues them.
        sent = [signed_summary(d, "north", seq) for seq in (1, 2, 3)]
        _publish(b.port, [(topic, msg) for _, topic, msg in sent])
        code, out, err = cli(capsys, *args, "--count", "3", "--duration", "10")
        assert code == 0, err
        events = json_lines(out)
        assert [e["seq"] for e in events if e["event"] == "summary"] == [1, 2, 3]
        assert events[-1]["reason"] == "count"
        # Seq 3 again (a device that never saw its PUBACK), a forgery, and seq 4: the store remembers 3.
        _, topic, msg4 = signed_summary(d, "north", 4)
        _publish(b.port, [(sent[2][1], sent[2][2]), (topic, b"not a signed message"), (topic, msg4)])
        code, out, err = cli(capsys, *args, "--count", "1", "--duration", "10")
        assert code == 0, err
        events = json_lines(out)
        assert [(e["event"], e.get("seq")) for e in events] == [("duplicate", 3), ("rejected", None), ("summary", 4),
                                                                 ("stopped", None)]
        assert events[1]["topic"] == topic and "COSE_Sign1: expected CBOR tag 18" in events[1]["reason"]


@pytest.mark.skipif(not os.path.exists(MOSQUITTO), reason="mosquitto not installed (make broker-deps)")
def test_from_nothing_to_collected_summaries_over_mutual_tls(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("CIVICMOTE_CA_PASSPHRASE", PASSPHRASE)
    board, reg, ca, broker = write_board(tmp_path), tmp_path / "registry.db", tmp_path / "ca", tmp_path / "broker"
    port = free_port()
    assert cli(capsys, "ca", "init", "--dir", ca)[0] == 0
    code, out, err = cli(capsys, "provision", "--board", board, "--district", "north", "--target", tmp_path / "d1",
                         "--ca", ca, "--registry", reg, "--broker", "mqtts://localhost:%d" % port, "--json")
    assert code == 0, err
    dev = json.loads(out)["device_id"]
    code, out, err = cli(capsys, "broker-config", "--ca", ca, "--registry", reg, "--out", broker, "--port", port,
                         "--bind", "127.0.0.1", "--user", "root", "--json")
    assert code == 0, err
    code, out, err = cli(capsys, "registry", "export", "--registry", reg, "--json")
    (tmp_path / "export.json").write_text(out)
    m = Mosquitto(broker / "mosquitto.conf", port)
    try:
        collector = subprocess.Popen(
            [CIVICMOTE, "collect", "--broker", "mqtts://localhost:%d" % port, "--registry", tmp_path / "export.json",
             "--tls-ca", broker / "ca.crt", "--tls-cert", broker / "collector.crt", "--tls-key",
             broker / "collector.key", "--store", tmp_path / "city.db", "--count", "3", "--duration", "60", "--json"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        # A new session gets only what is published after it subscribed (summaries are not retained).
        assert collector.stderr.readline().startswith("connected to mqtts://localhost")
        r = run_cli("run", "--device-dir", tmp_path / "d1", "--fast", "--windows", "3", "--json")
        assert r.returncode == 0, r.stderr
        out, err = collector.communicate(timeout=60)
    finally:
        m.stop()
    assert collector.returncode == 0, err
    events = json_lines(out)
    kinds = [e["event"] for e in events]
    assert kinds[0] == "manifest" and kinds.count("summary") == 3 and kinds[-1] == "stopped"
    assert all(e["device_id"] == dev and e["mh_ok"] is True for e in events if e["event"] == "summary")
