"""The collector's SQLite store: accepted summaries, manifests, gaps, rejections (CPython only).

Schema version 1 (documented in docs/delivery.md, "The collector"):

    meta       (key PRIMARY KEY, value)                     schema_version = 1
    devices    (device_id PRIMARY KEY, district, received, accepted, duplicates, rejected,
                manifests, bytes, last_seq, mh, first_seen, last_seen)
    summaries  (device_id, seq, t0, t1, metrics JSON, mh, mh_ok (1/0/NULL), boot, health JSON,
                gap JSON, topic, received_at, message BLOB)   PRIMARY KEY (device_id, seq)
    manifests  (device_id, mh, manifest JSON, message BLOB, first_seen, last_seen)
                                                            PRIMARY KEY (device_id, mh)
    gaps       (id, device_id, first, last, count, cause, reported_by, received_at)
    rejected   (id, received_at, topic, device_id (NULL if unknown), reason, message BLOB)
                the newest MAX_REJECTED_PER_DEVICE per device (and per NULL), each message cut
                to MAX_STORED_MESSAGE bytes; devices.rejected still counts every one
    held       (id, received_at, topic, device_id, message BLOB)   signed by a device not in
                the registry yet: judged when the registry learns it (at most MAX_HELD_PER_DEVICE
                per device, MAX_HELD in all)
    status     (device_id PRIMARY KEY, district, status 'online'/'offline', received_at)
                the device's retained, unsigned status topic as last received (the web page's
                online/offline; added without a version bump: CREATE IF NOT EXISTS)

Every message is one transaction (`with store.transaction():`), so a crash leaves a message
either wholly recorded or not at all; the subscriber acknowledges it to the broker only after.

The interface the collector uses (another backend, e.g. PostgreSQL, provides the same):
    transaction() (context manager, holds `lock`), lock (RLock), close()
    device(dev) -> dict | None, device_ids(), count(dev, district, now, nbytes, **counter=inc),
    set_last_seq(dev, seq), summary_payload(dev, seq) -> bytes | None,
    add_summary(s, mh_ok, topic, now, message), seqs(dev),
    add_manifest(dev, mh, manifest, message, now) -> new, manifest(dev, mh),
    add_gap(dev, first, last, count, cause, reported_by, now), gaps(dev),
    add_rejected(topic, dev, reason, message, now), rejected(),
    hold(topic, dev, message, now) -> bool, held_devices(), take_held(dev, limit), drop_held(id) -> bool,
    lock_device(dev) -> received counter | None (inside a transaction: N collectors take turns per device),
    lock_devices([dev]) -> {dev: received | None} (the same, in the order given), prefetch([(dev, seq)]),
    marks(dev, since=0) -> [(seq, boot, gap)] (for gaps.outstanding); lowest_seq(dev)
provisioning/city/store_pg.py is that backend; open_store(path or URL) picks one.
Every value handed in has passed city/schema.py: integers fit a signed 64-bit column.
"""
import json
import os
import sqlite3
import threading

from provisioning.errors import EnvironmentProblem, UsageError

SCHEMA_VERSION = 1
MAX_STORED_MESSAGE = 4096  # bytes of a rejected message kept for inspection
MAX_REJECTED_PER_DEVICE = 100  # newest rejected messages kept per device (and for unknown senders)
MAX_HELD_PER_DEVICE = 10000  # a month of 5-minute windows and then some
MAX_HELD = 200000  # about 60 MB of summaries
STORE_MODE = 0o640  # owner writes; a reader in the group (e.g. the web page) reads

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS devices (
    device_id TEXT PRIMARY KEY, district TEXT,
    received INTEGER NOT NULL DEFAULT 0, accepted INTEGER NOT NULL DEFAULT 0,
    duplicates INTEGER NOT NULL DEFAULT 0, rejected INTEGER NOT NULL DEFAULT 0,
    manifests INTEGER NOT NULL DEFAULT 0, bytes INTEGER NOT NULL DEFAULT 0,
    last_seq INTEGER, mh BLOB, first_seen REAL, last_seen REAL);
CREATE TABLE IF NOT EXISTS summaries (
    device_id TEXT NOT NULL, seq INTEGER NOT NULL, t0 INTEGER NOT NULL, t1 INTEGER NOT NULL,
    metrics TEXT NOT NULL, mh BLOB NOT NULL, mh_ok INTEGER, boot INTEGER, health TEXT, gap TEXT,
    topic TEXT NOT NULL, received_at REAL NOT NULL, message BLOB NOT NULL,
    PRIMARY KEY (device_id, seq));
CREATE TABLE IF NOT EXISTS manifests (
    device_id TEXT NOT NULL, mh BLOB NOT NULL, manifest TEXT NOT NULL, message BLOB NOT NULL,
    first_seen REAL NOT NULL, last_seen REAL NOT NULL, PRIMARY KEY (device_id, mh));
CREATE TABLE IF NOT EXISTS gaps (
    id INTEGER PRIMARY KEY AUTOINCREMENT, device_id TEXT NOT NULL, first INTEGER NOT NULL,
    last INTEGER NOT NULL, count INTEGER NOT NULL, cause TEXT NOT NULL, reported_by INTEGER NOT NULL,
    received_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS rejected (
    id INTEGER PRIMARY KEY AUTOINCREMENT, received_at REAL NOT NULL, topic TEXT NOT NULL,
    device_id TEXT, reason TEXT NOT NULL, message BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS status (
    device_id TEXT PRIMARY KEY, district TEXT, status TEXT NOT NULL, received_at REAL NOT NULL);
CREATE INDEX IF NOT EXISTS gaps_device ON gaps (device_id, first);
CREATE INDEX IF NOT EXISTS rejected_device ON rejected (device_id, id);
CREATE TABLE IF NOT EXISTS held (
    id INTEGER PRIMARY KEY AUTOINCREMENT, received_at REAL NOT NULL, topic TEXT NOT NULL,
    device_id TEXT NOT NULL, message BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS held_device ON held (device_id, id);
"""

COUNTERS = ("received", "accepted", "duplicates", "rejected", "manifests", "bytes")


def to_json(obj):
    """JSON text of decoded CBOR (byte strings as hex)."""
    return json.dumps(obj, sort_keys=True, default=_bytes_hex)


def _bytes_hex(v):
    if isinstance(v, (bytes, bytearray)):
        return bytes(v).hex()
    raise TypeError("not JSON serialisable: %r" % type(v))


class Store:
    """Store(path or None): None keeps everything in memory (tests, a throw-away run)."""

    def __init__(self, path=None):
        self.path = path
        try:
            if path and not os.path.exists(path):
                from provisioning.files import own_file

                own_file(path, STORE_MODE)
            # timeout: how long BEGIN IMMEDIATE waits while another collector process writes
            self.db = sqlite3.connect(path or ":memory:", check_same_thread=False, isolation_level=None, timeout=60)
            # Check and create in one transaction: N collectors starting together on a new file
            # take turns, so none sees another's half-made schema as a foreign database.
            self.db.execute("BEGIN IMMEDIATE")
            self._refuse_foreign(path)  # before anything is written into it
            for statement in SCHEMA.split(";"):
                if statement.strip():
                    self.db.execute(statement)
            row = self.db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
            if row is None:
                self.db.execute("INSERT INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
            self.db.execute("COMMIT")
            if row is not None and row[0] != str(SCHEMA_VERSION):
                raise UsageError("%s: collector store schema %s, this collector reads %d; use another --store"
                                 % (path, row[0], SCHEMA_VERSION))
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=FULL")  # a committed message survives a power cut
        except OSError as e:
            raise EnvironmentProblem("%s: cannot open the collector store (%s)" % (path, e.strerror))
        except sqlite3.OperationalError as e:  # cannot open, locked, read-only, disk full
            raise EnvironmentProblem("%s: cannot open the collector store (%s)" % (path, e))
        except sqlite3.DatabaseError as e:  # e.g. "file is not a database"
            raise UsageError("%s: not a collector store (%s); use another --store" % (path, e))
        self.lock = threading.RLock()

    def _refuse_foreign(self, path):
        tables = {r[0] for r in self.db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if not tables:
            return
        ours = "meta" in tables and self.db.execute(
            "SELECT 1 FROM meta WHERE key='schema_version'").fetchone() is not None
        if not ours:
            self.db.close()
            raise UsageError("%s: holds another database (tables %s), not a collector store; it was left untouched, "
                             "use another --store" % (path, ", ".join(sorted(tables)[:5])))

    def transaction(self):
        return _Transaction(self)

    # -- devices -------------------------------------------------------------------------
    def lock_device(self, dev):
        """Inside a transaction (which here holds the whole file): -> the device's `received`
        counter (None if never seen), which every message of the device increases."""
        row = self.db.execute("SELECT received FROM devices WHERE device_id=?", (dev,)).fetchone()
        return None if row is None else row[0]

    def lock_devices(self, devs):
        """lock_device of each, in the order given; -> {dev: received or None}."""
        return {dev: self.lock_device(dev) for dev in devs}

    def prefetch(self, keys):
        """PostgreSQL reads the batch's stored (dev, seq) in one round trip; a local file needs not."""

    def device(self, dev):
        """The device's row as a dict, or None."""
        cur = self.db.execute("SELECT device_id, district, received, accepted, duplicates, rejected, manifests, "
                              "bytes, last_seq, mh FROM devices WHERE device_id=?", (dev,))
        row = cur.fetchone()
        if row is None:
            return None
        keys = ("device_id", "district") + COUNTERS + ("last_seq", "mh")
        return dict(zip(keys, row))

    def device_ids(self):
        return [r[0] for r in self.db.execute("SELECT device_id FROM devices ORDER BY device_id")]

    def count(self, dev, district, now, nbytes, **add):
        """Add to a device's counters (creating its row); add: counter=increment."""
        self.db.execute("INSERT OR IGNORE INTO devices (device_id, district, first_seen) VALUES (?, ?, ?)",
                        (dev, district, now))
        sets = ["received = received + 1", "bytes = bytes + ?", "last_seen = ?"]
        args = [nbytes, now]
        if district:
            sets.append("district = ?")
            args.append(district)
        for k, v in add.items():
            if k not in COUNTERS:
                raise ValueError(k)
            sets.append("%s = %s + ?" % (k, k))
            args.append(v)
        self.db.execute("UPDATE devices SET %s WHERE device_id=?" % ", ".join(sets), args + [dev])

    def set_last_seq(self, dev, seq):
        self.db.execute("UPDATE devices SET last_seq=? WHERE device_id=?", (seq, dev))

    # -- summaries -----------------------------------------------------------------------
    def summary_payload(self, dev, seq):
        """The stored COSE message of (dev, seq), or None if not stored."""
        row = self.db.execute("SELECT message FROM summaries WHERE device_id=? AND seq=?", (dev, seq)).fetchone()
        return None if row is None else bytes(row[0])

    def add_summary(self, s, mh_ok, topic, now, message):
        h = s.get("h") or {}
        self.db.execute(
            "INSERT INTO summaries VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (s["dev"], s["seq"], s["t0"], s["t1"], to_json(s["m"]), s["mh"],
             None if mh_ok is None else int(mh_ok), h.get("boot"), to_json(h) if h else None,
             to_json(s["gap"]) if "gap" in s else None, topic, now, bytes(message)))

    def marks(self, dev, since=0):
        """[(seq, boot, gap [count, first, last] or None)] of the device's stored summaries with seq >= since
        (gaps.outstanding)."""
        cur = self.db.execute("SELECT seq, boot, gap FROM summaries WHERE device_id=? AND seq >= ? ORDER BY seq",
                              (dev, since))
        return [(r[0], r[1], json.loads(r[2]) if r[2] else None) for r in cur]

    def lowest_seq(self, dev):
        """The lowest seq of the device's stored summaries, or None (an index lookup)."""
        r = self.db.execute("SELECT MIN(seq) FROM summaries WHERE device_id=?", (dev,)).fetchone()
        return r[0] if r else None

    def seqs(self, dev):
        """Stored seqs of a device, ascending."""
        return [r[0] for r in self.db.execute("SELECT seq FROM summaries WHERE device_id=? ORDER BY seq", (dev,))]

    # -- manifests -----------------------------------------------------------------------
    def add_manifest(self, dev, mh, manifest, message, now):
        """Record a manifest; returns True if this device had not sent this one before."""
        cur = self.db.execute("UPDATE manifests SET last_seen=? WHERE device_id=? AND mh=?", (now, dev, mh))
        new = cur.rowcount == 0
        if new:
            self.db.execute("INSERT INTO manifests VALUES (?, ?, ?, ?, ?, ?)",
                            (dev, mh, to_json(manifest), bytes(message), now, now))
        self.db.execute("UPDATE devices SET mh=? WHERE device_id=?", (mh, dev))
        return new

    def manifest(self, dev, mh):
        """The decoded manifest (from its stored JSON) of (dev, mh), or None."""
        row = self.db.execute("SELECT manifest FROM manifests WHERE device_id=? AND mh=?", (dev, mh)).fetchone()
        return None if row is None else json.loads(row[0])

    # -- gaps and rejections -------------------------------------------------------------
    def add_gap(self, dev, first, last, count, cause, reported_by, now):
        self.db.execute("INSERT INTO gaps (device_id, first, last, count, cause, reported_by, received_at) "
                        "VALUES (?, ?, ?, ?, ?, ?, ?)", (dev, first, last, count, cause, reported_by, now))

    def gaps(self, dev):
        """[{first, last, count, cause, reported_by}] of a device, in the order they were found."""
        cur = self.db.execute("SELECT first, last, count, cause, reported_by FROM gaps WHERE device_id=? ORDER BY id",
                              (dev,))
        return [dict(zip(("first", "last", "count", "cause", "reported_by"), r)) for r in cur]

    def add_rejected(self, topic, dev, reason, message, now):
        """Keep a rejected message (cut to MAX_STORED_MESSAGE bytes), dropping the device's oldest
        beyond MAX_REJECTED_PER_DEVICE; dev None is the bucket of senders no registry knows."""
        self.db.execute("INSERT INTO rejected (received_at, topic, device_id, reason, message) VALUES (?, ?, ?, ?, ?)",
                        (now, topic[:512], dev, reason[:1024], bytes(message[:MAX_STORED_MESSAGE])))
        self.db.execute("DELETE FROM rejected WHERE device_id IS ? AND id <= (SELECT id FROM rejected WHERE "
                        "device_id IS ? ORDER BY id DESC LIMIT 1 OFFSET ?)", (dev, dev, MAX_REJECTED_PER_DEVICE))

    def rejected(self):
        cur = self.db.execute("SELECT topic, device_id, reason FROM rejected ORDER BY id")
        return [dict(zip(("topic", "device_id", "reason"), r)) for r in cur]

    # -- held (signer not in the registry yet) --------------------------------------------
    def hold(self, topic, dev, message, now):
        """Keep a message of a device the registry does not know yet; False if the bounds are reached."""
        mine, total = self.db.execute("SELECT (SELECT COUNT(*) FROM held WHERE device_id=?), "
                                      "(SELECT COUNT(*) FROM held)", (dev,)).fetchone()
        if mine >= MAX_HELD_PER_DEVICE or total >= MAX_HELD:
            return False
        self.db.execute("INSERT INTO held (received_at, topic, device_id, message) VALUES (?, ?, ?, ?)",
                        (now, topic, dev, bytes(message)))
        return True

    def held_devices(self):
        """{device_id: messages held} of the devices with held messages."""
        return dict(self.db.execute("SELECT device_id, COUNT(*) FROM held GROUP BY device_id"))

    def take_held(self, dev, limit=500):
        """[(id, topic, message, received_at)] oldest first; the caller deletes each with drop_held in
        the transaction that records it."""
        cur = self.db.execute("SELECT id, topic, message, received_at FROM held WHERE device_id=? ORDER BY id LIMIT ?",
                              (dev, limit))
        return [(r[0], r[1], bytes(r[2]), r[3]) for r in cur]

    def drop_held(self, held_id):
        """Delete a held message; False if it was gone (another collector took it first)."""
        return self.db.execute("DELETE FROM held WHERE id=?", (held_id,)).rowcount > 0

    # -- status (retained online/offline, unsigned) ----------------------------------------
    def set_status(self, dev, district, status, now):
        self.db.execute("INSERT OR REPLACE INTO status VALUES (?, ?, ?, ?)", (dev, district, status, now))

    def status(self, dev):
        """(status, received_at) of a device's last status message, or None."""
        row = self.db.execute("SELECT status, received_at FROM status WHERE device_id=?", (dev,)).fetchone()
        return None if row is None else tuple(row)

    def close(self):
        self.db.close()


class _Transaction:
    """BEGIN IMMEDIATE ... COMMIT, or ROLLBACK if the block raised; holds the store's lock."""

    def __init__(self, store):
        self.store = store

    def __enter__(self):
        self.store.lock.acquire()
        self.store.db.execute("BEGIN IMMEDIATE")
        return self.store

    def __exit__(self, exc_type, exc, tb):
        try:
            self.store.db.execute("COMMIT" if exc_type is None else "ROLLBACK")
        finally:
            self.store.lock.release()
        return False
