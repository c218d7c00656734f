"""Group commit and a network loop that never stalls (issue 25, parts 2 to 4 on the collector's side).

- a batch is one transaction; a message that fails inside it is rejected alone, with its reason;
  a store failure commits nothing and acknowledges nothing;
- the collector stays connected while its store is slower than the MQTT keepalive;
- a burst into an in-memory collector whose output nobody reads for a while is all stored (the
  board soak's failure: the collector's output pipe filled, its one loop blocked, it missed its
  keepalive and lost its clean session);
- a collector SIGKILLed in the middle of a burst loses nothing and counts duplicates.
Real Mosquitto on free ports, real signatures, SQLite in tmp_path.
"""
import json
import signal
import sqlite3
import subprocess
import threading
import time

import paho.mqtt.client as paho
import pytest
from broker import Broker
from cli_helpers import CIVICMOTE
from test_collector import Device, collector_for, kinds

from provisioning.city.collector import Collector, committed_seqs
from provisioning.city.intake import Intake
from provisioning.city.subscription import Subscription

UNLIMITED_QUEUE = "max_queued_messages 0\n"  # the test broker's sessions keep every queued message


class FaultyCollector(Collector):
    """A collector with a defect: judging seq 13 raises (an error of ours, not the message's)."""

    def _summary(self, dev, district, s, topic, message, now):
        if s["seq"] == 13:
            raise KeyError("a defect")
        return Collector._summary(self, dev, district, s, topic, message, now)


def test_a_batch_is_one_transaction_and_a_failing_message_is_rejected_alone(tmp_path):
    a, b = Device(), Device()
    ring = collector_for(a, b).keyring
    c = FaultyCollector(ring, str(tmp_path / "city.db"))
    commits = []
    c.on_committed.append(commits.append)
    batch = [(a.topic(), a.summary(seq), None) for seq in range(1, 21)]
    batch[4] = (a.topic(), b"\xa0not a COSE message", None)  # seq 5 never arrives: a gap
    batch += [(b.topic(), a.summary(99), None), (b.topic(), b.summary(1), None)]
    results = c.handle_batch(batch)
    assert len(results) == len(batch)
    assert kinds(results[4]) == ["rejected"]
    assert kinds(results[12]) == ["rejected"] and "could not judge" in results[12][0]["reason"]
    assert "signed by %s but published on the topic of %s" % (a.dev, b.dev) in results[20][0]["reason"]
    assert kinds(results[21]) == ["summary"]
    assert c.seqs(a.dev) == [s for s in range(1, 21) if s not in (5, 13)]
    assert c.seqs(b.dev) == [1]
    devs = c.devices()
    assert devs[a.dev]["accepted"] == 18 and devs[a.dev]["rejected"] == 1  # a defect: judged of no device
    assert [(g["first"], g["last"]) for g in devs[a.dev]["open_gaps"]] == [(5, 5), (13, 13)]
    # the failing message made the batch be retried one transaction each; the hooks heard of
    # every commit, and of every summary stored, once
    assert sorted(s for ev in commits for s in committed_seqs(ev)) == sorted(
        [(a.dev, s) for s in range(1, 21) if s not in (5, 13)] + [(b.dev, 1)])
    # a defect-free batch is one transaction, one hook call
    commits.clear()
    results = c.handle_batch([(b.topic(), b.summary(seq), None) for seq in range(20, 70)])
    assert len(commits) == 1 and len(committed_seqs(commits[0])) == 50
    c.close()


def test_a_store_failure_in_a_batch_records_and_acknowledges_nothing_after_it(tmp_path):
    dev = Device()
    path = str(tmp_path / "city.db")
    c = collector_for(dev, store=path)
    blocker = sqlite3.connect(path, isolation_level=None, timeout=0)
    blocker.execute("BEGIN EXCLUSIVE")  # another writer holds the database
    c.store.db.execute("PRAGMA busy_timeout=0")
    with pytest.raises(sqlite3.OperationalError) as e:
        c.handle_batch([(dev.topic(), dev.summary(seq), None) for seq in range(1, 11)])
    assert e.value.committed == []
    blocker.execute("ROLLBACK")
    blocker.close()
    assert c.seqs(dev.dev) == []
    assert [kinds(r) for r in c.handle_batch([(dev.topic(), dev.summary(s), None) for s in range(1, 11)])] == \
        [["summary"]] * 10


def _publisher(port, client_id="test-device"):
    c = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=client_id)
    c.max_inflight_messages_set(100)
    c.connect("127.0.0.1", port, 30)
    c.loop_start()
    return c


def _publish_all(port, items):
    c = _publisher(port)
    try:
        infos = [c.publish(topic, msg, qos=1) for topic, msg in items]
        for info in infos:
            info.wait_for_publish(30)
    finally:
        c.disconnect()
        c.loop_stop()


class SlowCollector(Collector):
    """A store far slower than the keepalive: every batch takes `pause` seconds."""

    pause = 4.0  # Mosquitto drops a client silent for 1.5 keepalives: 3 s here

    def handle_batch(self, messages):
        time.sleep(self.pause)
        return Collector.handle_batch(self, messages)


def test_the_collector_stays_connected_while_its_store_is_slower_than_keepalive(tmp_path):
    devs = [Device() for _ in range(3)]
    ring = collector_for(*devs).keyring
    with Broker(tmp_path) as b:
        c = SlowCollector(ring, None)
        sub = Subscription("127.0.0.1", b.port, "slow-collector", ["civicmote/v1/+/+/summary"], keepalive=2,
                           persistent=False)
        intake = Intake(sub, c, batch=100, linger_s=0.05)
        news = []
        end = time.monotonic() + 10
        while not sub.connected and time.monotonic() < end:
            news += intake.step(0.1)[0]
        time.sleep(0.3)  # the SUBACK
        items = [(d.topic(), d.summary(seq)) for seq in range(1, 101) for d in devs]
        _publish_all(b.port, items)
        stored = []
        end = time.monotonic() + 60
        while len(stored) < len(items) and time.monotonic() < end:
            got, events = intake.step(0.2)
            news += got
            stored += [e for e in events if e["event"] == "summary"]
        sub.close()
        log = b.log()
    assert len(stored) == len(items)
    assert intake.batches >= 3  # so the store was busy for 3 x 4 s = 12 s, 6 keepalives
    assert [e[0] for e in news] == ["connected"], news  # never lost, never reconnected
    assert "exceeded timeout" not in log and sub.connects == 1


def _collect(store_args, port, dirs, *extra):
    argv = [CIVICMOTE, "collect", "--broker", "mqtt://127.0.0.1:%d" % port, "--device-dir", *dirs,
            "--max-ahead", "0", "--json", *store_args, *extra]
    return subprocess.Popen([str(a) for a in argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _device_dirs(tmp_path, n):
    from delivery_support import make_device
    from provision_support import signed_summary

    dirs = [tmp_path / ("dev%d" % i) for i in range(n)]
    for d in dirs:
        make_device(d)
    return dirs, lambda d, seq: signed_summary(d, "north", seq)


def test_a_burst_into_an_in_memory_collector_whose_output_waits_is_all_stored(tmp_path):
    dirs, sign = _device_dirs(tmp_path, 4)
    sent = [sign(d, seq) for seq in range(1, 201) for d in dirs]  # 800, as the board's flush
    with Broker(tmp_path) as b:
        proc = _collect([], b.port, dirs, "--keepalive", "2", "--count", str(len(sent)), "--duration", "120")
        assert proc.stderr.readline().startswith("connected to")
        time.sleep(0.3)
        _publish_all(b.port, [(topic, msg) for _, topic, msg in sent])
        # Nobody reads its output for 6 s (keepalive 2 s: Mosquitto drops a client silent for 3 s):
        # its event lines fill the pipe (64 KiB, about 200 summaries) and its store's thread waits.
        time.sleep(6)
        out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    events = [json.loads(line) for line in out.splitlines()]
    assert len({(e["device_id"], e["seq"]) for e in events if e["event"] == "summary"}) == len(sent)
    assert events[-1]["reason"] == "count"
    assert "broker:" not in err, err  # it never lost its session


def _stored(path):
    db = sqlite3.connect(str(path), timeout=5)
    try:
        return db.execute("SELECT count(*) FROM summaries").fetchone()[0]
    except sqlite3.OperationalError:
        return 0
    finally:
        db.close()


def test_a_collector_killed_mid_batch_loses_nothing_and_counts_duplicates(tmp_path):
    dirs, sign = _device_dirs(tmp_path, 6)
    sent = [sign(d, seq) for seq in range(1, 401) for d in dirs]  # 2,400
    store = tmp_path / "city.db"
    with Broker(tmp_path, extra_conf=UNLIMITED_QUEUE) as b:
        first = _collect(["--store", store], b.port, dirs, "--batch", "200")
        assert first.stderr.readline().startswith("connected to")
        time.sleep(0.3)
        pub = threading.Thread(target=_publish_all, args=(b.port, [(t, m) for _, t, m in sent]))
        pub.start()
        end = time.monotonic() + 60
        while _stored(store) < 200 and time.monotonic() < end:
            time.sleep(0.01)
        first.send_signal(signal.SIGKILL)  # in the middle of the burst, most likely inside a batch
        first.communicate(timeout=10)
        at_kill = _stored(store)
        pub.join(120)
        assert 0 < at_kill < len(sent), at_kill
        again = _collect(["--store", store], b.port, dirs, "--idle", "3", "--duration", "120")
        assert again.stderr.readline().startswith("connected to")
        time.sleep(0.3)
        resent = sent[:50]  # devices re-send what no receipt covered yet
        _publish_all(b.port, [(t, m) for _, t, m in resent])
        out, err = again.communicate(timeout=150)
    assert again.returncode == 0, err
    db = sqlite3.connect(str(store))
    rows = db.execute("SELECT device_id, seq FROM summaries").fetchall()
    want = {(dev, seq) for (dev, _, _), seq in zip(sent, [s for s in range(1, 401) for _ in dirs])}
    assert set(rows) == want and len(rows) == len(want)  # every summary, once
    accepted, duplicates = db.execute("SELECT sum(accepted), sum(duplicates) FROM devices").fetchone()
    assert accepted == len(want)  # no summary counted as accepted twice
    assert duplicates >= len(resent)
    final = json.loads(out.splitlines()[-1])
    assert final["event"] == "stopped" and final["duplicates"] >= len(resent)
