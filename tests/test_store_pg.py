"""The collector on PostgreSQL (provisioning/city/store_pg.py), and N collectors sharing one store.

A real PostgreSQL server is started once for this module (tests/pg.py: initdb in a temporary
folder, a free loopback port); each test gets its own database. The same scripted stream of
messages (manifests, in-order and missing seqs, announced drops, reboots, duplicates, forgeries)
goes through the SQLite collector, the PostgreSQL one, and several collectors sharing one store,
and what each recorded must be the same.
"""
import os
import random
import threading

import pytest

from agent import crypto
from agent.core import cbor, cose, summary
from agent.store import identity
from pg import PgServer
from provisioning.city.collector import Collector
from provisioning.city.store_pg import PgStore, redact
from provisioning.city.verifier import KeyRing
from provisioning.errors import EnvironmentProblem, UsageError

T0 = 1750000000


@pytest.fixture(scope="module")
def pg():
    reason = PgServer.available()
    if reason:
        pytest.skip(reason)
    with PgServer() as server:
        yield server


class Signer:
    def __init__(self, rng, district):
        self.key = crypto.generate_signing_key(lambda n: bytes(rng.getrandbits(8) for _ in range(n)))
        self.dev, self.pub = identity.public_identity(self.key)
        self.district = district
        m = {"kind": "manifest", "v": 1, "dev": self.dev, "board": "sim",
             "metrics": [{"name": "temperature", "unit": "degC", "window": 300, "class": "environmental"}]}
        self.manifest_payload = cbor.dumps(m)
        self.mh = summary.manifest_hash(self.manifest_payload)

    def topic(self, kind):
        return "civicmote/v1/%s/%s/%s" % (self.district, self.dev, kind)

    def manifest(self):
        return self.topic("manifest"), cose.sign1(self.manifest_payload, self.key, self.dev.encode())

    def summary(self, seq, gap=None, boot=None, temp=215):
        h = {"up": 10, "q": 0}
        if boot is not None:
            h["boot"] = boot
        s = summary.build(self.dev, seq, T0 + 300 * seq, T0 + 300 * (seq + 1), {"temperature": [temp, temp - 3, temp + 4]},
                          self.mh, gap=gap, health=h)
        return self.topic("summary"), cose.sign1(summary.encode(s), self.key, self.dev.encode())


def scripted_stream(seed=7, devices=3):
    """(keyring, [(topic, payload)]): every gap cause, duplicates, a conflict and forgeries."""
    rng = random.Random(seed)
    signers = [Signer(rng, "d%d" % i) for i in range(devices)]
    ring = KeyRing()
    for s in signers:
        ring.add_public_key(s.pub)
    stranger = Signer(rng, "x")
    msgs = []
    for i, s in enumerate(signers):
        msgs.append(s.manifest())
        msgs += [s.summary(q) for q in (1, 2, 3)]
        msgs.append(s.summary(2))                        # duplicate
        msgs.append(s.summary(3, temp=300 + i))          # conflicting duplicate
        msgs.append(s.summary(7, gap=[2, 4, 5]))         # 4, 5 dropped on device, 6 missing
        msgs.append(s.summary(12, boot=10))              # 8, 9 skipped at reboot; 10, 11 missing
        msgs.append(s.summary(6))                        # late
        msgs.append(s.manifest())                        # again
        msgs.append((s.topic("summary"), stranger.summary(13)[1]))  # signed by an unknown device
        msgs.append((s.topic("summary"), b"\xa0not cose"))
    return ring, msgs


def record_of(c):
    return {"devices": c.devices(), "seqs": {d: c.seqs(d) for d in c.store.device_ids()},
            "rejected": sorted((r["topic"], r["device_id"] or "", r["reason"]) for r in c.store.rejected())}


def run(collectors, msgs):
    for i, (topic, payload) in enumerate(msgs):
        collectors[i % len(collectors)].handle(topic, payload, received_at=T0 + 100000 + i)


def test_postgresql_records_exactly_what_sqlite_records(pg, tmp_path):
    ring, msgs = scripted_stream()
    ref = Collector(ring, None)
    run([ref], msgs)
    url = pg.new_database()
    c = Collector(ring, url)
    run([c], msgs)
    assert record_of(c) == record_of(ref)
    got = record_of(c)["devices"]
    assert {g["cause"] for d in got.values() for g in d["gaps"]} == {"dropped-on-device", "skipped-at-reboot",
                                                                     "missing"}
    assert all(d["duplicates"] == 2 and d["rejected"] == 2 for d in got.values())
    c.close()
    # across a restart: the same stream again is all duplicates, nothing new is stored
    again = Collector(ring, url)
    run([again], msgs)
    after = record_of(again)
    assert after["seqs"] == record_of(ref)["seqs"]
    assert all(d["accepted"] == ref.devices()[dev]["accepted"] for dev, d in after["devices"].items())
    ref.close()
    again.close()


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_collectors_sharing_a_store_record_what_one_would(backend, pg, tmp_path):
    """Messages dealt round-robin to three collectors (as a shared subscription does) that share one
    store: the result is the one collector's, gaps and duplicates included, since each collector
    judges a message from what the store holds, not from what it remembers."""
    ring, msgs = scripted_stream(seed=11)
    ref = Collector(ring, None)
    run([ref], msgs)
    target = str(tmp_path / "city.sqlite") if backend == "sqlite" else pg.new_database()
    trio = [Collector(ring, target) for _ in range(3)]
    run(trio, msgs)
    for c in trio:
        assert record_of(c) == record_of(ref)
        c.close()
    ref.close()


def test_concurrent_collectors_store_each_summary_once(pg):
    """Four threads, each its own collector and connection, race on the same devices with every
    summary delivered twice: each (device, seq) is stored once, the copies counted as duplicates."""
    rng = random.Random(3)
    signers = [Signer(rng, "c") for _ in range(4)]
    ring = KeyRing()
    for s in signers:
        ring.add_public_key(s.pub)
    msgs = [s.summary(q) for s in signers for q in range(1, 41)]
    deliveries = msgs + msgs
    rng.shuffle(deliveries)
    url = pg.new_database()
    collectors = [Collector(ring, url) for _ in range(4)]
    errors = []

    def work(c, share):
        try:
            for topic, payload in share:
                c.handle(topic, payload)
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(c, deliveries[i::4])) for i, c in enumerate(collectors)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    devs = collectors[0].devices()
    for s in signers:
        assert collectors[0].seqs(s.dev) == list(range(1, 41))
        assert devs[s.dev]["accepted"] == 40 and devs[s.dev]["duplicates"] == 40
        assert devs[s.dev]["last_seq"] == 40
    # whatever order they came in, every "missing" seq was later stored (late), so none is lost
    for s in signers:
        for g in devs[s.dev]["gaps"]:
            assert g["cause"] == "missing"
            assert set(range(g["first"], g["last"] + 1)) <= set(collectors[0].seqs(s.dev))
    for c in collectors:
        c.close()


def test_unreachable_server_and_foreign_schema_are_one_line_errors(pg):
    with pytest.raises(EnvironmentProblem) as e:
        PgStore("postgresql://civicmote:secret@127.0.0.1:1/none")
    assert "secret" not in str(e.value) and "cannot open the collector store" in str(e.value)
    url = pg.new_database()
    s = PgStore(url)
    s.db.execute("UPDATE meta SET value='99' WHERE key='schema_version'")
    s.close()
    with pytest.raises(UsageError, match="schema 99"):
        PgStore(url)
    other = pg.new_database()
    import psycopg

    with psycopg.connect(other, autocommit=True) as c:
        c.execute("CREATE TABLE invoices (id INT)")
    with pytest.raises(UsageError, match="holds another database"):
        PgStore(other)
    with psycopg.connect(other, autocommit=True) as c:  # left untouched
        assert [r[0] for r in c.execute("SELECT tablename FROM pg_tables WHERE schemaname='public'")] == ["invoices"]


def test_redact_hides_the_password():
    assert redact("postgresql://city:pw@db:5432/x") == "postgresql://city:***@db:5432/x"
    assert redact("postgresql://db/x") == "postgresql://db/x"
    assert os.path.basename(redact("postgresql://u@h/db")) == "db"


def test_outstanding_gaps_do_not_depend_on_arrival_order(pg):
    """The events say what each summary revealed when it came; the settled view (open_gaps) is
    computed from the store and is the same for any order and any number of collectors."""
    ring, msgs = scripted_stream(seed=5, devices=2)
    ref = Collector(ring, None)
    run([ref], msgs)
    want = {dev: d["open_gaps"] for dev, d in ref.devices().items()}
    assert sorted({g["cause"] for gs in want.values() for g in gs}) == ["dropped-on-device", "missing",
                                                                        "skipped-at-reboot"]
    dev0 = sorted(want)[0]
    assert [(g["first"], g["last"], g["cause"]) for g in want[dev0]] == [
        (4, 5, "dropped-on-device"), (8, 9, "skipped-at-reboot"), (10, 11, "missing")]  # 6 came late
    shuffled = list(msgs)
    random.Random(9).shuffle(shuffled)
    url = pg.new_database()
    pair = [Collector(ring, url) for _ in range(2)]
    run(pair, shuffled)
    assert {dev: d["open_gaps"] for dev, d in pair[0].devices().items()} == want
    for c in pair + [ref]:
        c.close()


def test_outstanding_ranges_cost_nothing_for_huge_announcements():
    from provisioning.city.gaps import outstanding

    got = outstanding([(1, None, None), (2 ** 40, None, [2 ** 40, 2, 2 ** 40 - 1])])
    assert got == [{"first": 2, "last": 2 ** 40 - 1, "count": 2 ** 40 - 2, "cause": "dropped-on-device"}]
    assert outstanding([]) == []
    assert outstanding([(5, 3, None)]) == []  # a first summary after a reboot: the baseline
    assert [(g["first"], g["last"], g["cause"]) for g in outstanding([(1, None, None), (12, 10, None)])] == [
        (2, 9, "skipped-at-reboot"), (10, 11, "missing")]
    assert outstanding([(1, None, None), (5, 9, None)])[0]["cause"] == "missing"  # a boot after its seq: no reboot


def test_held_and_bounded_rejections_on_postgresql(pg):
    """A summary of a device not in the registry yet is held in PostgreSQL and judged once the
    registry knows it, once even when two collectors sharing the store both look; rejected
    messages are bounded per device as in SQLite."""
    from provisioning.city.store import MAX_REJECTED_PER_DEVICE

    rng = random.Random(21)
    newcomer = Signer(rng, "n")
    url = pg.new_database()
    pair = [Collector(KeyRing(), url) for _ in range(2)]
    topic, payload = newcomer.summary(1)
    assert [e["event"] for e in pair[0].handle(topic, payload, received_at=T0 + 100000)] == ["held"]
    ring = KeyRing()
    ring.add_public_key(newcomer.pub)
    events = pair[0].update_keyring(ring) + pair[1].update_keyring(ring)
    assert [e["event"] for e in events] == ["summary"]
    assert pair[1].devices()[newcomer.dev]["accepted"] == 1 and pair[1].devices()[newcomer.dev]["duplicates"] == 0
    s = pair[0].store
    with s.transaction():
        for i in range(MAX_REJECTED_PER_DEVICE + 5):
            s.add_rejected("t/%d" % i, newcomer.dev, "r", b"x" * 10000, T0 + i)
    kept = [r for r in s.rejected() if r["device_id"] == newcomer.dev]
    assert len(kept) == MAX_REJECTED_PER_DEVICE and kept[-1]["topic"] == "t/%d" % (MAX_REJECTED_PER_DEVICE + 4)
    assert max(len(bytes(r[0])) for r in s.db.execute("SELECT message FROM rejected")) <= 4096
    for c in pair:
        c.close()


def test_retained_status_is_kept_on_postgresql_as_on_sqlite(pg, tmp_path):
    """The device page's online/offline comes from the store, whichever backend holds it."""
    rng = random.Random(22)
    dev = Signer(rng, "north")
    ring = KeyRing()
    ring.add_public_key(dev.pub, "north")
    for store in (pg.new_database(), str(tmp_path / "city.db")):
        c = Collector(ring, store)
        assert c.handle(dev.topic("status"), b"online", received_at=T0 + 5)[0]["status"] == "online"
        c.handle(dev.topic("status"), b"offline", received_at=T0 + 9)
        assert c.store.status(dev.dev) == ("offline", T0 + 9)
        assert c.store.status("cmaaaaaaaaaaaaaaaa") is None
        c.close()


@pytest.mark.parametrize("batch", [5, 100])
def test_batches_record_exactly_what_one_message_at_a_time_records(pg, batch):
    """Group commit on PostgreSQL (pipelined writes, locks and stored seqs read once per batch,
    duplicates and conflicts inside one batch) against SQLite one message per transaction."""
    ring, msgs = scripted_stream(seed=11)
    ref = Collector(ring, None)
    run([ref], msgs)
    c = Collector(ring, pg.new_database())
    stamped = [(t, p, T0 + 100000 + i) for i, (t, p) in enumerate(msgs)]
    for i in range(0, len(stamped), batch):
        c.handle_batch(stamped[i:i + batch])
    assert record_of(c) == record_of(ref)
    c.close()
    ref.close()


def test_concurrent_batches_never_deadlock_and_store_each_summary_once(pg):
    """Four collectors commit batches of 25 over the same devices, every summary delivered twice:
    devices are locked in one order, so no batch waits on another in a cycle."""
    rng = random.Random(5)
    signers = [Signer(rng, "c") for _ in range(8)]
    ring = KeyRing()
    for s in signers:
        ring.add_public_key(s.pub)
    deliveries = [s.summary(q) for s in signers for q in range(1, 26)] * 2
    rng.shuffle(deliveries)
    url = pg.new_database()
    collectors = [Collector(ring, url) for _ in range(4)]
    commits = []
    for c in collectors:
        c.on_committed.append(commits.append)
    errors = []

    def work(c, share):
        try:
            for i in range(0, len(share), 25):
                c.handle_batch([(t, p, None) for t, p in share[i:i + 25]])
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(c, deliveries[i::4])) for i, c in enumerate(collectors)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors
    # one commit per batch: none failed (a deadlock, which PostgreSQL would break by aborting one,
    # makes that batch be retried one message per transaction)
    assert len(commits) == len(deliveries) // 25
    devs = collectors[0].devices()
    for s in signers:
        assert collectors[0].seqs(s.dev) == list(range(1, 26))
        assert devs[s.dev]["accepted"] == 25 and devs[s.dev]["duplicates"] == 25
    for c in collectors:
        c.close()
