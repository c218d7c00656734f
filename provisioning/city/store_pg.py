"""The collector's store on PostgreSQL, for when one SQLite file is not enough (CPython only).

    PgStore("postgresql://user@host:5432/city")      # or Collector(ring, "postgresql://...")

The same schema (version 1) and the same methods as the SQLite Store (provisioning/city/store.py),
in PostgreSQL types (BYTEA for blobs, BIGINT, DOUBLE PRECISION). Several collectors, on one
machine or many, may share one database: every message is one transaction, and
`lock_device(dev)` takes a transaction-scoped advisory lock on the device first, so two
collectors judging messages of the same device take turns, each seeing what the other
committed: de-duplication and gap detection are computed from the store, not from memory.
Needs psycopg 3 (pip install 'psycopg[binary]'); PostgreSQL 12 or later.
"""
import json
import sys
import threading

from provisioning.city.store import (COUNTERS, MAX_HELD, MAX_HELD_PER_DEVICE, MAX_REJECTED_PER_DEVICE,
                                     MAX_STORED_MESSAGE, SCHEMA_VERSION, to_json)
from provisioning.errors import EnvironmentProblem, UsageError

SCHEMA = [
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    """CREATE TABLE IF NOT EXISTS devices (
    device_id TEXT PRIMARY KEY, district TEXT,
    received BIGINT NOT NULL DEFAULT 0, accepted BIGINT NOT NULL DEFAULT 0,
    duplicates BIGINT NOT NULL DEFAULT 0, rejected BIGINT NOT NULL DEFAULT 0,
    manifests BIGINT NOT NULL DEFAULT 0, bytes BIGINT NOT NULL DEFAULT 0,
    last_seq BIGINT, mh BYTEA, first_seen DOUBLE PRECISION, last_seen DOUBLE PRECISION)""",
    """CREATE TABLE IF NOT EXISTS summaries (
    device_id TEXT NOT NULL, seq BIGINT NOT NULL, t0 BIGINT NOT NULL, t1 BIGINT NOT NULL,
    metrics TEXT NOT NULL, mh BYTEA NOT NULL, mh_ok INTEGER, boot BIGINT, health TEXT, gap TEXT,
    topic TEXT NOT NULL, received_at DOUBLE PRECISION NOT NULL, message BYTEA NOT NULL,
    PRIMARY KEY (device_id, seq))""",
    """CREATE TABLE IF NOT EXISTS manifests (
    device_id TEXT NOT NULL, mh BYTEA NOT NULL, manifest TEXT NOT NULL, message BYTEA NOT NULL,
    first_seen DOUBLE PRECISION NOT NULL, last_seen DOUBLE PRECISION NOT NULL, PRIMARY KEY (device_id, mh))""",
    """CREATE TABLE IF NOT EXISTS gaps (
    id BIGSERIAL PRIMARY KEY, device_id TEXT NOT NULL, first BIGINT NOT NULL, last BIGINT NOT NULL,
    count BIGINT NOT NULL, cause TEXT NOT NULL, reported_by BIGINT NOT NULL,
    received_at DOUBLE PRECISION NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS rejected (
    id BIGSERIAL PRIMARY KEY, received_at DOUBLE PRECISION NOT NULL, topic TEXT NOT NULL,
    device_id TEXT, reason TEXT NOT NULL, message BYTEA NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS gaps_device ON gaps (device_id, first)",
    "CREATE INDEX IF NOT EXISTS rejected_device ON rejected (device_id, id)",
    """CREATE TABLE IF NOT EXISTS held (
    id BIGSERIAL PRIMARY KEY, received_at DOUBLE PRECISION NOT NULL, topic TEXT NOT NULL,
    device_id TEXT NOT NULL, message BYTEA NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS held_device ON held (device_id, id)",
    """CREATE TABLE IF NOT EXISTS status (
    device_id TEXT PRIMARY KEY, district TEXT, status TEXT NOT NULL, received_at DOUBLE PRECISION NOT NULL)""",
]
SCHEMA_LOCK = 0x63697669  # advisory lock key held while one collector creates the schema
DEVICE_KEYS = ("device_id", "district") + COUNTERS + ("last_seq", "mh")


def open_store(target=None):
    """The collector's store: PgStore for a postgresql:// URL, else the SQLite Store (None: in memory)."""
    from provisioning.city.store import Store

    return PgStore(target) if is_url(target) else Store(target)


def driver_errors():
    """The database driver's exception classes (for callers turning them into one-line errors)."""
    try:
        import psycopg
    except ImportError:
        return ()
    return (psycopg.Error,)


def is_url(s):
    return isinstance(s, str) and (s.startswith("postgresql://") or s.startswith("postgres://"))


def redact(url):
    """The URL without its password, for messages."""
    head, sep, rest = url.partition("://")
    creds, at, host = rest.rpartition("@")
    if not at or ":" not in creds:
        return url
    return "%s%s%s:***@%s" % (head, sep, creds.split(":", 1)[0], host)


class PgStore:
    """PgStore(url): a collector store in a PostgreSQL database (created tables if missing)."""

    def __init__(self, url):
        try:
            import psycopg
        except ImportError:
            raise EnvironmentProblem("--store %s needs psycopg 3: pip install 'psycopg[binary]'" % redact(url))
        self.psycopg = psycopg
        self.path = redact(url)
        try:
            self.db = psycopg.connect(url, autocommit=True, connect_timeout=10)
            with self.db.transaction():
                self.db.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK,))
                self._refuse_foreign()
                for statement in SCHEMA:
                    self.db.execute(statement)
                row = self.db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
                if row is None:
                    self.db.execute("INSERT INTO meta VALUES ('schema_version', %s)", (str(SCHEMA_VERSION),))
        except psycopg.OperationalError as e:  # unreachable, refused, authentication
            raise EnvironmentProblem("%s: cannot open the collector store (%s)" % (self.path, _first_line(e)))
        except psycopg.Error as e:  # e.g. a table of the same name and another shape
            raise UsageError("%s: not a collector store (%s); use another --store" % (self.path, _first_line(e)))
        if row is not None and row[0] != str(SCHEMA_VERSION):
            self.db.close()
            raise UsageError("%s: collector store schema %s, this collector reads %d; use another --store"
                             % (self.path, row[0], SCHEMA_VERSION))
        self.lock = threading.RLock()
        self._known = None  # {(dev, seq): stored message or None} read by prefetch, this transaction

    def _refuse_foreign(self):
        """Tables but no collector `meta` in this database's schema: someone else's; touch nothing."""
        tables = {r[0] for r in self.db.execute("SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")}
        if tables and not ("meta" in tables and self._one("SELECT 1 FROM meta WHERE key='schema_version'")):
            raise UsageError("%s: holds another database (tables %s), not a collector store; it was left untouched, "
                             "use another --store" % (self.path, ", ".join(sorted(tables)[:5])))

    def transaction(self):
        return _Transaction(self)

    def _one(self, sql, args=()):
        return self.db.execute(sql, args).fetchone()

    # -- devices -------------------------------------------------------------------------
    def lock_device(self, dev):
        """Inside a transaction: wait for other collectors' transactions on this device; -> its
        `received` counter (None if never seen), which every message of the device increases."""
        self.db.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (dev,))
        row = self._one("SELECT received FROM devices WHERE device_id=%s", (dev,))
        return None if row is None else row[0]

    def lock_devices(self, devs):
        """Inside a transaction: lock devices in one round trip, in the order given (the caller
        sorts, so two collectors never wait on each other in a cycle); -> {dev: received or None}."""
        devs = list(devs)
        self.db.execute("SELECT pg_advisory_xact_lock(hashtextextended(d, 0)) FROM "
                        "(SELECT d, n FROM unnest(%s::text[]) WITH ORDINALITY AS u(d, n) ORDER BY n) AS s", (devs,))
        got = dict(self.db.execute("SELECT device_id, received FROM devices WHERE device_id = ANY(%s)",
                                   (devs,)).fetchall())
        return {dev: got.get(dev) for dev in devs}

    def prefetch(self, keys):
        """Inside a transaction: read the stored messages of [(dev, seq)] in one round trip;
        summary_payload answers for them from this until the transaction ends."""
        self._known = dict.fromkeys(keys)
        if keys:
            rows = self.db.execute("SELECT s.device_id, s.seq, s.message FROM summaries s JOIN "
                                   "unnest(%s::text[], %s::bigint[]) AS k(d, q) ON s.device_id = k.d AND s.seq = k.q",
                                   ([k[0] for k in keys], [k[1] for k in keys])).fetchall()
            for dev, seq, message in rows:
                self._known[(dev, seq)] = bytes(message)

    def device(self, dev):
        row = self._one("SELECT device_id, district, received, accepted, duplicates, rejected, manifests, "
                        "bytes, last_seq, mh FROM devices WHERE device_id=%s", (dev,))
        if row is None:
            return None
        d = dict(zip(DEVICE_KEYS, row))
        d["mh"] = None if d["mh"] is None else bytes(d["mh"])
        return d

    def device_ids(self):
        return [r[0] for r in self.db.execute("SELECT device_id FROM devices ORDER BY device_id")]

    def count(self, dev, district, now, nbytes, **add):
        # one upsert, one round trip: the new row starts from the column defaults (0)
        sets = ["received = devices.received + 1", "bytes = devices.bytes + %s", "last_seen = %s"]
        args = [nbytes, now]
        if district:
            sets.append("district = %s")
            args.append(district)
        cols, vals = ["received", "bytes", "last_seen"], ["1", "%s", "%s"]
        vargs = [nbytes, now]
        for k, v in add.items():
            if k not in COUNTERS or k in ("received", "bytes"):
                raise ValueError(k)
            sets.append("%s = devices.%s + %%s" % (k, k))
            args.append(v)
            cols.append(k)
            vals.append("%s")
            vargs.append(v)
        self.db.execute("INSERT INTO devices (device_id, district, first_seen, %s) VALUES (%%s, %%s, %%s, %s) "
                        "ON CONFLICT (device_id) DO UPDATE SET %s"
                        % (", ".join(cols), ", ".join(vals), ", ".join(sets)), [dev, district, now] + vargs + args)

    def set_last_seq(self, dev, seq):
        self.db.execute("UPDATE devices SET last_seq=%s WHERE device_id=%s", (seq, dev))

    # -- summaries -----------------------------------------------------------------------
    def summary_payload(self, dev, seq):
        if self._known is not None and (dev, seq) in self._known:
            return self._known[(dev, seq)]
        row = self._one("SELECT message FROM summaries WHERE device_id=%s AND seq=%s", (dev, seq))
        return None if row is None else bytes(row[0])

    def add_summary(self, s, mh_ok, topic, now, message):
        h = s.get("h") or {}
        if self._known is not None:
            self._known[(s["dev"], s["seq"])] = bytes(message)
        self.db.execute(
            "INSERT INTO summaries VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
            (s["dev"], s["seq"], s["t0"], s["t1"], to_json(s["m"]), bytes(s["mh"]),
             None if mh_ok is None else int(mh_ok), h.get("boot"), to_json(h) if h else None,
             to_json(s["gap"]) if "gap" in s else None, topic, now, bytes(message)))

    def marks(self, dev, since=0):
        """[(seq, boot, gap [count, first, last] or None)] of the device's stored summaries with seq >= since
        (gaps.outstanding)."""
        cur = self.db.execute("SELECT seq, boot, gap FROM summaries WHERE device_id=%s AND seq >= %s ORDER BY seq",
                              (dev, since))
        return [(r[0], r[1], json.loads(r[2]) if r[2] else None) for r in cur]

    def lowest_seq(self, dev):
        """The lowest seq of the device's stored summaries, or None (an index lookup)."""
        r = self.db.execute("SELECT MIN(seq) FROM summaries WHERE device_id=%s", (dev,)).fetchone()
        return r[0] if r else None

    def seqs(self, dev):
        return [r[0] for r in self.db.execute("SELECT seq FROM summaries WHERE device_id=%s ORDER BY seq", (dev,))]

    # -- manifests -----------------------------------------------------------------------
    def add_manifest(self, dev, mh, manifest, message, now):
        mh = bytes(mh)
        new = self._one("UPDATE manifests SET last_seen=%s WHERE device_id=%s AND mh=%s RETURNING 1",
                        (now, dev, mh)) is None
        if new:
            self.db.execute("INSERT INTO manifests VALUES (%s, %s, %s, %s, %s, %s)",
                            (dev, mh, to_json(manifest), bytes(message), now, now))
        self.db.execute("UPDATE devices SET mh=%s WHERE device_id=%s", (mh, dev))
        return new

    def manifest(self, dev, mh):
        row = self._one("SELECT manifest FROM manifests WHERE device_id=%s AND mh=%s", (dev, bytes(mh)))
        return None if row is None else json.loads(row[0])

    # -- gaps and rejections -------------------------------------------------------------
    def add_gap(self, dev, first, last, count, cause, reported_by, now):
        self.db.execute("INSERT INTO gaps (device_id, first, last, count, cause, reported_by, received_at) "
                        "VALUES (%s, %s, %s, %s, %s, %s, %s)", (dev, first, last, count, cause, reported_by, now))

    def gaps(self, dev):
        cur = self.db.execute("SELECT first, last, count, cause, reported_by FROM gaps WHERE device_id=%s "
                              "ORDER BY id", (dev,))
        return [dict(zip(("first", "last", "count", "cause", "reported_by"), r)) for r in cur]

    def add_rejected(self, topic, dev, reason, message, now):
        """As the SQLite store: cut, and only the newest MAX_REJECTED_PER_DEVICE kept per device."""
        self.db.execute("INSERT INTO rejected (received_at, topic, device_id, reason, message) "
                        "VALUES (%s, %s, %s, %s, %s)",
                        (now, topic[:512], dev, reason[:1024], bytes(message[:MAX_STORED_MESSAGE])))
        self.db.execute("DELETE FROM rejected WHERE device_id IS NOT DISTINCT FROM %s AND id <= (SELECT id FROM "
                        "rejected WHERE device_id IS NOT DISTINCT FROM %s ORDER BY id DESC LIMIT 1 OFFSET %s)",
                        (dev, dev, MAX_REJECTED_PER_DEVICE))

    def rejected(self):
        cur = self.db.execute("SELECT topic, device_id, reason FROM rejected ORDER BY id")
        return [dict(zip(("topic", "device_id", "reason"), r)) for r in cur]

    # -- held (signer not in the registry yet) --------------------------------------------
    def hold(self, topic, dev, message, now):
        mine, total = self._one("SELECT (SELECT COUNT(*) FROM held WHERE device_id=%s), (SELECT COUNT(*) FROM held)",
                                (dev,))
        if mine >= MAX_HELD_PER_DEVICE or total >= MAX_HELD:
            return False
        self.db.execute("INSERT INTO held (received_at, topic, device_id, message) VALUES (%s, %s, %s, %s)",
                        (now, topic, dev, bytes(message)))
        return True

    def held_devices(self):
        return dict(self.db.execute("SELECT device_id, COUNT(*) FROM held GROUP BY device_id").fetchall())

    def take_held(self, dev, limit=500):
        cur = self.db.execute("SELECT id, topic, message, received_at FROM held WHERE device_id=%s ORDER BY id "
                              "LIMIT %s", (dev, limit))
        return [(r[0], r[1], bytes(r[2]), r[3]) for r in cur]

    def drop_held(self, held_id):
        """Delete a held message; False if it was gone (another collector took it first)."""
        return self._one("DELETE FROM held WHERE id=%s RETURNING id", (held_id,)) is not None

    # -- status (retained online/offline, unsigned) ----------------------------------------
    def set_status(self, dev, district, status, now):
        self.db.execute("INSERT INTO status VALUES (%s, %s, %s, %s) ON CONFLICT (device_id) DO UPDATE SET "
                        "district=EXCLUDED.district, status=EXCLUDED.status, received_at=EXCLUDED.received_at",
                        (dev, district, status, now))

    def status(self, dev):
        """(status, received_at) of a device's last status message, or None."""
        row = self._one("SELECT status, received_at FROM status WHERE device_id=%s", (dev,))
        return None if row is None else tuple(row)

    def close(self):
        self.db.close()


def _first_line(e):
    return (str(e).strip().splitlines() or [type(e).__name__])[0]


class _Transaction:
    """One PostgreSQL transaction (READ COMMITTED), committed, or rolled back if the block raised.
    In pipeline mode: a statement whose result nobody reads (the writes) costs no round trip of
    its own; a read waits for what was sent before it."""

    def __init__(self, store):
        self.store = store
        self.tx = self.pipe = None

    def __enter__(self):
        self.store.lock.acquire()
        try:
            self.pipe = self.store.db.pipeline()
            self.pipe.__enter__()
            self.tx = self.store.db.transaction()
            self.tx.__enter__()
        except BaseException:
            if self.pipe is not None:
                self.pipe.__exit__(*sys.exc_info())
            self.store.lock.release()
            raise
        return self.store

    def __exit__(self, exc_type, exc, tb):
        self.store._known = None
        try:
            try:
                self.tx.__exit__(exc_type, exc, tb)
            finally:
                self.pipe.__exit__(exc_type, exc, tb)
        finally:
            self.store.lock.release()
        return False
