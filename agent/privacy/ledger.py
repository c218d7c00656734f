"""The privacy ledger: epsilon spent today, per key, on flash, surviving reboots and clock steps.

This is the I/O edge of the privacy engine. Rules (docs/privacy.md, "The ledger"):
- A charge is written durably *before* the noise is drawn, so a crash can lose a release but
  never an expense. A write that fails grants nothing and closes the day.
- The record is authenticated with HMAC-SHA-256 under a key derived from the device's private
  key (`ledger_key`), so a file edited or written by anyone without that key is refused.
- A ledger that is missing, unreadable (either slot damaged, even by a power cut mid-write), forged, or older than the last generation the device
  recorded elsewhere (`min_gen`: a restored old copy) fails closed: it is rewritten as closed
  until the next UTC day by every clock the device trusts: the wall clock at open, the latest
  time the device attested before (`trusted_s`), and monotonic time (the rest of that day
  must also pass on the monotonic clock while this boot runs). Only `create` (provisioning)
  starts an empty one.
- Days are UTC days of the `now` passed in; the ledger's day only moves forward.
- Monotonic bound (`bound`): while the agent runs, it may charge at most one window per
  `window_s` of monotonic time and at most `cap` per started 24 h of monotonic time, so a
  wall clock that jumps forward day after day mints no budget.

File format: a two-slot file (agent/store/slots.py, rewritten in place, so a full disk cannot
fail it), each slot holding three text lines: "civicmote-ledger 2", a JSON object
{"day": D, "gen": G, "closed": bool, "spent": {key: "num/den"}}, and the hex HMAC of that line.
"""
import hashlib
import json

from agent.compat import file_exists
from agent.core import rational
from agent.errors import ConfigError
from agent.store.slots import SlotFile

MAGIC = "civicmote-ledger 2"
DAY = 86400
SLOT = 2048  # bytes per slot: the JSON of a few dozen keys
_KEY_DOMAIN = b"civicmote-ledger-key-v1\x00"


def utc_day(now):
    """UTC day number of Unix time `now` (seconds)."""
    return int(now) // DAY


def ledger_key(secret):
    """The ledger's HMAC key from device-held secret bytes (the private scalar): never stored."""
    return hashlib.sha256(_KEY_DOMAIN + bytes(secret)).digest()


def hmac_sha256(key, msg):
    """HMAC-SHA-256 (RFC 2104) with hashlib alone: MicroPython has no hmac module."""
    if len(key) > 64:
        key = hashlib.sha256(key).digest()
    key = key + bytes(64 - len(key))
    inner = hashlib.sha256(bytes(b ^ 0x36 for b in key))
    inner.update(msg)
    outer = hashlib.sha256(bytes(b ^ 0x5C for b in key))
    outer.update(inner.digest())
    return outer.digest()


class PrivacyLedger:
    """Per-key epsilon spent in the current UTC day. Open with create() or open()."""

    def __init__(self, path, day, spent, closed, gen, key=b""):
        self.path = path
        self.day = day
        self.spent_today = spent  # key -> rational
        self.closed = closed  # True: the day `day` counts as fully spent (failed closed)
        self.gen = gen
        self.key = key
        self.reason = None  # why it failed closed at open: "missing", "invalid", "rolled back"
        self._file = SlotFile(path, SLOT)
        self._mono = None  # [window_s, mono start, charges, {key: spent since start}, reopen_mono]
        self._reopen_mono = None  # monotonic seconds before which a failed-closed day stays closed
        self._mono_now = None

    @classmethod
    def create(cls, path, now, key=b""):
        """Start the ledger of a new device (provisioning). An existing file is kept as is,
        valid or not: re-running provisioning must never be a way to reset the budget."""
        if _exists(path) or _exists(path + ".tmp"):
            return cls.open(path, now, key)
        led = cls(path, utc_day(now), {}, False, 0, key)
        led._write()
        return led

    @classmethod
    def open(cls, path, now, key=b"", trusted_s=None, min_gen=None, mono_s=None):
        """Load the ledger after a (re)boot; `now` must be a valid clock (the caller waits for one).

        Missing, forged, or older than min_gen: closed until the next day (see the module docstring).
        trusted_s: the latest Unix time the device attested before (its last window end).
        """
        led = cls(path, utc_day(now), {}, True, 0, key)
        rec = led._read()
        reason = None
        if rec is None:
            reason = "missing" if not _exists(path) else "invalid"
        elif min_gen is not None and rec["gen"] < min_gen:
            reason = "rolled back"
        if reason is None:
            led.day, led.gen, led.closed = rec["day"], rec["gen"], rec["closed"]
            for k in rec["spent"]:
                led.spent_today[k] = rational.parse(rec["spent"][k])
            return led
        led.reason = reason
        if rec is not None:
            led.gen = max(rec["gen"], min_gen or 0)  # the next write is above every copy seen
        days = [utc_day(now)]
        if trusted_s is not None:
            days.append(utc_day(trusted_s))
        if rec is not None:
            days.append(rec["day"])
        led.day = max(days)
        if mono_s is not None:  # the rest of that day must also pass in monotonic time
            led._reopen_mono = mono_s + max(0, (led.day + 1) * DAY - int(now))
        if reason == "invalid":
            _keep_evidence(path)
        try:
            led._write()  # so the next boot also sees the day as closed
        except OSError:
            pass
        return led

    def bound(self, window_s, mono_s):
        """Bound charges by monotonic time from now on (see the module docstring)."""
        self._mono = [window_s, mono_s, 0, {}]

    def tick(self, mono_s):
        """The monotonic time (s) that charge() uses when not given one."""
        self._mono_now = mono_s

    def spent(self, key, now):
        """Epsilon `key` has spent in the UTC day of `now`, or None if that day failed closed."""
        day = utc_day(now)
        if day > self.day:
            return (0, 1)
        if self.closed or day < self.day:
            return None
        return self.spent_today.get(key, (0, 1))

    def charge(self, requests, now, mono_s=None):
        """Charge a window's requests [(key, epsilon, daily_cap), ...] in one durable write.

        Returns {key: reason} for the refused ones ("budget": the cap would be exceeded, by
        the day or by monotonic time; "ledger": the ledger failed closed, the clock went back,
        or the write failed). Nothing is granted unless it is on flash first.
        mono_s: monotonic seconds, for the bound set by bound().
        """
        day = utc_day(now)
        if mono_s is None:
            mono_s = self._mono_now
        if day < self.day:
            return _refuse_all(requests, "ledger")
        if self._reopen_mono is not None and mono_s is not None and mono_s < self._reopen_mono:
            return _refuse_all(requests, "ledger")
        mono = self._mono
        if mono is not None and mono_s is not None and mono[2] >= 1 + (mono_s - mono[1]) // mono[0]:
            return _refuse_all(requests, "budget")  # more windows than monotonic time has room for
        if day > self.day:
            self.day = day
            self.spent_today = {}
            self.closed = False
        if self.closed:
            return _refuse_all(requests, "ledger")
        refused = {}
        new = {}
        since = {}
        for key, eps, cap in requests:
            cur = new.get(key, self.spent_today.get(key, (0, 1)))
            after = rational.add(cur, eps)
            if rational.cmp(after, cap) > 0:
                refused[key] = "budget"
                continue
            if mono is not None and mono_s is not None:
                run = rational.add(since.get(key, mono[3].get(key, (0, 1))), eps)
                days = 1 + (mono_s - mono[1]) // DAY
                if rational.cmp(run, rational.mul(cap, (days, 1))) > 0:
                    refused[key] = "budget"
                    continue
                since[key] = run
            new[key] = after
        if new:
            before = self.spent_today
            merged = {}
            for k in before:
                merged[k] = before[k]
            for k in new:
                merged[k] = new[k]
            self.spent_today = merged
            try:
                self._write()
            except OSError:
                # Not on flash, so not granted; and we cannot tell what is, so stop for today.
                self.spent_today = before
                self.closed = True
                return _refuse_all(requests, "ledger")
            if mono is not None and mono_s is not None:
                mono[2] += 1
                for k in since:
                    mono[3][k] = since[k]
        return refused

    def _write(self):
        spent = {}
        for k in self.spent_today:
            spent[k] = rational.text(self.spent_today[k])
        body = json.dumps({"day": self.day, "gen": self.gen + 1, "closed": self.closed, "spent": spent})
        mac = _hex(hmac_sha256(self.key, body.encode()))
        self._file.write((MAGIC + "\n" + body + "\n" + mac + "\n").encode())
        self.gen += 1

    def _read(self):
        # The parsed record, or None for anything missing, torn, forged or not exactly as written.
        try:
            raw = self._file.read()
        except OSError:
            return None
        if raw is None or self._file.torn:
            # One slot damaged: a write cut short, or a record changed after it was granted.
            # The two cannot be told apart, and only the second could mint budget: fail closed.
            return None
        try:
            lines = raw.decode().split("\n")
            if len(lines) != 4 or lines[0] != MAGIC or lines[3] != "":
                return None
            if _hex(hmac_sha256(self.key, lines[1].encode())) != lines[2]:
                return None
            rec = json.loads(lines[1])
            day, gen, closed, spent = rec["day"], rec["gen"], rec["closed"], rec["spent"]
            if not (_is_int(day) and _is_int(gen) and isinstance(closed, bool) and isinstance(spent, dict)):
                return None
            for k in spent:
                if rational.parse(spent[k])[0] < 0:
                    return None
            return rec
        except (ValueError, KeyError, TypeError, UnicodeError, AttributeError):
            return None


class LedgerOpener:
    """opener(valid_now_s, mono_s) -> the device's PrivacyLedger, opened once the wall clock is
    valid, bounded by what its progress file trusts. An object rather than a closure, so the
    start-up code that made it can be dropped from a board's heap (agent.runtime.board_main)."""

    def __init__(self, path, key, progress, window_s):
        self.path, self.key, self.progress, self.window_s = path, key, progress, window_s

    def __call__(self, valid_now_s, mono_s):
        p = self.progress
        led = PrivacyLedger.open(self.path, valid_now_s, self.key, trusted_s=p.last_t1 if p.found else None,
                                 min_gen=p.ledger_gen if p.found else None, mono_s=mono_s)
        led.bound(self.window_s, mono_s)
        return led


def _refuse_all(requests, reason):
    out = {}
    for r in requests:
        out[r[0]] = reason
    return out


def _is_int(x):
    return isinstance(x, int) and not isinstance(x, bool) and x >= 0


_exists = file_exists


def _keep_evidence(path):
    # An invalid ledger is copied aside, not destroyed: it may be evidence of tampering.
    try:
        with open(path, "rb") as f:
            data = f.read(2 * SLOT + 1)
        with open(path + ".bad", "wb") as f:
            f.write(data)
    except OSError:
        pass


def _hex(b):
    import binascii

    return binascii.hexlify(b).decode()


def require_ledger(path):
    """Raise ConfigError when no ledger file exists (for a CLI check before running)."""
    if not _exists(path):
        raise ConfigError("privacy ledger %s is missing: run `civicmote device init` to create it; "
                          "until then personal metrics are withheld" % path)

