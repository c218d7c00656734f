"""Exact discrete Laplace sampler: unbiased integers, exact coins, moments against theory.

Runs on CPython and MicroPython; the moment checks use the real os.urandom, as production does.
"""
import math
import os

from support import load_vectors, raises, seeded_rng, unhex

from agent.privacy.sampler import RandomBits, bernoulli_exp, bit_length, discrete_laplace, noise


def byte_feed(data):
    """An rng that hands out exactly the given bytes, then fails."""
    st = {"i": 0}

    def rng(n):
        i = st["i"]
        if i + n > len(data):
            raise AssertionError("sampler asked for more bytes than the vector has")
        st["i"] = i + n
        return data[i:i + n]

    return rng


def test_bit_length():
    for n, k in ((0, 0), (1, 1), (2, 2), (255, 8), (256, 9), (1 << 40, 41), ((1 << 70) - 1, 70)):
        assert bit_length(n) == k


def test_below_hand_vectors():
    for v in load_vectors("privacy_sampler.json")["below"]:
        bits = RandomBits(byte_feed(unhex(v["bytes"])), block=1)
        assert bits.below(v["n"]) == v["out"], v


def test_below_rejects_empty_range_and_short_rng():
    raises(ValueError, RandomBits(os.urandom).below, 0)
    raises(ValueError, RandomBits(lambda n: b"\x00").take, 3)


def test_below_is_uniform_over_all_byte_values():
    # Feeding every byte value once as a 1-byte draw: a rejection sampler maps the accepted
    # values one-to-one, so each outcome of below(6) (k = 3 bits) appears equally often.
    counts = [0] * 6
    for b in range(256):
        bits = RandomBits(byte_feed(bytes([b]) + b"\x00" * 8), block=1)
        # low 3 bits of b decide the first try; values 6 and 7 are rejected.
        if (b & 7) < 6:
            counts[bits.below(6)] += 1
    assert counts == [32] * 6


def test_seeded_samples_match_vectors():
    # Same bytes in, same noise out, on every runtime.
    for case in load_vectors("privacy_sampler.json")["seeded"]:
        bits = RandomBits(seeded_rng(case["seed"].encode()))
        got = [discrete_laplace(bits, case["s"], case["t"]) for _ in range(len(case["samples"]))]
        assert got == case["samples"], case["seed"]


def test_bernoulli_exp_frequency():
    # P(true) = exp(-g) for g = 1/3, 1 and 5/2; 20000 draws each, within 6 standard deviations.
    bits = RandomBits(os.urandom)
    n = 20000
    for num, den in ((1, 3), (1, 1), (5, 2)):
        p = math.exp(-num / den)
        hits = 0
        for _ in range(n):
            if bernoulli_exp(bits, num, den):
                hits += 1
        sd = math.sqrt(n * p * (1 - p))
        assert abs(hits - n * p) < 6 * sd, (num, den, hits, n * p)


def _moments(scale):
    # Exact mean 0, variance 2p/(1-p)^2 and fourth moment of the discrete Laplace, p = exp(-1/scale).
    p = math.exp(-1.0 / scale)
    c = (1 - p) / (1 + p)
    var = 2 * p / (1 - p) ** 2
    m4 = 0.0
    x = 1
    while x < 80 * scale + 40:
        m4 += 2 * c * p ** x * x ** 4
        x += 1
    return var, m4


def test_noise_mean_and_variance_against_theory():
    # 6000 samples per scale; each estimate within 7 standard errors (a correct sampler fails
    # far less than once in a million runs even allowing for the skew of X^2).
    n = 6000
    bits = RandomBits(os.urandom)
    for num, den in ((1, 1), (10, 3), (25, 1)):
        scale = num / den
        var, m4 = _moments(scale)
        xs = noise(bits, (num, den), n)
        mean = sum(xs) / n
        sq = sum(x * x for x in xs) / n
        assert abs(mean) < 7 * math.sqrt(var / n), (num, den, mean)
        assert abs(sq - var) < 7 * math.sqrt((m4 - var * var) / n), (num, den, sq, var)


def test_samples_are_ints():
    xs = noise(os.urandom, (7, 2), 200)
    for x in xs:
        assert isinstance(x, int)
    assert len(set(xs)) > 3


def test_invalid_scale_rejected():
    bits = RandomBits(os.urandom)
    raises(ValueError, discrete_laplace, bits, 0, 1)
    raises(ValueError, discrete_laplace, bits, 1, 0)
