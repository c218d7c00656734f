"""The collector's core (provisioning/city/collector.py) without MQTT: verification, de-duplication
(also across restarts through the SQLite store), the mh check and the three gap causes."""
import os
import sqlite3

import pytest

from agent import crypto
from agent.core import cose, summary
from agent.store import identity
from provisioning.city.collector import DROPPED, MISSING, SKIPPED, Collector, parse_topic
from provisioning.city.verifier import KeyRing

T0 = 1750000000


class Device:
    """A signing device for tests: summaries and manifests as the agent would sign them."""

    def __init__(self, district="north"):
        self.key = crypto.generate_signing_key(os.urandom)
        self.dev, self.pub = identity.public_identity(self.key)
        self.district = district
        self.manifest_payload = b""
        self.mh = b"\x00" * 8

    def topic(self, kind="summary", dev=None):
        return "civicmote/v1/%s/%s/%s" % (self.district, dev or self.dev, kind)

    def manifest(self, board="sim"):
        from agent.core import cbor

        m = {"kind": "manifest", "v": 1, "dev": self.dev, "board": board,
             "metrics": [{"name": "temperature", "unit": "degC", "window": 300, "class": "environmental"}]}
        self.manifest_payload = cbor.dumps(m)
        self.mh = summary.manifest_hash(self.manifest_payload)
        return cose.sign1(self.manifest_payload, self.key, self.dev.encode())

    def summary(self, seq, gap=None, boot=None, mh=None, key=None, dev=None, temp=215):
        h = {"up": 10, "q": 0}
        if boot is not None:
            h["boot"] = boot
        s = summary.build(dev or self.dev, seq, T0 + 300 * seq, T0 + 300 * (seq + 1),
                          {"temperature": [temp, temp - 3, temp + 4]}, mh or self.mh, gap=gap, health=h)
        return cose.sign1(summary.encode(s), key or self.key, (dev or self.dev).encode())


@pytest.fixture
def dev():
    return Device()


def collector_for(*devices, store=None):
    ring = KeyRing()
    for d in devices:
        ring.add_public_key(d.pub)
    return Collector(ring, store)


def kinds(events):
    return [e["event"] for e in events]


def test_parse_topic():
    assert parse_topic("civicmote/v1/north/cmabc/summary") == ("north", "cmabc", "summary")
    assert parse_topic("other/v1/north/cmabc/summary") is None
    assert parse_topic("civicmote/v1/north/summary") is None
    assert parse_topic("civicmote/v1/north//summary") is None
    assert parse_topic("x/north/cmabc/manifest", prefix="x") == ("north", "cmabc", "manifest")


def test_accepts_verified_summaries_and_reports_what_it_saw(dev):
    c = collector_for(dev)
    ev = c.handle(dev.topic("manifest"), dev.manifest(), received_at=T0 + 10**6)
    assert kinds(ev) == ["manifest"] and ev[0]["new"] is True and ev[0]["manifest"]["board"] == "sim"
    msg = dev.summary(1, boot=1)
    [s] = c.handle(dev.topic(), msg, received_at=T0 + 10**6 + 1)
    assert s == {"event": "summary", "device_id": dev.dev, "district": "north", "seq": 1, "t0": T0 + 300,
                 "t1": T0 + 600, "m": {"temperature": [215, 212, 219]}, "bytes": len(msg), "mh_ok": True,
                 "late": False}
    info = c.devices()[dev.dev]
    assert info["accepted"] == 1 and info["manifests"] == 1 and info["received"] == 2
    assert info["last_seq"] == 1 and info["manifest"]["board"] == "sim" and info["gaps"] == []
    assert info["bytes"] == len(msg) + len(dev.manifest())
    # The manifest again (every reconnect republishes it): recorded, not new.
    assert c.handle(dev.topic("manifest"), dev.manifest())[0]["new"] is False


def test_duplicates_are_dropped_and_counted(dev):
    c = collector_for(dev)
    msg = dev.summary(7)
    assert kinds(c.handle(dev.topic(), msg)) == ["summary"]
    assert c.handle(dev.topic(), msg) == [{"event": "duplicate", "device_id": dev.dev, "seq": 7, "conflict": False}]
    info = c.devices()[dev.dev]
    assert (info["accepted"], info["duplicates"]) == (1, 1)
    assert c.seqs(dev.dev) == [7]


def test_same_seq_with_other_content_is_a_conflicting_duplicate(dev):
    c = collector_for(dev)
    c.handle(dev.topic(), dev.summary(3, temp=200))
    [ev] = c.handle(dev.topic(), dev.summary(3, temp=201))
    assert ev["event"] == "duplicate" and ev["conflict"] is True


def test_dedup_survives_a_collector_restart(dev, tmp_path):
    path = str(tmp_path / "city.db")
    c = collector_for(dev, store=path)
    c.handle(dev.topic("manifest"), dev.manifest())
    for seq in (1, 2, 3):
        c.handle(dev.topic(), dev.summary(seq))
    c.close()
    c = collector_for(dev, store=path)
    assert kinds(c.handle(dev.topic(), dev.summary(3))) == ["duplicate"]
    # The restarted collector remembers the last seq and the manifest: no false gap, mh checked.
    [s] = c.handle(dev.topic(), dev.summary(4))
    assert s["mh_ok"] is True and s["seq"] == 4
    info = c.devices()[dev.dev]
    assert (info["accepted"], info["duplicates"], info["last_seq"]) == (4, 1, 4)
    assert c.seqs(dev.dev) == [1, 2, 3, 4]


def test_rejections_carry_reasons_and_are_stored(tmp_path):
    a, b, stranger = Device(), Device(), Device()
    path = str(tmp_path / "city.db")
    c = collector_for(a, b, store=path)
    # signed by a, published on b's topic: blamed on b, the only client the broker lets publish there
    [ev] = c.handle(b.topic(), a.summary(1))
    assert ev["event"] == "rejected" and ev["device_id"] == b.dev and "signed by %s" % a.dev in ev["reason"]
    # a's kid, but b's key: the signature fails; blamed on the topic's (known) device
    [ev] = c.handle(a.topic(), a.summary(2, key=b.key))
    assert ev["event"] == "rejected" and ev["device_id"] == a.dev and "signature" in ev["reason"].lower()
    # a device the registry does not know (yet): held, not rejected, the reason names it
    [ev] = c.handle(stranger.topic(), stranger.summary(1))
    assert ev["event"] == "held" and ev["device_id"] == stranger.dev and "not in the registry" in ev["reason"]
    # not a COSE message at all
    [ev] = c.handle(a.topic(), b"hello")
    assert ev["event"] == "rejected" and ev["reason"]
    # a manifest on the summary topic
    [ev] = c.handle(a.topic("summary"), a.manifest())
    assert "a manifest published on the summary topic" in ev["reason"]
    # a topic outside the scheme
    [ev] = c.handle("civicmote/v1/north/x", a.summary(3))
    assert ev["device_id"] is None and "is not civicmote/v1/" in ev["reason"]
    assert c.devices()[a.dev]["rejected"] == 3 and c.devices()[a.dev]["accepted"] == 0
    assert c.devices()[b.dev]["rejected"] == 1
    assert stranger.dev not in c.devices()
    c.close()
    rows = sqlite3.connect(path).execute("SELECT topic, device_id, reason, length(message) FROM rejected").fetchall()
    assert len(rows) == 5 and all(r[2] for r in rows) and rows[0][3] > 0


def test_revoked_device_is_rejected(dev):
    ring = KeyRing()
    ring.refuse(dev.dev, "revoked")
    c = Collector(ring)
    [ev] = c.handle(dev.topic(), dev.summary(1))
    assert ev["event"] == "rejected" and ev["device_id"] == dev.dev and "revoked" in ev["reason"]


def test_status_messages_are_ignored(dev):
    c = collector_for(dev)
    assert c.handle(dev.topic("status"), b"online") == []
    assert c.devices() == {}


def test_mh_is_checked_against_the_latest_manifest(dev):
    c = collector_for(dev)
    assert c.handle(dev.topic(), dev.summary(1))[-1]["mh_ok"] is None  # no manifest yet
    c.handle(dev.topic("manifest"), dev.manifest())
    assert c.handle(dev.topic(), dev.summary(2))[-1]["mh_ok"] is True
    [s] = c.handle(dev.topic(), dev.summary(3, mh=b"\x01" * 8))
    assert s["event"] == "summary" and s["mh_ok"] is False  # accepted, flagged
    old = dev.mh
    c.handle(dev.topic("manifest"), dev.manifest(board="sim-v2"))  # a new manifest is in force
    assert dev.mh != old
    assert c.handle(dev.topic(), dev.summary(4, mh=old))[-1]["mh_ok"] is False
    assert c.handle(dev.topic(), dev.summary(5))[-1]["mh_ok"] is True


def test_announced_drops_are_dropped_on_device(dev):
    c = collector_for(dev)
    c.handle(dev.topic(), dev.summary(1, boot=1))
    ev = c.handle(dev.topic(), dev.summary(6, gap=[4, 2, 5], boot=1))
    assert kinds(ev) == ["gap", "summary"]
    assert ev[0] == {"event": "gap", "device_id": dev.dev, "first": 2, "last": 5, "count": 4, "cause": DROPPED,
                     "reported_by": 6}
    # The same announcement again (a device cut between put and clearing its report): not news.
    assert kinds(c.handle(dev.topic(), dev.summary(7, gap=[4, 2, 5], boot=1))) == ["summary"]
    assert [g["cause"] for g in c.devices()[dev.dev]["gaps"]] == [DROPPED]


def test_merged_announcement_with_a_wider_range_covers_the_hole(dev):
    c = collector_for(dev)
    c.handle(dev.topic(), dev.summary(10, boot=1))
    # count 3 inside a range of 5 (merged runs): nothing of 11..15 is called missing
    assert [e.get("cause") for e in c.handle(dev.topic(), dev.summary(16, gap=[3, 11, 15], boot=1))] == [DROPPED, None]


def test_growing_announcements_report_only_what_is_new(dev):
    # Offline with a small outbox, a device names every drop so far in each summary until one of
    # those summaries is delivered: [1,1,1], then [2,1,2], then [3,1,3].
    c = collector_for(dev)
    c.handle(dev.topic(), dev.summary(10, boot=1))
    gaps = []
    for seq, gap in ((11, [1, 1, 1]), (12, [2, 1, 2]), (13, [3, 1, 3]), (14, [3, 1, 3])):
        gaps += [(e["first"], e["last"], e["count"]) for e in c.handle(dev.topic(), dev.summary(seq, gap=gap, boot=1))
                 if e["event"] == "gap"]
    assert gaps == [(1, 1, 1), (2, 2, 1), (3, 3, 1)]
    assert [g["cause"] for g in c.devices()[dev.dev]["gaps"]] == [DROPPED] * 3


def test_seqs_below_boot_are_skipped_at_reboot_and_the_rest_missing(dev):
    c = collector_for(dev)
    c.handle(dev.topic(), dev.summary(1, boot=1))
    c.handle(dev.topic(), dev.summary(2, boot=1))
    # reboot: the new boot starts at 65; 3..64 were reserved and never used; 65, 66 are lost
    ev = c.handle(dev.topic(), dev.summary(67, boot=65))
    gaps = [(e["first"], e["last"], e["count"], e["cause"]) for e in ev if e["event"] == "gap"]
    assert gaps == [(3, 64, 62, SKIPPED), (65, 66, 2, MISSING)]
    # one of the missing arrives after all: accepted, marked late, not a duplicate
    [s] = c.handle(dev.topic(), dev.summary(65, boot=65))
    assert s["event"] == "summary" and s["late"] is True


def test_holes_combine_announcements_boot_and_losses(dev):
    c = collector_for(dev)
    c.handle(dev.topic(), dev.summary(5, boot=1))
    # 6..9 dropped and announced, 10..12 skipped at reboot, 13 missing
    ev = c.handle(dev.topic(), dev.summary(14, gap=[4, 6, 9], boot=13))
    gaps = [(e["first"], e["last"], e["cause"]) for e in ev if e["event"] == "gap"]
    assert gaps == [(6, 9, DROPPED), (10, 12, SKIPPED), (13, 13, MISSING)]


def test_first_summary_sets_the_baseline(dev):
    c = collector_for(dev)
    assert kinds(c.handle(dev.topic(), dev.summary(500, boot=450))) == ["summary"]


def test_a_store_failure_records_nothing_of_that_message(dev, tmp_path):
    path = str(tmp_path / "city.db")
    c = collector_for(dev, store=path)
    c.handle(dev.topic(), dev.summary(1))
    blocker = sqlite3.connect(path, isolation_level=None, timeout=0)
    blocker.execute("BEGIN EXCLUSIVE")  # another writer holds the database
    c.store.db.execute("PRAGMA busy_timeout=0")
    with pytest.raises(sqlite3.OperationalError):
        c.handle(dev.topic(), dev.summary(2))
    blocker.execute("ROLLBACK")
    blocker.close()
    # Not acknowledged, so the broker delivers it again: now it is accepted, not a duplicate.
    assert kinds(c.handle(dev.topic(), dev.summary(2))) == ["summary"]
    assert c.devices()[dev.dev]["accepted"] == 2


def test_store_schema_is_as_documented(tmp_path):
    path = str(tmp_path / "city.db")
    Collector(KeyRing(), path).close()
    db = sqlite3.connect(path)
    tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"meta", "devices", "summaries", "manifests", "gaps", "rejected"} <= tables
    assert db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone() == ("1",)
    cols = [r[1] for r in db.execute("PRAGMA table_info(summaries)")]
    assert cols == ["device_id", "seq", "t0", "t1", "metrics", "mh", "mh_ok", "boot", "health", "gap", "topic",
                    "received_at", "message"]


def test_a_file_that_is_not_a_store_is_refused(tmp_path):
    from provisioning.errors import UsageError

    p = tmp_path / "notes.db"
    p.write_bytes(b"not a database at all, just some text" * 50)
    with pytest.raises(UsageError, match="not a collector store"):
        Collector(KeyRing(), str(p))


def test_a_store_path_that_holds_another_database_is_refused_and_left_untouched(tmp_path):
    from provisioning.errors import UsageError
    from provisioning.pki.registry import Registry

    reg = tmp_path / "registry.db"
    Registry(reg, create=True).close()
    before = reg.read_bytes(), os.stat(reg).st_mode
    with pytest.raises(UsageError, match="holds another database"):
        Collector(KeyRing(), str(reg))
    assert (reg.read_bytes(), os.stat(reg).st_mode) == before


def test_default_client_id_is_bound_to_the_store(tmp_path):
    from provisioning.cli.collect import client_id_for

    a, b = client_id_for(str(tmp_path / "a.db")), client_id_for(str(tmp_path / "b.db"))
    assert a == client_id_for(str(tmp_path / "a.db")) and a != b and a.startswith("civicmote-collector-")
    assert client_id_for(None) != client_id_for(None)
