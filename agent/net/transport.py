"""What both MQTT transports share: their errors and the reconnect backoff."""
from agent.compat import urandom
from agent.errors import AgentError


class TransportError(AgentError):
    """The connection to the broker failed, timed out or was refused; the message says which."""


def default_rng():
    """A float in [0, 1) from the platform CSPRNG (jitter needs no more)."""
    b = urandom(2)
    return (b[0] << 8 | b[1]) / 65536


class Backoff:
    """Exponential backoff with jitter, pure: the caller passes `now`, rng gives [0, 1).

    After the n-th consecutive failure the next attempt waits a random delay in
    [d/2, d) where d = min(cap, base * 2**(n-1)) seconds ("equal jitter": never hammers the
    broker, yet a fleet that lost it together does not come back in lockstep).
    """

    def __init__(self, base=1.0, cap=120.0, rng=None):
        self.base = base
        self.cap = cap
        self.rng = rng or default_rng
        self.failures = 0
        self.next_at = None  # None: try now

    def ready(self, now):
        return self.next_at is None or now >= self.next_at

    def failed(self, now):
        """Record a failure at now; return the delay in seconds before the next attempt."""
        self.failures += 1
        d = self.base
        for _ in range(self.failures - 1):
            d *= 2
            if d >= self.cap:
                d = self.cap
                break
        delay = d / 2 + self.rng() * d / 2
        self.next_at = now + delay
        return delay

    def succeeded(self):
        self.failures = 0
        self.next_at = None
