"""The device registry: SQLite on the provisioning host, every change in one transaction (CPython only).

One row per device identity, and an append-only event log. Status moves
    active <-> disabled     (reversible: `registry disable` / `enable`)
    active|disabled -> revoked   (permanent; revoking again is a no-op)
A re-keyed device is a new identity; its old one is revoked in the same transaction.
"""
import json
import os
import sqlite3
import time

from provisioning.errors import EnvironmentProblem, StateError, UsageError

SCHEMA_VERSION = 1
STATUSES = ("active", "disabled", "revoked")
DEFAULT_ENV = "CIVICMOTE_REGISTRY"
DEFAULT_PATH = "registry.db"
MODE = 0o600  # contacts and locations: the owner only (SQLite gives its journal the same mode)
FIELDS = ("device_id", "public_key", "status", "district", "board", "target", "location", "contact",
          "certificate", "cert_serial", "cert_fingerprint", "measures", "reason", "created", "updated")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS devices (
    device_id TEXT PRIMARY KEY,
    public_key TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('active', 'disabled', 'revoked')),
    district TEXT NOT NULL,
    board TEXT NOT NULL,
    target TEXT,
    location TEXT,
    contact TEXT,
    certificate TEXT,
    cert_serial TEXT,
    cert_fingerprint TEXT,
    measures TEXT,
    reason TEXT,
    created REAL NOT NULL,
    updated REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS devices_target ON devices (target);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    device_id TEXT NOT NULL,
    at REAL NOT NULL,
    action TEXT NOT NULL,
    detail TEXT
);
"""


def default_path():
    return os.environ.get(DEFAULT_ENV) or DEFAULT_PATH


class Registry:
    """Open with Registry(path, create=True|False). Reads return plain dicts; writes are transactions."""

    def __init__(self, path, create=False, clock=time.time):
        self.path = str(path)
        self.clock = clock
        if not create and not os.path.exists(self.path):
            raise UsageError("%s: no registry here; provision a device first or point --registry at yours" % self.path)
        try:
            _owner_only(self.path)
            self.db = sqlite3.connect(self.path, isolation_level=None, timeout=30)
            self.db.row_factory = sqlite3.Row
            self._check_or_create()
        except sqlite3.DatabaseError as e:
            raise StateError("%s: not a usable civicmote registry (%s); restore it from your backup, or move it "
                             "aside and re-provision" % (self.path, e))
        except OSError as e:
            raise EnvironmentProblem("%s: cannot open the registry (%s)" % (self.path, e.strerror))

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
        if row is None or "devices" not in tables:
            raise sqlite3.DatabaseError("no civicmote schema")
        if row[0] != str(SCHEMA_VERSION):
            raise sqlite3.DatabaseError("schema version %s, this civicmote reads %d" % (row[0], SCHEMA_VERSION))
        check = self.db.execute("PRAGMA quick_check").fetchone()[0]
        if check != "ok":
            raise sqlite3.DatabaseError("integrity check failed: %s" % check)

    def close(self):
        self.db.close()

    def transaction(self):
        return _Transaction(self.db)

    # --- reads ---------------------------------------------------------------------------

    def get(self, device_id):
        row = self.db.execute("SELECT * FROM devices WHERE device_id=?", (device_id,)).fetchone()
        return _record(row) if row else None

    def require(self, device_id):
        rec = self.get(device_id)
        if rec is None:
            raise UsageError("device %s: not in the registry %s (see 'civicmote registry list')" % (device_id, self.path))
        return rec

    def by_target(self, target, status="active"):
        rows = self.db.execute("SELECT * FROM devices WHERE target=? AND status=? ORDER BY created",
                               (target, status)).fetchall()
        return [_record(r) for r in rows]

    def list(self, status=None, district=None):
        q, p = "SELECT * FROM devices WHERE 1=1", []
        if status:
            q += " AND status=?"
            p.append(status)
        if district:
            q += " AND district=?"
            p.append(district)
        return [_record(r) for r in self.db.execute(q + " ORDER BY district, device_id", p).fetchall()]

    def events(self, device_id):
        rows = self.db.execute("SELECT at, action, detail FROM events WHERE device_id=? ORDER BY id", (device_id,))
        return [dict(r) for r in rows.fetchall()]

    # --- writes (each one transaction) ---------------------------------------------------

    def register(self, rec, retire=()):
        """Insert or update an active device record; revoke the identities in `retire` in the same transaction."""
        now = self.clock()
        with self.transaction():
            old = self.db.execute("SELECT status, created FROM devices WHERE device_id=?", (rec["device_id"],)).fetchone()
            if old is not None and old["status"] != "active":
                raise StateError("device %s is %s in the registry; it cannot be registered again"
                                 % (rec["device_id"], old["status"]))
            row = dict((k, rec.get(k)) for k in FIELDS)
            row["measures"] = json.dumps(rec.get("measures") or [], sort_keys=True)
            row.update(status="active", reason=None, updated=now, created=old["created"] if old else now)
            self.db.execute("INSERT OR REPLACE INTO devices (%s) VALUES (%s)" % (
                ", ".join(FIELDS), ", ".join("?" * len(FIELDS))), [row[k] for k in FIELDS])
            self._event(rec["device_id"], "updated" if old else "registered", rec.get("target"), now)
            for dev in retire:
                self._set_status(dev, "revoked", "superseded by %s (re-keyed)" % rec["device_id"], now)

    def set_status(self, device_id, status, reason=None):
        """Move a device to status; returns (record, changed). Enforces that revocation is permanent."""
        if status not in STATUSES:
            raise UsageError("status: %r is not one of %s" % (status, ", ".join(STATUSES)))
        with self.transaction():
            changed = self._set_status(device_id, status, reason, self.clock())
        return self.get(device_id), changed

    def _set_status(self, device_id, status, reason, now):
        row = self.db.execute("SELECT status FROM devices WHERE device_id=?", (device_id,)).fetchone()
        if row is None:
            raise UsageError("device %s: not in the registry %s (see 'civicmote registry list')" % (device_id, self.path))
        current = row["status"]
        if current == status:
            return False
        if current == "revoked":
            raise StateError("device %s is revoked, which is permanent; provision the board again with --rekey "
                             "to give it a new identity" % device_id)
        self.db.execute("UPDATE devices SET status=?, reason=?, updated=? WHERE device_id=?",
                        (status, reason, now, device_id))
        self._event(device_id, {"active": "enabled", "disabled": "disabled", "revoked": "revoked"}[status], reason, now)
        return True

    def _event(self, device_id, action, detail, now):
        self.db.execute("INSERT INTO events (device_id, at, action, detail) VALUES (?, ?, ?, ?)",
                        (device_id, now, action, detail))

    # --- export (contract) -----------------------------------------------------------------

    def export(self):
        """The registry export for verifiers: {"version": 1, "devices": [...]}, never a private key."""
        devices = []
        for r in self.list():
            devices.append({k: r[k] for k in ("device_id", "public_key", "status", "district", "board", "location",
                                              "certificate", "cert_fingerprint", "reason", "created", "updated")})
        return {"version": 1, "devices": devices}


class _Transaction:
    def __init__(self, db):
        self.db = db

    def __enter__(self):
        self.db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.db.execute("COMMIT")
        else:
            self.db.execute("ROLLBACK")
        return False


def _owner_only(path):
    """Create the registry file owner-only, or tighten one of ours that others could read."""
    if not os.path.exists(path):
        from provisioning.files import own_file

        own_file(path, MODE)
        return
    st = os.stat(path)
    if st.st_mode & 0o077 and st.st_uid == os.geteuid():
        os.chmod(path, MODE)


def _record(row):
    rec = dict(row)
    try:
        rec["measures"] = json.loads(rec.get("measures") or "[]")
    except ValueError:
        rec["measures"] = []
    return rec
