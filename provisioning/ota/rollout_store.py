"""The rollout state: SQLite on the city's rollout host, one transaction per change (CPython only).

    releases   every release a rollout was started with: its signed document and its artefact's path
    rollouts   one per (release, district): stages, the stage reached, state (running / paused /
               halted / aborted / done), why it halted, the failure threshold, the download cap,
               the membership salt, and the seq of the last order signed for it
    orders     every order signed (seq only goes up per city): what devices are told
    devices    the latest device-signed status of each device (the COSE bytes kept: anyone can
               re-verify it), and the release seq it runs (`sw`)
    status_log every status accepted, for the history of an attempt
The CLI (`civicmote rollout start|pause|resume|abort`) writes what the operator wants here; the
rollout service (`civicmote rollout serve`) reads it, signs orders and records what devices say.
Both may run at once: SQLite's lock orders them (WAL, busy timeout).
"""
import json
import os
import sqlite3
import time

from provisioning.errors import EnvironmentProblem, StateError, UsageError

SCHEMA_VERSION = 1
DEFAULT_ENV = "CIVICMOTE_ROLLOUT"
DEFAULT_PATH = "rollout.db"
STATES = ("running", "paused", "halted", "aborted", "done")
_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS releases (
    hash BLOB PRIMARY KEY, seq INTEGER NOT NULL, ver TEXT NOT NULL, comp TEXT NOT NULL, class TEXT NOT NULL,
    size INTEGER NOT NULL, sha256 BLOB NOT NULL, cose BLOB NOT NULL, artefact TEXT NOT NULL, added REAL NOT NULL);
CREATE TABLE IF NOT EXISTS rollouts (
    id INTEGER PRIMARY KEY AUTOINCREMENT, release BLOB NOT NULL REFERENCES releases(hash),
    district TEXT NOT NULL, canaries TEXT NOT NULL, stages TEXT NOT NULL, stage INTEGER NOT NULL,
    state TEXT NOT NULL, reason TEXT, threshold INTEGER NOT NULL, min_done INTEGER NOT NULL,
    cap INTEGER NOT NULL, salt BLOB NOT NULL, order_seq INTEGER NOT NULL DEFAULT 0,
    order_exp INTEGER NOT NULL DEFAULT 0, order_for TEXT NOT NULL DEFAULT '', counts TEXT NOT NULL DEFAULT '{}',
    targeted INTEGER NOT NULL DEFAULT 0, pending TEXT NOT NULL DEFAULT '[]', forgiven TEXT NOT NULL DEFAULT '[]',
    stage_timeout INTEGER NOT NULL DEFAULT 0, stage_at REAL NOT NULL DEFAULT 0, started REAL NOT NULL,
    updated REAL NOT NULL, done_at REAL);
CREATE TABLE IF NOT EXISTS orders (
    seq INTEGER PRIMARY KEY, rollout INTEGER NOT NULL, district TEXT NOT NULL, cose BLOB NOT NULL, made REAL NOT NULL);
CREATE TABLE IF NOT EXISTS devices (
    dev TEXT PRIMARY KEY, district TEXT NOT NULL, state TEXT NOT NULL, reason TEXT NOT NULL, rseq INTEGER NOT NULL,
    release BLOB NOT NULL, off INTEGER NOT NULL, size INTEGER NOT NULL, sw INTEGER NOT NULL, t INTEGER NOT NULL,
    received REAL NOT NULL, cose BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS status_log (
    id INTEGER PRIMARY KEY AUTOINCREMENT, dev TEXT NOT NULL, state TEXT NOT NULL, reason TEXT NOT NULL,
    rseq INTEGER NOT NULL, release BLOB NOT NULL, received REAL NOT NULL);
CREATE INDEX IF NOT EXISTS status_log_dev ON status_log (dev, id);
"""


def default_path():
    return os.environ.get(DEFAULT_ENV) or DEFAULT_PATH


class RolloutStore:
    """RolloutStore(path, create=False, clock=time.time, readonly=False). Reads return plain dicts.
    readonly: for viewers (the web page), which may not be allowed to write beside the file."""

    def __init__(self, path, create=False, clock=time.time, readonly=False):
        self.path = str(path)
        self.clock = clock
        if os.path.isdir(self.path):
            raise UsageError("%s: is a folder; --state takes the rollout state's file (e.g. rollout.db)" % self.path)
        if not create and not os.path.exists(self.path):
            raise UsageError("%s: no rollout state here; start a rollout first (civicmote rollout start) or point "
                             "--state at it" % self.path)
        try:
            if readonly:
                from urllib.parse import quote

                self.db = sqlite3.connect("file:%s?mode=ro" % quote(os.path.abspath(self.path)), uri=True,
                                          isolation_level=None, timeout=30, check_same_thread=False)
            else:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)  # owner-only from its first byte
                os.close(fd)
                self.db = sqlite3.connect(self.path, isolation_level=None, timeout=30, check_same_thread=False)
                self.db.execute("PRAGMA journal_mode=WAL")  # the CLI and the service write side by side
            self.db.row_factory = sqlite3.Row
            self._check_or_create()
        except sqlite3.DatabaseError as e:
            raise StateError("%s: not a usable civicmote rollout state (%s)" % (self.path, e))
        except OSError as e:
            raise EnvironmentProblem("%s: cannot open the rollout state (%s)" % (self.path, e.strerror))

    def _check_or_create(self):
        tables = {r[0] for r in self.db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if not tables:
            with self.transaction():
                for stmt in _SCHEMA.split(";"):
                    if stmt.strip():
                        self.db.execute(stmt)
                self.db.execute("INSERT INTO meta VALUES ('schema', ?)", (str(SCHEMA_VERSION),))
            return
        row = self.db.execute("SELECT value FROM meta WHERE key='schema'").fetchone() if "meta" in tables else None
        if row is None or "rollouts" not in tables:
            raise UsageError("%s: a database of something else, not a civicmote rollout state" % self.path)
        if row[0] != str(SCHEMA_VERSION):
            raise sqlite3.DatabaseError("schema version %s, this civicmote reads %d" % (row[0], SCHEMA_VERSION))

    def close(self):
        self.db.close()

    def transaction(self):
        return _Transaction(self.db)

    # -- releases and rollouts --------------------------------------------------------------------
    def add_release(self, digest, rel, cose, artefact):
        """rel: the checked release map. Kept once per hash."""
        self.db.execute("INSERT OR IGNORE INTO releases VALUES (?,?,?,?,?,?,?,?,?,?)",
                        (digest, rel["seq"], rel["ver"], rel["comp"], json.dumps(rel["class"]), rel["size"],
                         rel["sha256"], bytes(cose), str(artefact), self.clock()))

    def release(self, digest):
        r = self.db.execute("SELECT * FROM releases WHERE hash=?", (bytes(digest),)).fetchone()
        return _release(r) if r else None

    def releases(self):
        return [_release(r) for r in self.db.execute("SELECT * FROM releases ORDER BY seq")]

    def start(self, digest, district, canaries, stages, threshold, min_done, cap, salt, stage_timeout=0):
        """A new rollout (running, at its first stage); refuses a second live one in the district.
        stage_timeout: seconds after which a stage stops waiting for devices that have not finished
        (0: it waits for every one)."""
        with self.transaction():
            live = self.db.execute("SELECT id FROM rollouts WHERE district=? AND state IN ('running','paused')",
                                   (district,)).fetchone()
            if live:
                raise StateError("district %s already has rollout %d in progress; pause, abort or wait for it "
                                 "(civicmote rollout status)" % (district, live[0]))
            now = self.clock()
            cur = self.db.execute(
                "INSERT INTO rollouts (release, district, canaries, stages, stage, state, threshold, min_done, cap, "
                "salt, stage_timeout, stage_at, started, updated) VALUES (?,?,?,?,0,'running',?,?,?,?,?,?,?,?)",
                (bytes(digest), district, json.dumps(list(canaries)), json.dumps(list(stages)), threshold, min_done,
                 cap, bytes(salt), int(stage_timeout), now, now, now))
            return cur.lastrowid

    def rollout(self, rid):
        r = self.db.execute("SELECT * FROM rollouts WHERE id=?", (rid,)).fetchone()
        if r is None:
            raise UsageError("rollout %s: no such rollout (civicmote rollout status lists them)" % rid)
        return _rollout(r)

    def newest_per_district(self):
        """{district: the newest rollout there} (the one whose order devices are told)."""
        rows = self.db.execute("SELECT * FROM rollouts WHERE id IN (SELECT MAX(id) FROM rollouts GROUP BY district)")
        return {r["district"]: _rollout(r) for r in rows}

    def rollouts(self, live_only=False):
        q = "SELECT * FROM rollouts" + (" WHERE state IN ('running','paused')" if live_only else "") + " ORDER BY id"
        return [_rollout(r) for r in self.db.execute(q)]

    def set_state(self, rid, state, reason=None, allowed=STATES):
        """Move rollout rid to state (from one of `allowed`); -> the rollout after, or raise StateError."""
        with self.transaction():
            r = self.rollout(rid)
            if r["state"] not in allowed:
                raise StateError("rollout %d is %s; it cannot be made %s" % (rid, r["state"], state))
            now = self.clock()
            self.db.execute("UPDATE rollouts SET state=?, reason=?, updated=?, done_at=? WHERE id=?",
                            (state, reason, now, now if state == "done" else None, rid))
        return self.rollout(rid)

    def resume(self, rid):
        """A paused or halted rollout runs again. The failures that halted it are the operator's to
        judge: those devices are `forgiven` (they no longer count toward the threshold, nor halt a
        canary stage); a new failure counts as before."""
        with self.transaction():
            r = self.rollout(rid)
            if r["state"] not in ("paused", "halted"):
                raise StateError("rollout %d is %s; only a paused or halted rollout can be resumed" % (rid, r["state"]))
            failed = sorted(set(r["forgiven"]) | set(
                dev for dev, st in self.device_states(r["district"]).items() if st["release"] == r["release"]
                and st["state"] in ("rolled_back", "refused") and st["reason"] != "stopped"))
            now = self.clock()  # the stage's wait starts again
            self.db.execute("UPDATE rollouts SET state='running', reason=NULL, forgiven=?, stage_at=?, updated=? "
                            "WHERE id=?", (json.dumps(failed), now, now, rid))
        return self.rollout(rid)

    def set_stage(self, rid, stage):
        now = self.clock()
        self.db.execute("UPDATE rollouts SET stage=?, stage_at=?, updated=? WHERE id=?", (stage, now, now, rid))

    # -- orders ------------------------------------------------------------------------------------
    def next_order_seq(self):
        row = self.db.execute("SELECT MAX(seq) FROM orders").fetchone()
        return (row[0] or 0) + 1

    def add_order(self, seq, rid, district, cose, exp, order_for):
        """order_for: what it says, "stage:K" or "stop" (so the service knows whether to sign anew)."""
        with self.transaction():
            self.db.execute("INSERT INTO orders VALUES (?,?,?,?,?)", (seq, rid, district, bytes(cose), self.clock()))
            self.db.execute("UPDATE rollouts SET order_seq=?, order_exp=?, order_for=? WHERE id=?",
                            (seq, exp, order_for, rid))

    def set_progress(self, rid, counts, targeted, pending):
        """The service's latest count of the targeted devices per state (what status and the fleet page show)."""
        self.db.execute("UPDATE rollouts SET counts=?, targeted=?, pending=? WHERE id=?",
                        (json.dumps(counts, sort_keys=True), targeted, json.dumps(sorted(pending)[:50]), rid))

    def latest_order(self, district):
        """The COSE bytes of the newest order for a district, or None."""
        r = self.db.execute("SELECT cose FROM orders WHERE district=? ORDER BY seq DESC LIMIT 1",
                            (district,)).fetchone()
        return bytes(r[0]) if r else None

    def order_count(self, rid):
        return self.db.execute("SELECT COUNT(*) FROM orders WHERE rollout=?", (rid,)).fetchone()[0]

    # -- device status ----------------------------------------------------------------------------
    def record_status(self, district, st, cose):
        """st: the checked status map. An older status (by device clock `t`, when both have one) is
        kept in the log but does not replace the newer one. -> True if it is now the latest."""
        now = self.clock()
        with self.transaction():
            self.db.execute("INSERT INTO status_log (dev, state, reason, rseq, release, received) VALUES (?,?,?,?,?,?)",
                            (st["dev"], st["state"], st["reason"], st["rseq"], st["release"], now))
            old = self.db.execute("SELECT t FROM devices WHERE dev=?", (st["dev"],)).fetchone()
            if old is not None and st["t"] and old[0] and st["t"] < old[0]:
                return False
            self.db.execute("INSERT OR REPLACE INTO devices VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                            (st["dev"], district, st["state"], st["reason"], st["rseq"], st["release"], st["off"],
                             st["size"], st["sw"], st["t"], now, bytes(cose)))
        return True

    def device_states(self, district=None):
        """{dev: latest status dict} (optionally of one district)."""
        q, a = "SELECT * FROM devices", ()
        if district is not None:
            q, a = q + " WHERE district=?", (district,)
        return {r["dev"]: _device(r) for r in self.db.execute(q, a)}

    def history(self, dev, limit=20):
        rows = self.db.execute("SELECT state, reason, rseq, release, received FROM status_log WHERE dev=? "
                               "ORDER BY id DESC LIMIT ?", (dev, limit))
        return [{"state": r[0], "reason": r[1], "rseq": r[2], "release": bytes(r[3]).hex(), "received": r[4]}
                for r in rows]


def _release(r):
    d = dict(r)
    d["class"] = json.loads(d["class"])
    for k in ("hash", "sha256", "cose"):
        d[k] = bytes(d[k])
    return d


def _rollout(r):
    d = dict(r)
    for k in ("canaries", "stages", "counts", "pending", "forgiven"):
        d[k] = json.loads(d[k])
    d["release"] = bytes(d["release"])
    d["salt"] = bytes(d["salt"])
    return d


def _device(r):
    d = dict(r)
    d["release"] = bytes(d["release"])
    d["cose"] = bytes(d["cose"])
    return d


class _Transaction:
    """BEGIN IMMEDIATE ... COMMIT, nestable (an inner one joins the outer)."""

    def __init__(self, db):
        self.db = db
        self.outer = False

    def __enter__(self):
        if not self.db.in_transaction:
            self.db.execute("BEGIN IMMEDIATE")
            self.outer = True
        return self.db

    def __exit__(self, exc_type, exc, tb):
        if self.outer:
            self.db.execute("ROLLBACK" if exc_type else "COMMIT")
        return False
