"""Read-only queries on the collector's store and the registry, for the web page (CPython only).

The store's schema is the collector's (provisioning/city/store.py); this module only reads it,
through connections opened with `PRAGMA query_only`, so the page can never change what the city
recorded. One CityData per request thread: SQLite connections are cheap and not shared. The
store may also be a PostgreSQL URL (postgresql://..., as for `civicmote collect --store`): the
same queries then run through pg_read.py's read-only session.
"""
import json
import os
import sqlite3

from provisioning.city.store_pg import is_url, redact
from provisioning.errors import UsageError
from provisioning.web import pg_read

SUMMARY_COLUMNS = ("device_id", "seq", "t0", "t1", "metrics", "mh", "mh_ok", "health", "gap", "received_at")
REGISTRY_COLUMNS = ("device_id", "public_key", "status", "district", "board", "location", "contact", "measures",
                    "reason", "created", "updated")


def _connect(path, what, hint):
    if not os.path.isfile(path):
        raise UsageError("%s: no %s here; %s" % (path, what, hint))
    try:
        db = sqlite3.connect(path, check_same_thread=False, timeout=10)
        db.execute("PRAGMA query_only = ON")
        db.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except sqlite3.DatabaseError as e:
        raise UsageError("%s: not a readable %s (%s)" % (path, what, e))
    return db


def check_store(path):
    """Raise UsageError unless `path` is a collector store this module can read."""
    CityData(path, None).close()


class CityData:
    """CityData(store_path, registry_path or None): the store's and the registry's rows as dicts."""

    def __init__(self, store_path, registry_path=None):
        if is_url(store_path):
            self.db = pg_read.connect(store_path)
            tables = self.db.tables()
            store_path = redact(store_path)
        else:
            self.db = _connect(str(store_path), "collector store",
                               "run 'civicmote collect --store %s' first, or point --store at the city's store"
                               % store_path)
            tables = {r[0] for r in self.db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if not {"devices", "summaries", "manifests"} <= tables:
            self.db.close()
            raise UsageError("%s: not a collector store (no devices/summaries/manifests tables)" % store_path)
        self.has_status = "status" in tables
        self.has_held = "held" in tables
        self.reg = None
        if registry_path:
            self.reg = _connect(str(registry_path), "registry", "provision a device first or point --registry at "
                                                                 "the city's registry")

    def close(self):
        self.db.close()
        if self.reg is not None:
            self.reg.close()

    # -- registry --------------------------------------------------------------------------
    def registry_record(self, dev):
        if self.reg is None:
            return None
        row = self.reg.execute("SELECT %s FROM devices WHERE device_id=?" % ", ".join(REGISTRY_COLUMNS),
                               (dev,)).fetchone()
        return _registry_row(row) if row else None

    def registry_records(self):
        if self.reg is None:
            return []
        cur = self.reg.execute("SELECT %s FROM devices ORDER BY district, device_id" % ", ".join(REGISTRY_COLUMNS))
        return [_registry_row(r) for r in cur]

    # -- devices ---------------------------------------------------------------------------
    def device(self, dev):
        """The store's row of a device (counters, last_seq, mh as bytes, first/last seen), or None."""
        cur = self.db.execute("SELECT * FROM devices WHERE device_id=?", (dev,))
        row = cur.fetchone()
        return dict(zip([c[0] for c in cur.description], row)) if row else None

    def devices(self):
        cur = self.db.execute("SELECT * FROM devices ORDER BY district, device_id")
        names = [c[0] for c in cur.description]
        return [dict(zip(names, r)) for r in cur]

    def status(self, dev):
        """(online|offline, received_at) from the device's retained status, or None."""
        if not self.has_status:
            return None
        row = self.db.execute("SELECT status, received_at FROM status WHERE device_id=?", (dev,)).fetchone()
        return tuple(row) if row else None

    def district_devices(self, district):
        """Device ids filed under a district, by the registry and by the store."""
        ids = {r[0] for r in self.db.execute("SELECT device_id FROM devices WHERE district=?", (district,))}
        if self.reg is not None:
            ids |= {r[0] for r in self.reg.execute("SELECT device_id FROM devices WHERE district=?", (district,))}
        return sorted(ids)

    # -- manifests -------------------------------------------------------------------------
    def manifest(self, dev, mh=None):
        """(manifest dict, signed message bytes, mh bytes) of the manifest in force (or of `mh`), or None."""
        if mh is None:
            row = self.db.execute("SELECT mh FROM devices WHERE device_id=?", (dev,)).fetchone()
            if row is None or row[0] is None:
                return None
            mh = row[0]
        row = self.db.execute("SELECT manifest, message FROM manifests WHERE device_id=? AND mh=?",
                              (dev, bytes(mh))).fetchone()
        return None if row is None else (json.loads(row[0]), bytes(row[1]), bytes(mh))

    def manifests(self, dev):
        """{mh bytes: manifest dict} of every manifest the device has sent."""
        cur = self.db.execute("SELECT mh, manifest FROM manifests WHERE device_id=?", (dev,))
        return {bytes(mh): json.loads(m) for mh, m in cur}

    # -- summaries -------------------------------------------------------------------------
    def summaries(self, devices, t_from, t_to):
        """Accepted summaries of `devices` whose window ends in (t_from, t_to], by time then device."""
        if not devices:
            return []
        marks = ", ".join("?" * len(devices))
        cur = self.db.execute("SELECT %s FROM summaries WHERE device_id IN (%s) AND t1 > ? AND t1 <= ? "
                              "ORDER BY t1, device_id, seq" % (", ".join(SUMMARY_COLUMNS), marks),
                              list(devices) + [t_from, t_to])
        return [_summary_row(r) for r in cur]

    def latest_summary(self, dev):
        row = self.db.execute("SELECT %s FROM summaries WHERE device_id=? ORDER BY t1 DESC, seq DESC LIMIT 1"
                              % ", ".join(SUMMARY_COLUMNS), (dev,)).fetchone()
        return _summary_row(row) if row else None

    def latest_message(self, dev):
        """(seq, signed bytes) of the device's latest summary, or None."""
        row = self.db.execute("SELECT seq, message FROM summaries WHERE device_id=? ORDER BY t1 DESC, seq DESC "
                              "LIMIT 1", (dev,)).fetchone()
        return None if row is None else (row[0], bytes(row[1]))

    def messages(self, dev, t_from, t_to):
        """[(seq, signed bytes)] of a device's summaries whose window ends in (t_from, t_to]."""
        cur = self.db.execute("SELECT seq, message FROM summaries WHERE device_id=? AND t1 > ? AND t1 <= ? "
                              "ORDER BY seq", (dev, t_from, t_to))
        return [(seq, bytes(m)) for seq, m in cur]

    # -- gaps and rejections ---------------------------------------------------------------
    def gaps_by_cause(self, dev=None):
        """{device_id: {cause: summaries}} (or one device's {cause: summaries})."""
        q = "SELECT device_id, cause, CAST(sum(count) AS BIGINT) FROM gaps"  # PostgreSQL's sum is NUMERIC
        args = ()
        if dev is not None:
            q, args = q + " WHERE device_id=?", (dev,)
        out = {}
        for d, cause, n in self.db.execute(q + " GROUP BY device_id, cause", args):
            out.setdefault(d, {})[cause] = n
        return out.get(dev, {}) if dev is not None else out

    def held(self):
        """{device_id: messages held} of signers the registry did not know when they arrived."""
        if not self.has_held:
            return {}
        return dict(self.db.execute("SELECT device_id, count(*) FROM held GROUP BY device_id"))

    def rejected_by_reason(self):
        """[(reason, device_id or None, count, last received_at)] of the rejected messages the store
        keeps (the newest ones per device; devices.rejected counts them all), most frequent first."""
        cur = self.db.execute("SELECT reason, device_id, count(*), max(received_at) FROM rejected "
                              "GROUP BY reason, device_id ORDER BY count(*) DESC, reason")
        return [tuple(r) for r in cur]


def _registry_row(row):
    rec = dict(zip(REGISTRY_COLUMNS, row))
    try:
        rec["measures"] = json.loads(rec["measures"] or "[]")
    except ValueError:
        rec["measures"] = []
    return rec


def _summary_row(row):
    s = dict(zip(SUMMARY_COLUMNS, row))
    s["metrics"] = json.loads(s["metrics"])
    s["health"] = json.loads(s["health"]) if s["health"] else {}
    s["gap"] = json.loads(s["gap"]) if s["gap"] else None
    s["mh"] = bytes(s["mh"])
    return s


# -- SensorThings (web/sta) ----------------------------------------------------------------------
def summary(data, dev, seq):
    """One accepted summary as a _summary_row dict, or None."""
    row = data.db.execute("SELECT %s FROM summaries WHERE device_id=? AND seq=?" % ", ".join(SUMMARY_COLUMNS),
                          (dev, seq)).fetchone()
    return _summary_row(row) if row else None


def message(data, dev, seq):
    """The signed message (COSE_Sign1 bytes) of one accepted summary, or None."""
    row = data.db.execute("SELECT message FROM summaries WHERE device_id=? AND seq=?", (dev, seq)).fetchone()
    return None if row is None else bytes(row[0])


def window_ends(data, devices):
    """(first, last) window end (t1) of the devices' summaries, or (None, None)."""
    if not devices:
        return None, None
    marks = ", ".join("?" * len(devices))
    row = data.db.execute("SELECT min(t1), max(t1) FROM summaries WHERE device_id IN (%s)" % marks,
                          list(devices)).fetchone()
    return (row[0], row[1]) if row else (None, None)


def summaries_after(data, dev, seq, limit):
    """Up to `limit` summaries of a device with a seq above `seq` (None: from the first), by seq."""
    cur = data.db.execute("SELECT %s FROM summaries WHERE device_id=? AND seq > ? ORDER BY seq LIMIT ?"
                          % ", ".join(SUMMARY_COLUMNS), (dev, -1 if seq is None else seq, limit))
    return [_summary_row(r) for r in cur]


def count_after(data, dev, seq):
    """How many summaries of a device have a seq above `seq` (None: all)."""
    return data.db.execute("SELECT count(*) FROM summaries WHERE device_id=? AND seq > ?",
                           (dev, -1 if seq is None else seq)).fetchone()[0]
