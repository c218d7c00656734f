"""The privacy ledger: epsilon spent today, per metric, on flash, surviving reboots.

This is the I/O edge of the privacy engine. Rules (docs/privacy.md, "The ledger"):
- A charge is written durably (temporary file, then rename) *before* the noise is drawn, so
  a crash can lose a release but never an expense.
- The file carries a SHA-256 of its body. A ledger that is missing, unreadable or corrupt
  fails closed: the current UTC day counts as fully spent for every metric. Only
  `PrivacyLedger.create` (run once, when the device is provisioned) starts an empty one.
- Days are UTC days of the `now` passed in. The ledger's day only moves forward: a clock set
  back to an earlier day gets no budget (withheld) until the clock is past the ledger's day.

File format (text, three lines): "civicmote-ledger 1", a JSON object
{"day": D, "gen": G, "closed": bool, "spent": {metric: "num/den"}}, and the hex SHA-256 of
that JSON line. Epsilon is stored as exact rationals.
"""
import hashlib
import json
import os

from agent.compat import file_exists, write_file_atomic
from agent.core import rational
from agent.errors import ConfigError

MAGIC = "civicmote-ledger 1"
DAY = 86400
_MAX_BYTES = 65536


def utc_day(now):
    """UTC day number of Unix time `now` (seconds)."""
    return int(now) // DAY


class PrivacyLedger:
    """Per-metric epsilon spent in the current UTC day. Open with create() or open()."""

    def __init__(self, path, day, spent, closed, gen):
        self.path = path
        self.day = day
        self.spent_today = spent  # metric -> rational
        self.closed = closed  # True: the day `day` counts as fully spent (failed closed)
        self.gen = gen

    @classmethod
    def create(cls, path, now):
        """Start the ledger of a new device (provisioning). An existing file is kept as is,
        valid or not: re-running provisioning must never be a way to reset the budget."""
        if _exists(path) or _exists(path + ".tmp"):
            return cls.open(path, now)
        led = cls(path, utc_day(now), {}, False, 0)
        led._write()
        return led

    @classmethod
    def open(cls, path, now):
        """Load the ledger after a (re)boot. Missing or corrupt: fail closed for today."""
        best = _read(path)
        tmp = _read(path + ".tmp")
        if tmp is not None and (best is None or tmp["gen"] > best["gen"]):
            # Power failed between writing the temp file and renaming it: finish the rename
            # now, before a later write could overwrite the only copy of the latest spend.
            _replace(path + ".tmp", path)
            best = tmp
        if best is None:
            led = cls(path, utc_day(now), {}, True, 0)
            _keep_evidence(path)
            try:
                led._write()  # so the next boot also sees today as closed
            except OSError:
                pass
            return led
        spent = {}
        for metric in best["spent"]:
            spent[metric] = rational.parse(best["spent"][metric])
        return cls(path, best["day"], spent, best["closed"], best["gen"])

    def spent(self, metric, now):
        """Epsilon `metric` has spent in the UTC day of `now`, or None if that day failed closed."""
        day = utc_day(now)
        if day > self.day:
            return (0, 1)
        if self.closed or day < self.day:
            return None
        return self.spent_today.get(metric, (0, 1))

    def charge(self, requests, now):
        """Charge a window's requests [(metric, epsilon, daily_cap), ...] in one durable write.

        Returns {metric: reason} for the refused ones ("budget": the cap would be exceeded;
        "ledger": the ledger failed closed, the clock went back, or the write failed).
        Nothing is granted unless it is on flash first.
        """
        day = utc_day(now)
        if day < self.day:
            return _refuse_all(requests, "ledger")
        if day > self.day:
            self.day = day
            self.spent_today = {}
            self.closed = False
        if self.closed:
            return _refuse_all(requests, "ledger")
        refused = {}
        new = {}
        for metric, eps, cap in requests:
            cur = new.get(metric, self.spent_today.get(metric, (0, 1)))
            after = rational.add(cur, eps)
            if rational.cmp(after, cap) > 0:
                refused[metric] = "budget"
            else:
                new[metric] = after
        if new:
            before = self.spent_today
            merged = {}
            for m in before:
                merged[m] = before[m]
            for m in new:
                merged[m] = new[m]
            self.spent_today = merged
            try:
                self._write()
            except OSError:
                # Not on flash, so not granted; and we cannot tell what is, so stop for today.
                self.spent_today = before
                self.closed = True
                return _refuse_all(requests, "ledger")
        return refused

    def _write(self):
        self.gen += 1
        spent = {}
        for m in self.spent_today:
            spent[m] = rational.text(self.spent_today[m])
        body = json.dumps({"day": self.day, "gen": self.gen, "closed": self.closed, "spent": spent})
        digest = _hex(hashlib.sha256(body.encode()).digest())
        # tmp + fsync + rename: a cut leaves the old file or a complete .tmp, which open() takes.
        write_file_atomic(self.path, (MAGIC + "\n" + body + "\n" + digest + "\n").encode())


def _replace(src, dst):
    # Finish a rename that a power cut interrupted (see open()).
    try:
        os.rename(src, dst)
    except OSError:
        if _exists(dst):
            os.remove(dst)  # FAT: rename does not replace; src is complete and stays valid
        os.rename(src, dst)


def _refuse_all(requests, reason):
    out = {}
    for r in requests:
        out[r[0]] = reason
    return out


def _read(path):
    # The parsed record, or None for anything missing, truncated or not exactly as written.
    try:
        with open(path, "rb") as f:
            raw = f.read(_MAX_BYTES + 1)
    except OSError:
        return None
    try:
        lines = raw.decode().split("\n")
        if len(lines) != 4 or lines[0] != MAGIC or lines[3] != "":
            return None
        if _hex(hashlib.sha256(lines[1].encode()).digest()) != lines[2]:
            return None
        rec = json.loads(lines[1])
        day, gen, closed, spent = rec["day"], rec["gen"], rec["closed"], rec["spent"]
        if not (_is_int(day) and _is_int(gen) and isinstance(closed, bool) and isinstance(spent, dict)):
            return None
        for m in spent:
            if rational.parse(spent[m])[0] < 0:
                return None
        return rec
    except (ValueError, KeyError, TypeError, UnicodeError, AttributeError):
        return None


def _is_int(x):
    return isinstance(x, int) and not isinstance(x, bool) and x >= 0


_exists = file_exists


def _keep_evidence(path):
    # A corrupt ledger is renamed aside, not destroyed: it may be evidence of tampering.
    if _exists(path):
        try:
            os.rename(path, path + ".bad")
        except OSError:
            pass


def _hex(b):
    import binascii

    return binascii.hexlify(b).decode()


def require_ledger(path):
    """Raise ConfigError when no ledger file exists (for a CLI check before running)."""
    if not _exists(path) and not _exists(path + ".tmp"):
        raise ConfigError("privacy ledger %s is missing: run `civicmote device init` to create it; "
                          "until then personal metrics are withheld" % path)
