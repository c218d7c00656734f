"""Per-sensor supervision: count faults by kind, degrade, back off, recover.

A Supervised sensor never lets a driver's exception out: read(now_ms) returns the
driver's readings dict, or None (not due, backing off, no new data, or a fault).
After a fault the driver is restarted (start(now_ms)) on the next attempt, since an
unplugged and replugged chip comes back in its reset state. Time is a parameter.
"""
from agent.sensors.fault import BUS, CHECKSUM, INTERNAL, TIMEOUT, SensorFault

OK = "ok"
DEGRADED = "degraded"
_TIMEOUT_ERRNOS = (110, 116)  # ETIMEDOUT on Linux/MicroPython, and on lwIP builds


def fault_kind(exc):
    """Map an exception from a driver or bus to a fault kind."""
    if isinstance(exc, SensorFault):
        return exc.kind
    if isinstance(exc, OSError):
        code = exc.args[0] if exc.args else None
        return TIMEOUT if code in _TIMEOUT_ERRNOS else BUS
    return INTERNAL


class Supervised:
    def __init__(self, name, driver, period_ms=1000, backoff_ms=1000, max_backoff_ms=300000, before_read=None):
        self.name = name
        self.driver = driver
        self.period_ms = period_ms
        self.backoff_ms = backoff_ms
        self.max_backoff_ms = max_backoff_ms
        self.before_read = before_read
        self.state = OK
        self.faults = {}
        self.recoveries = 0
        self.consecutive = 0
        self.last_error = None
        self._started = False
        self._next_ms = None

    def due(self, now_ms):
        return self._next_ms is None or now_ms >= self._next_ms

    def _count(self, kind, n=1):
        self.faults[kind] = self.faults.get(kind, 0) + n

    def read(self, now_ms):
        """The driver's readings, or None. Never raises for a sensor's fault."""
        if not self.due(now_ms):
            return None
        if self.before_read is not None:
            self.before_read(now_ms)
        try:
            if not self._started:
                self.driver.start(now_ms)
                self._started = True
            r = self.driver.read(now_ms)
        except Exception as e:  # noqa: BLE001 - containment is the point: no fault stops the agent
            self._fault(fault_kind(e), e, now_ms)
            return None
        finally:
            take = getattr(self.driver, "take_soft_faults", None)
            if take is not None:
                for k, n in take().items():
                    self._count(k, n)
        self._next_ms = now_ms + self.period_ms
        if r is not None and self.state != OK:
            self.state = OK
            self.recoveries += 1
            self.consecutive = 0
        return r

    def _fault(self, kind, exc, now_ms):
        # A parser-based driver already counted each corrupt frame as a soft fault.
        if not (kind == CHECKSUM and getattr(self.driver, "take_soft_faults", None)):
            self._count(kind)
        self.state = DEGRADED
        self.consecutive += 1
        self.last_error = "%s: %s" % (kind, exc)
        self._started = False
        delay = self.backoff_ms
        for _ in range(self.consecutive - 1):
            delay *= 2
            if delay >= self.max_backoff_ms:
                delay = self.max_backoff_ms
                break
        self._next_ms = now_ms + delay

    def status(self):
        return {
            "state": self.state,
            "faults": dict(self.faults),
            "recoveries": self.recoveries,
            "last_error": self.last_error,
        }
