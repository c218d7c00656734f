"""Exact discrete Laplace noise (Canonne, Kamath, Steinke 2020, "The Discrete Gaussian for
Differential Privacy", Algorithms 1 and 2), in integer arithmetic only.

Floating-point Laplace noise leaks the secret through the gaps in the doubles it can produce
(Mironov 2012), so nothing here touches a float: probabilities are rationals num/den and every
coin is a uniform integer drawn by rejection from random bits. Randomness comes only from the
injected `rng(n) -> n bytes` (production: agent.compat.urandom).
"""


def bit_length(n):
    """Bits needed to write n >= 0 (MicroPython has no int.bit_length)."""
    k = 0
    while n >= 0x10000:
        n >>= 16
        k += 16
    while n:
        n >>= 1
        k += 1
    return k


class RandomBits:
    """Uniform random integers from an rng(n) -> bytes, with no modulo bias.

    Bytes are fetched in blocks and spent bit by bit, so a noise sample costs a few bytes of
    entropy and rarely a call into the platform RNG.
    """

    def __init__(self, rng, block=32):
        self._rng = rng
        self._block = block
        self._pool = 0
        self._nbits = 0

    def take(self, k):
        """k fresh uniform bits as an int in [0, 2**k)."""
        while self._nbits < k:
            chunk = self._rng(self._block)
            if len(chunk) != self._block:
                raise ValueError("rng returned %d bytes, wanted %d" % (len(chunk), self._block))
            self._pool |= int.from_bytes(chunk, "big") << self._nbits
            self._nbits += 8 * self._block
        v = self._pool & ((1 << k) - 1)
        self._pool >>= k
        self._nbits -= k
        return v

    def below(self, n):
        """A uniform integer in [0, n), n >= 1: draw just enough bits, reject values >= n."""
        if n <= 1:
            if n == 1:
                return 0
            raise ValueError("below(n) needs n >= 1")
        k = bit_length(n - 1)
        while True:
            v = self.take(k)
            if v < n:
                return v


def bernoulli(bits, num, den):
    """True with probability num/den (0 <= num <= den)."""
    return bits.below(den) < num


def bernoulli_exp(bits, num, den):
    """True with probability exp(-num/den), num >= 0, den >= 1 (CKS20 Algorithm 1)."""
    while num > den:
        # exp(-g) = exp(-1) * exp(-(g - 1)): peel off whole units, each a fresh exp(-1) coin.
        if not _bernoulli_exp_unit(bits, 1, 1):
            return False
        num -= den
    return _bernoulli_exp_unit(bits, num, den)


def _bernoulli_exp_unit(bits, num, den):
    # For g = num/den in [0, 1]: count K while Bernoulli(g/K) succeeds; the parity of the
    # stopping K is odd with probability exactly exp(-g).
    k = 1
    while bits.below(den * k) < num:
        k += 1
    return k & 1 == 1


def discrete_laplace(bits, s, t):
    """One sample X with P(X = x) proportional to exp(-|x| * s / t): scale t/s (CKS20 Alg. 2).

    s, t are positive ints (scale = sensitivity / epsilon as a rational). Variance is
    2p / (1 - p)**2 with p = exp(-s/t).
    """
    if s < 1 or t < 1:
        raise ValueError("discrete_laplace needs positive integer s and t")
    while True:
        u = bits.below(t)
        if not bernoulli_exp(bits, u, t):
            continue
        v = 0
        while bernoulli_exp(bits, 1, 1):
            v += 1
        y = (u + t * v) // s  # geometric with success 1 - exp(-s/t)
        negative = bits.take(1) == 1
        if negative and y == 0:
            continue  # zero would otherwise be counted twice
        return -y if negative else y


def noise(rng, scale, count=1):
    """`count` independent discrete Laplace samples of rational `scale` (num, den) > 0."""
    bits = rng if isinstance(rng, RandomBits) else RandomBits(rng)
    t, s = scale
    return [discrete_laplace(bits, s, t) for _ in range(count)]
