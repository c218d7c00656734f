"""Host-only statistical tests of the privacy engine (CPython; needs opendp, see the report pins).

1. Distribution: our exact discrete Laplace against OpenDP's (two-sample chi-squared) and
   against the exact pmf (goodness of fit), 100,000 samples per scale, three scales.
2. Audit in the style of StatDP (Ding et al. 2018): neighbouring inputs, a search for the
   worst output event on one sample, then on a fresh sample binomial thinning by exp(-eps)
   and a one-sided Fisher exact test. The claimed epsilon passes; a mechanism that claims
   epsilon but adds half the noise it needs (true epsilon 2 eps) is flagged.

Error budget: every test that could reject a correct implementation uses a per-test level
such that the whole file rejects a correct sampler or mechanism with probability < 1e-6.
"""
import math
import os
import random

import pytest

from agent.privacy.contributions import Contributions
from agent.privacy.policy import parse_dp
from agent.privacy.release import release
from agent.privacy.sampler import RandomBits, noise

dp = pytest.importorskip("opendp.prelude")

N = 100_000
SCALES = ((1, 1), (10, 3), (25, 1))  # OpenDP switches algorithms at scale 10: both sides covered
# chi-squared tests that can fail a correct sampler: 2 per scale; audits: 2 (count, sum).
ALPHA = 1e-6 / (2 * len(SCALES) + 2)


# -- chi-squared tail, exact for even degrees of freedom ------------------------------------

def chi2_sf(x, df):
    """P(chi2_df > x) for even df: exp(-x/2) * sum_{j < df/2} (x/2)^j / j!  (exact)."""
    assert df % 2 == 0
    h = x / 2.0
    term = 1.0
    total = 1.0
    for j in range(1, df // 2):
        term *= h / j
        total += term
    return math.exp(-h) * total


def chi2_isf(p, df):
    """x with chi2_sf(x, df) = p, by bisection (chi2_sf is decreasing)."""
    lo, hi = 0.0, 10.0 * df + 200.0
    for _ in range(200):
        mid = (lo + hi) / 2
        if chi2_sf(mid, df) > p:
            lo = mid
        else:
            hi = mid
    return hi


def test_chi2_tail_is_right():
    # df = 2 is the exponential with mean 2; df = 4 against its closed form; other even df
    # against a Simpson integration of the chi-squared density; and the 1e-6 quantiles are
    # near the Wilson-Hilferty approximation (which runs ~2 % high this far in the tail).
    assert abs(chi2_sf(3.0, 2) - math.exp(-1.5)) < 1e-15
    assert abs(chi2_sf(5.0, 4) - math.exp(-2.5) * 3.5) < 1e-15
    for df, x in ((10, 46.0), (20, 60.0), (14, 30.0)):
        k = df / 2

        def density(u):
            return math.exp((k - 1) * math.log(u) - u / 2 - k * math.log(2) - math.lgamma(k))

        steps, width = 20000, 400.0
        h = width / steps
        integral = density(x) + density(x + width)
        for i in range(1, steps):
            integral += (4 if i % 2 else 2) * density(x + i * h)
        integral *= h / 3
        assert abs(integral / chi2_sf(x, df) - 1) < 1e-8, df
    z = 4.753424308822899  # standard normal upper 1e-6 quantile
    for df in (10, 20, 40):
        wh = df * (1 - 2 / (9 * df) + z * math.sqrt(2 / (9 * df))) ** 3
        assert abs(chi2_isf(1e-6, df) / wh - 1) < 0.03, df
        assert abs(chi2_sf(chi2_isf(1e-6, df), df) / 1e-6 - 1) < 1e-9


# -- binning --------------------------------------------------------------------------------

def pmf(x, scale):
    p = math.exp(-1.0 / scale)
    return (1 - p) / (1 + p) * p ** abs(x)


def bins_for(scale, n):
    """Central values with at least 100 expected per sample, plus the two pooled tails.

    Fixed by theory before looking at data. Returns (T, probabilities of the 2T+3 bins):
    x < -T, -T..T, x > T. Degrees of freedom 2T+2: always even.
    """
    t = 0
    while n * pmf(t + 1, scale) >= 100:
        t += 1
    central = [pmf(x, scale) for x in range(-t, t + 1)]
    tail = (1 - sum(central)) / 2
    return t, [tail] + central + [tail]


def histogram(xs, t):
    counts = [0] * (2 * t + 3)
    for x in xs:
        if x < -t:
            counts[0] += 1
        elif x > t:
            counts[-1] += 1
        else:
            counts[x + t + 1] += 1
    return counts


def two_sample_chi2(a, b):
    na, nb = sum(a), sum(b)
    ka, kb = math.sqrt(nb / na), math.sqrt(na / nb)
    return sum((ka * x - kb * y) ** 2 / (x + y) for x, y in zip(a, b) if x + y)


def one_sample_chi2(a, probs):
    n = sum(a)
    return sum((x - n * p) ** 2 / (n * p) for x, p in zip(a, probs))


def opendp_samples(scale, n):
    dp.enable_features("contrib")
    meas = dp.m.make_laplace(dp.vector_domain(dp.atom_domain(T=int)), dp.l1_distance(T=int), scale=scale)
    return meas([0] * n)


@pytest.fixture(scope="module")
def ours():
    bits = RandomBits(os.urandom)
    return {s: noise(bits, s, N) for s in SCALES}


@pytest.mark.parametrize("scale", SCALES, ids=lambda s: "scale=%d/%d" % s)
def test_matches_opendp_discrete_laplace(ours, scale):
    b = scale[0] / scale[1]
    t, probs = bins_for(b, N)
    df = len(probs) - 1
    a = histogram(ours[scale], t)
    o = histogram(opendp_samples(b, N), t)
    stat = two_sample_chi2(a, o)
    limit = chi2_isf(ALPHA, df)
    assert stat < limit, "ours vs OpenDP at scale %s: chi2 %.1f >= %.1f (df %d)" % (scale, stat, limit, df)


@pytest.mark.parametrize("scale", SCALES, ids=lambda s: "scale=%d/%d" % s)
def test_matches_exact_pmf(ours, scale):
    b = scale[0] / scale[1]
    t, probs = bins_for(b, N)
    stat = one_sample_chi2(histogram(ours[scale], t), probs)
    limit = chi2_isf(ALPHA, len(probs) - 1)
    assert stat < limit, "ours vs pmf at scale %s: chi2 %.1f >= %.1f" % (scale, stat, limit)


def test_chi2_has_power_against_a_ten_percent_wrong_scale(ours):
    # The same test must reject OpenDP samples of scale 1.1 against ours of scale 1.
    t, probs = bins_for(1.0, N)
    stat = two_sample_chi2(histogram(ours[(1, 1)], t), histogram(opendp_samples(1.1, N), t))
    assert stat > chi2_isf(ALPHA, len(probs) - 1), stat


# -- StatDP-style audit ---------------------------------------------------------------------

def fisher_one_sided(c1, c2, n1, n2):
    """P-value of a one-sided Fisher exact test that p1 > p2 given c1 of n1 and c2 of n2:
    P(X >= c1) for X hypergeometric (population n1 + n2, c1 + c2 successes, n1 draws)."""
    k = c1 + c2
    total = n1 + n2

    def logc(n, r):
        return math.lgamma(n + 1) - math.lgamma(r + 1) - math.lgamma(n - r + 1)

    base = logc(total, n1)

    def term(x):
        return math.exp(logc(k, x) + logc(total - k, n1 - x) - base)

    # Sum from c1 away from the mode, where terms only shrink, and stop once negligible.
    mode = (n1 + 1) * (k + 1) // (total + 2)
    lo_x, hi_x = max(0, k - n2), min(k, n1)
    if c1 > mode:
        p, x, step, stop = 0.0, c1, 1, hi_x
    else:
        p, x, step, stop = 0.0, c1 - 1, -1, lo_x
    while (x <= stop) if step == 1 else (x >= stop):
        t = term(x)
        p += t
        if t < p * 1e-17:
            break
        x += step
    if c1 <= mode:
        p = 1.0 - p
    return min(1.0, p)


def test_fisher_against_hand_computed_table():
    # 2x2 table [[3, 0], [0, 3]]: P = 1 / C(6, 3) = 1/20; [[2, 1], [1, 2]]: (9 + 1) / 20.
    assert abs(fisher_one_sided(3, 0, 3, 3) - 0.05) < 1e-12
    assert abs(fisher_one_sided(2, 1, 3, 3) - 0.5) < 1e-12


def events(lo, hi):
    out = []
    for c in range(lo, hi + 1):
        out.append((">=", c))
        out.append(("<=", c))
    return out


def in_event(x, ev):
    return x >= ev[1] if ev[0] == ">=" else x <= ev[1]


def count_in(xs, ev):
    return sum(1 for x in xs if in_event(x, ev))


def thin(c, eps, rnd):
    # Keep each of c hits with probability exp(-eps): a Binomial(c, exp(-eps)) draw.
    keep = math.exp(-eps)
    return sum(1 for _ in range(c) if rnd.random() < keep)


def audit(run, d1, d2, eps, n_search, n_test, rnd):
    """Smallest p-value for 'P(M(a) in E) > e^eps P(M(b) in E)' over both orders (a, b) of
    the neighbours, with the event E chosen on a search sample and tested on a fresh one."""
    s1 = [run(d1) for _ in range(n_search)]
    s2 = [run(d2) for _ in range(n_search)]
    lo, hi = min(s1 + s2), max(s1 + s2)
    best = None
    for ev in events(lo, hi):
        for a, b in ((s1, s2), (s2, s1)):
            ca, cb = count_in(a, ev), count_in(b, ev)
            # search score: the same thinned test, on expected counts (no extra randomness)
            p = fisher_one_sided(int(ca * math.exp(-eps)), cb, n_search, n_search)
            if best is None or p < best[0]:
                best = (p, ev, a is s1)
    _, ev, first = best
    t1 = [run(d1) for _ in range(n_test)]
    t2 = [run(d2) for _ in range(n_test)]
    a, b = (t1, t2) if first else (t2, t1)
    ca, cb = count_in(a, ev), count_in(b, ev)
    return fisher_one_sided(thin(ca, eps, rnd), cb, n_test, n_test), ev


class HalfNoise:
    """A broken policy: claims its epsilon but its scales are half what that epsilon needs."""

    def __init__(self, policy):
        self._p = policy

    def __getattr__(self, name):
        return getattr(self._p, name)

    def scales(self):
        out = {}
        good = self._p.scales()
        for k in good:
            out[k] = (good[k][0], good[k][1] * 2)
        return out


def count_runner(policy, rng):
    def run(n_true):
        acc = Contributions(policy)
        acc.n = n_true  # the clamped aggregate: n readings of one event each
        r = release(policy, acc, rng)
        return r.get("n", -1)  # -1: suppressed (an output event like any other)
    return run


def sum_runner(policy, rng):
    def run(values):
        acc = Contributions(policy)
        for v in values:
            acc.add(v)
        return release(policy, acc, rng)["sum"]
    return run


def test_audit_count_passes_claimed_epsilon_and_flags_half_noise():
    rng = os.urandom
    p = parse_dp("footfall", {"mechanism": "count", "epsilon": "1", "per_person": 1, "k": 1}, 3600, 1)
    eps = 1.0
    rnd = random.Random(20260101)
    pv, ev = audit(count_runner(p, rng), 20, 21, eps, 20_000, 100_000, rnd)
    assert pv > ALPHA, "correct count mechanism rejected: p=%g on event %s" % (pv, ev)
    pv_bad, ev_bad = audit(count_runner(HalfNoise(p), rng), 20, 21, eps, 20_000, 100_000, rnd)
    assert pv_bad < ALPHA, "half-noise count not detected: p=%g on event %s" % (pv_bad, ev_bad)


def test_audit_sum_passes_claimed_epsilon_and_flags_half_noise():
    # Neighbours differ by one contribution at the clamp bound; an out-of-range reading is
    # clamped first, so the sensitivity is hi = 4 whatever the sensor says.
    rng = os.urandom
    p = parse_dp("dwell", {"mechanism": "sum", "epsilon": "1", "per_person": 1, "lo": 0, "hi": 4})
    eps = 1.0
    d1 = [1, 2, 3]
    d2 = [1, 2, 3, 1000]
    rnd = random.Random(20260102)
    pv, ev = audit(sum_runner(p, rng), d1, d2, eps, 10_000, 60_000, rnd)
    assert pv > ALPHA, "correct sum mechanism rejected: p=%g on event %s" % (pv, ev)
    pv_bad, ev_bad = audit(sum_runner(HalfNoise(p), rng), d1, d2, eps, 10_000, 60_000, rnd)
    assert pv_bad < ALPHA, "half-noise sum not detected: p=%g on event %s" % (pv_bad, ev_bad)
