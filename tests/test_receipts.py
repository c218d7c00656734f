"""Issue 25, receipts end to end against a real Mosquitto: a device keeps every summary after the
broker's PUBACK until the collector's signed receipt covers it, so a SIGKILLed broker loses
nothing; and a forged receipt, one replayed from another device, an old one replayed, and one for
a seq never sent are all refused while the device keeps its data.

The device is the real agent (agent.runtime.device.open_agent, simulated wall clock, real
network deadlines), the city the real collector with its receipt issuer (provisioning.city.receipts)
behind a real paho subscription. The CA is tests/broker.py's throw-away P-256 CA."""
import os
import time

import paho.mqtt.client as paho
import pytest
from broker import Broker, Pki
from delivery_support import InProcessCollector, SimClock, make_device, run_windows
from test_delivery import open_agent, transport_for

from agent.core import receipt
from agent.crypto import verifying_key_from_sec1
from agent.crypto.cpython_backend import SigningKey
from agent.runtime.receipts import Receipts
from provisioning.city.collector import committed_seqs
from provisioning.city.receipts import ReceiptIssuer, covered, issue_cert, topic

SOAK = os.environ.get("CIVICMOTE_SOAK") == "1"
CID = "civicmote-collector"


def _sec1(pub):
    from cryptography.hazmat.primitives import serialization

    return pub.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)


class City:
    """The CA, and a collector key it certified for receipts."""

    def __init__(self, folder):
        from cryptography.hazmat.primitives.asymmetric import ec

        self.pki = Pki(folder)
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.cert = issue_cert(self.pki.ca_key, self.key.public_key(), CID, time.time() + 86400)
        self.signer = SigningKey(self.key)

    def receipts(self, d, dev, resend_s=2.0):
        ca = verifying_key_from_sec1(_sec1(self.pki.ca_key.public_key()))
        return Receipts(str(d / "receipt"), receipt.Verifier(ca, verifying_key_from_sec1), dev, resend_s=resend_s)

    def collector(self, port, pubs, interval=0.5):
        col = InProcessCollector(port, pubs)
        col.published = []

        def publish(t, payload):
            col.published.append(payload)
            return col.sub.publish(t, payload, qos=1, retain=True)  # as `civicmote collect` does
        col.issuer = ReceiptIssuer(col.collector.store, self.signer, self.cert, publish, CID, interval=interval)
        col.collector.on_committed.append(lambda events: col.issuer.committed(committed_seqs(events)))
        return col


def pump(agent, col, pred, timeout, what):
    """Flush the device and run the collector (with its receipts) until pred()."""
    def between():
        agent.flush(time.monotonic())
        col.issuer.tick(time.monotonic())
    col.poll_until(pred, timeout, what, between=between)


def test_sigkill_mosquitto_mid_burst_every_summary_stored_once(tmp_path):
    n = 3000 if SOAK else 300
    d = tmp_path / "dev"
    dev, pub = make_device(d)
    city = City(tmp_path / "pki")
    with Broker(tmp_path) as b:  # persistence off: a SIGKILL loses every queued message, not just 10 s of them
        col = city.collector(b.port, [pub])
        agent, _ = open_agent(d, dev, None, receipts=city.receipts(d, dev), outbox_count=n + 100,
                              outbox_bytes=(n + 100) * 1024)
        agent.transport = transport_for(dev, b.port)
        agent.transport.max_inflight = 20
        agent.transport._c.max_inflight_messages_set(20)
        agent.transport._c.max_queued_messages_set(20)
        clock = SimClock()
        run_windows(agent, clock, 1, pace=0.01, between=col.poll)  # commissioning: the first receipt
        pump(agent, col, lambda: agent.receipts.active and agent.outbox.depth == 0, 20, "no first receipt")
        assert agent.receipts.proof().startswith("the city has stored up to seq 1 at ")

        transport, agent.transport = agent.transport, None  # an outage: the burst piles up
        burst = run_windows(agent, clock, n)
        agent.transport = transport
        # The burst floods the broker while the collector is busy elsewhere (not polled): the
        # broker acknowledges half of it, holding it for the collector, and is SIGKILLed.
        end = time.monotonic() + 60
        while agent.delivered < 1 + n // 2 and time.monotonic() < end:
            agent.flush(time.monotonic())
            time.sleep(0.001)
        acked = agent.delivered - 1
        assert acked >= n // 2
        b.kill()
        stored_before = len(col.accepted())
        assert stored_before < acked / 2  # without receipts, everything in between was lost
        assert agent.outbox.depth == n  # acknowledged by the broker, and still kept
        b.start()  # same port, empty: sessions, queues and retained receipts are gone
        pump(agent, col, lambda: agent.outbox.depth == 0 and len(col.accepted()) == n + 1, 60 + n / 20,
             "the burst was not stored after the broker came back")
        seqs = col.collector.seqs(dev)
        assert seqs == [1] + burst == list(range(1, n + 2))  # every summary stored, exactly once
        assert agent.receipts.refused == 0 and agent.receipts.hi == n + 1
        col.close()


def test_forged_replayed_and_unsent_receipts_are_refused(tmp_path):
    d, d2 = tmp_path / "dev", tmp_path / "dev2"
    dev, pub = make_device(d)
    dev2, _ = make_device(d2)
    city = City(tmp_path / "pki")
    with Broker(tmp_path) as b:
        col = city.collector(b.port, [pub])
        agent, _ = open_agent(d, dev, b.port, receipts=city.receipts(d, dev, resend_s=3600))
        clock = SimClock()
        run_windows(agent, clock, 1, pace=0.01, between=col.poll)
        pump(agent, col, lambda: agent.receipts.active, 20, "no first receipt")
        # The status topic carries the commissioning proof (retained, for whoever looks next).
        status = []
        watch = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="watch")
        watch.on_message = lambda c, u, m: status.append(m.payload.decode())
        watch.connect("127.0.0.1", b.port)
        watch.subscribe(agent.status_topic, qos=1)
        watch.loop_start()
        pump(agent, col, lambda: any("the city has stored up to seq 1 at " in t for t in status), 20,
             "no proof on the status topic")
        watch.loop_stop()
        watch.disconnect()
        assert status[-1].startswith("online; the city has stored up to seq 1 at "), status
        old = agent.receipts
        first = col.published[0]  # the receipt that covered seq 1, as an attacker might have kept it
        hooks, col.collector.on_committed = col.collector.on_committed, []  # the collector says nothing for a while
        run_windows(agent, clock, 3, pace=0.01, between=lambda: agent.flush(time.monotonic()))
        pump(agent, col, lambda: len(col.accepted()) == 4, 20, "summaries 2..4 not stored")
        assert agent.outbox.seqs() == [2, 3, 4]  # stored, but no receipt let go of them yet

        other = City(tmp_path / "pki2")  # a CA the device does not trust, certifying its own collector
        t = int(time.time() * 1000) + 10_000
        forged = [
            receipt.make(other.signer, other.cert, dev, 1, 4, t, CID),  # key certified by another CA
            receipt.make(other.signer, city.cert, dev, 1, 4, t, CID),  # the real certificate, the wrong key
            receipt.make(city.signer, city.cert, dev2, 1, 4, t, CID),  # genuine, for another device
            receipt.make(city.signer, city.cert, dev, 1, 99, t, CID),  # genuine, for seqs never sent
            first,  # genuine and this device's, but older than one already accepted: a replay
        ]
        rogue = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="rogue")
        rogue.connect("127.0.0.1", b.port)
        rogue.loop_start()
        try:
            for msg in forged:
                rogue.publish(topic("civicmote/v1", "north", dev), msg, qos=1).wait_for_publish(5)
            deadline = time.monotonic() + 10
            while old.refused < len(forged) and time.monotonic() < deadline:
                agent.flush(time.monotonic())
                time.sleep(0.01)
        finally:
            rogue.loop_stop()
            rogue.disconnect()
        assert old.refused == len(forged), old.last_refusal
        assert agent.outbox.seqs() == [2, 3, 4]  # the device kept its data
        assert old.hi == 1
        # The genuine one, from the collector, is accepted: the refusals above were not the only outcome.
        col.collector.on_committed = hooks
        col.issuer.committed([(dev, 4)])
        pump(agent, col, lambda: agent.outbox.depth == 0, 20, "the genuine receipt was not accepted")
        assert old.hi == 4 and agent.collector_time() is not None
        assert abs(agent.collector_time() - time.time()) < 5
        col.close()


def test_receipt_stops_at_a_missing_seq_and_counts_device_gaps():
    # (seq, boot, gap): 1..3 stored, 4..5 announced as dropped, 6 stored, 7 missing, 8 stored
    marks = [(1, 1, None), (2, 1, None), (3, 1, None), (6, 1, [2, 4, 5]), (8, 1, None)]
    assert covered(marks) == (1, 6)
    assert covered([(5, 1, None), (6, 1, None)]) == (5, 6)
    assert covered([]) is None


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_the_collector_never_covers_a_seq_it_does_not_hold(tmp_path, kind, request):
    """Late and out-of-order arrivals, on the real store (SQLite and PostgreSQL): the receipt's hi
    stops at the first missing seq, and a seq that arrives below the lowest one stored is not taken
    to cover the ones between."""
    from agent import crypto
    from agent.core import cose, summary
    from agent.store import identity
    from provisioning.city.collector import Collector
    from provisioning.city.verifier import KeyRing

    key = crypto.generate_signing_key(os.urandom)
    dev, pub = identity.public_identity(key)
    ring = KeyRing()
    ring.add_public_key(pub, "north")
    pg = None
    if kind == "postgresql":
        from pg import PgServer

        reason = PgServer.available()
        if reason:
            pytest.skip(reason)
        pg = PgServer().start()
        request.addfinalizer(pg.stop)
    col = Collector(ring, pg.new_database() if pg else str(tmp_path / "store.db"), max_ahead=None)
    city = City(tmp_path / "pki")
    issuer = ReceiptIssuer(col.store, city.signer, city.cert, lambda t, p: True, CID)

    def store(seq, gap=None):
        s = summary.build(dev, seq, 1750000000 + 300 * seq, 1750000300 + 300 * seq,
                          {"temperature": [215, 212, 219]}, b"\x01" * 8, gap=gap, health={"boot": 1})
        col.handle("civicmote/v1/north/%s/summary" % dev, cose.sign1(summary.encode(s), key, dev.encode()))

    def span():
        r = receipt.Verifier(verifying_key_from_sec1(_sec1(city.pki.ca_key.public_key())),
                             verifying_key_from_sec1).check(issuer.make(dev)[1], dev, None, 1000)
        return r["lo"], r["hi"]

    for seq in (5, 6, 7, 9):
        store(seq)
    assert span() == (5, 7)  # 8 is missing: the device may still hold it
    store(8)
    store(12, gap=[2, 10, 11])  # 10 and 11 dropped on the device, as it says
    assert span() == (5, 12)
    store(1)  # a late first summary: 2..4 are not stored
    assert span() == (1, 1)
    for seq in (2, 3, 4):
        store(seq)
    assert span() == (1, 12)
    # A status that carries the proof is still the device's "online" for the city.
    ev = col.handle("civicmote/v1/north/%s/status" % dev,
                    b"online; the city has stored up to seq 12 at 2026-12-07T13:00:00Z")
    assert ev == [{"event": "status", "device_id": dev, "district": "north", "status": "online"}]
    col.close()
