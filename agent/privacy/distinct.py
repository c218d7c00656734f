"""Distinct devices seen in a window (Wi-Fi/BLE addresses), in fixed memory, never stored.

Each identifier is hashed with SHA-256 under a 16-byte salt drawn from rng when the window
opens, and sets one bit of an m-bit bitmap (linear counting, Whang et al. 1990). Nothing else
is kept: not the address, not its hash. The salt lives in RAM for this window only; at close
`wipe()` overwrites the salt and the bitmap with zeros, so tomorrow's (or the next window's)
hashes cannot be linked to today's.

Privacy: adding or removing one device changes the number of set bits by at most one (all of
its sightings land on the same bit), so the noised statistic - the number of set bits - has
sensitivity 1. The device count estimate is computed from the *noisy* bit count, which is
post-processing and costs no privacy.

Error: with n devices and m bits, load r = n/m, the estimate's standard error from hashing is
about sqrt(m * (exp(r) - r - 1)) (under 2 % of n for r <= 1 and m = 4096); the noise of scale b
on the bit count becomes about b * exp(r) devices. Past n ~ m * ln(m) the bitmap saturates and
the release says so.
"""
import hashlib

SALT_BYTES = 16
_FIX = 32  # fixed-point bits for (1 - 1/m)^n


class DistinctCounter:
    """Bounded-memory distinct counter over one window: add(identifier bytes), then release."""

    def __init__(self, bits, rng):
        if bits < 8 or bits & (bits - 1):
            raise ValueError("bits must be a power of two >= 8")
        self.bits = bits
        self._salt = bytearray(rng(SALT_BYTES))
        self._map = bytearray(bits // 8)

    def add(self, identifier):
        """Count identifier (bytes, e.g. a 6-byte MAC) as seen in this window."""
        h = hashlib.sha256(self._salt)
        h.update(identifier)
        d = h.digest()
        i = ((d[0] << 24) | (d[1] << 16) | (d[2] << 8) | d[3]) & (self.bits - 1)
        self._map[i >> 3] |= 1 << (i & 7)

    def occupied(self):
        """Number of set bits."""
        n = 0
        for b in self._map:
            n += _POP[b & 15] + _POP[b >> 4]
        return n

    def wipe(self):
        """Overwrite salt and bitmap in place (the same buffers, not new ones)."""
        for i in range(len(self._salt)):
            self._salt[i] = 0
        for i in range(len(self._map)):
            self._map[i] = 0


_POP = (0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4)


def _pow_fixed(q, n):
    # q ** n in fixed point with _FIX fractional bits, rounding down at each step.
    one = 1 << _FIX
    r = one
    while n:
        if n & 1:
            r = (r * q) >> _FIX
        q = (q * q) >> _FIX
        n >>= 1
    return r


def expected_occupied_fixed(n, m):
    """m * (1 - (1 - 1/m)^n) in fixed point: the expected set bits after n distinct items."""
    q = ((m - 1) << _FIX) // m
    return m * ((1 << _FIX) - _pow_fixed(q, n))


def estimate(occupied, m):
    """Integer estimate of the number of distinct items that set `occupied` of m bits.

    Returns (estimate, saturated). Exact integer arithmetic, so every runtime gives the same
    answer: the n whose expected occupancy is nearest to `occupied`, searched by bisection.
    """
    if occupied <= 0:
        return 0, False
    saturated = occupied >= m - 1
    if saturated:
        occupied = m - 1
    target = occupied << _FIX
    lo, hi = 0, m
    while expected_occupied_fixed(hi, m) < target:
        hi *= 2
    # invariant: expected(lo) < target <= expected(hi)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if expected_occupied_fixed(mid, m) < target:
            lo = mid
        else:
            hi = mid
    if target - expected_occupied_fixed(lo, m) < expected_occupied_fixed(hi, m) - target:
        return lo, saturated
    return hi, saturated
