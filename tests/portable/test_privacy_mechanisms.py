"""Mechanisms: clamping before noise, noise of the declared scale, suppression, wiping."""
import math
import os

from support import raises

from agent.privacy.contributions import Contributions, bucket_of, clamp, open_window
from agent.privacy.policy import parse_dp
from agent.privacy.release import mean_text, release

# epsilon = 10**6 makes every scale here <= 2e-4, so the noise is nonzero with probability
# below exp(-5000): the data path is checked exactly.
EXACT = "1000000"


def policy(mech, eps=EXACT, **kw):
    # one person adds at most one reading (or event) per window; a count's sensor counts at
    # most one event a second (refractory 1 s) in a one-hour window
    dp = {"mechanism": mech, "epsilon": eps}
    if mech != "distinct":
        dp["per_person"] = 1
    dp.update(kw)
    return parse_dp("m", dp, 3600, 1)


def test_clamp_rounds_and_bounds():
    assert clamp(5, 0, 10) == 5
    assert clamp(-3, 0, 10) == 0
    assert clamp(99, 0, 10) == 10
    assert clamp(2.6, 0, 10) == 3
    assert clamp(True, 0, 10) == 1


def test_bucket_of_edges():
    edges = [10, 20, 40]
    for v, i in ((-5, 0), (9, 0), (10, 1), (19, 1), (20, 2), (39, 2), (40, 3), (1000, 3)):
        assert bucket_of(edges, v) == i, (v, i)


def test_count_adds_events_and_stops_at_max_events():
    # no refractory time: a read may carry many events, up to the window's cap
    dp = {"mechanism": "count", "epsilon": EXACT, "per_person": 1, "k": 1, "max_events": 100}
    p = parse_dp("m", dp, 3600)
    assert p.per_reading() == 100
    acc = open_window(p, os.urandom)
    for v in (1, 1, 5, 0, -3, 2, 2.6, True):  # -3 counts as 0, 2.6 as 3
        acc.add(v)
    assert (acc.n, acc.clamped) == (13, 0)
    assert release(p, acc, os.urandom) == {"n": 13}
    assert acc.n == 0  # wiped
    p = parse_dp("m", dict(dp, max_events=12), 3600)
    acc = open_window(p, os.urandom)
    for v in (5, 5, 5, 1):
        acc.add(v)
    assert acc.n == 12  # the window's cap: what one lingering person can add is bounded too
    assert release(p, acc, os.urandom) == {"n": 12}


def test_count_clamps_each_reading_to_what_the_driver_can_report():
    # refractory 1 s: the PIR driver counts at most one event per read, so 50 edges in one
    # reading (a bouncing contact, a driver bug) add 1, and the cut is counted
    p = policy("count", k=1)
    assert p.per_reading() == 1
    acc = open_window(p, os.urandom)
    for v in (1, 50, 0, 2.6, True, -4):
        acc.add(v)
    assert (acc.n, acc.clamped) == (4, 2)
    assert release(p, acc, os.urandom) == {"n": 4}
    assert (acc.n, acc.clamped) == (0, 0)  # wiped
    # and a window never holds more than one event per refractory time: 10 s at 1 s -> 10
    p = parse_dp("m", {"mechanism": "count", "epsilon": EXACT, "per_person": 1, "k": 1}, 10, 1)
    acc = open_window(p, os.urandom)
    for _ in range(15):
        acc.add(1)
    assert (acc.n, acc.clamped) == (10, 0)


def test_sum_clamps_to_bounds():
    p = policy("sum", lo=0, hi=10)
    acc = Contributions(p)
    for v in (3, 50, -7, 4.4):
        acc.add(v)
    assert acc.total == 3 + 10 + 0 + 4
    assert release(p, acc, os.urandom) == {"sum": 17}


def test_mean_releases_sum_count_and_clamped_mean():
    p = policy("mean", lo=0, hi=100, k=2)
    acc = open_window(p, os.urandom)
    for v in (10, 20, 30, 500):  # 500 counts as 100
        acc.add(v)
    assert release(p, acc, os.urandom) == {"n": 4, "sum": 160, "mean": "40.00"}


def test_mean_text():
    assert mean_text(160, 4, 0, 100) == "40.00"
    assert mean_text(10, 3, 0, 100) == "3.33"
    assert mean_text(20, 3, 0, 100) == "6.67"
    assert mean_text(1, 200, 0, 100) == "0.01"
    assert mean_text(-7, 2, -10, 10) == "-3.50"
    assert mean_text(5000, 3, 0, 100) == "100.00"  # noise may push past hi: clamped
    assert mean_text(-50, 3, 0, 100) == "0.00"


def test_histogram_counts_buckets_and_suppresses_small_ones():
    p = policy("histogram", k=2, buckets=[10, 20])
    acc = open_window(p, os.urandom)
    for v in (1, 2, 3, 15, 25, 30):
        acc.add(v)
    assert release(p, acc, os.urandom) == {"h": [3, None, 2]}
    assert acc.counts == [0, 0, 0]


def test_counts_below_k_are_suppressed():
    p = policy("count", k=5)
    acc = open_window(p, os.urandom)
    for _ in range(4):
        acc.add()
    assert release(p, acc, os.urandom) == {"suppressed": True}
    p = policy("mean", lo=0, hi=9, k=5)
    acc = open_window(p, os.urandom)
    acc.add(3)
    assert release(p, acc, os.urandom) == {"suppressed": True}


def test_release_wipes_even_on_error():
    p = policy("count", k=1)
    acc = open_window(p, os.urandom)
    acc.add()

    def broken_rng(n):
        raise OSError("rng failed")

    raises(OSError, release, p, acc, broken_rng)
    assert acc.n == 0


def _theory(scale):
    q = math.exp(-1.0 / scale)
    return 2 * q / (1 - q) ** 2


def test_noisy_count_and_sum_mean_variance_against_theory():
    # Released minus true value is the noise: mean 0, variance 2p/(1-p)^2 with p = exp(-1/scale),
    # scale = sensitivity / epsilon. 3000 releases each; bounds at 7 standard errors.
    n = 3000
    cases = (
        (policy("count", eps="1/2", k=1), 200, "n", 2.0),           # scale 1 / (1/2)
        (policy("sum", eps="2", lo=0, hi=6), None, "sum", 3.0),      # scale 6 / 2
    )
    for p, _, key, scale in cases:
        var = _theory(scale)
        total = 0
        total_sq = 0
        for _ in range(n):
            acc = open_window(p, os.urandom)
            if key == "n":
                for _ in range(200):
                    acc.add()
                truth = 200
            else:
                for v in (1, 2, 3, 9):
                    acc.add(v)
                truth = 1 + 2 + 3 + 6
            d = release(p, acc, os.urandom)[key] - truth
            total += d
            total_sq += d * d
        mean = total / n
        sq = total_sq / n
        # Var(X^2) <= E[X^4] = 24 * scale^4 bounds the spread of the variance estimate.
        assert abs(mean) < 7 * math.sqrt(var / n), (key, mean)
        assert abs(sq - var) < 7 * math.sqrt(24 * scale ** 4 / n), (key, sq, var)


def test_histogram_noise_per_bucket():
    # Each bucket gets its own noise of scale 1/epsilon (parallel composition).
    p = policy("histogram", eps="1", k=1, buckets=[5])
    n = 2000
    var = _theory(1.0)
    sums = [0, 0]
    sqs = [0, 0]
    for _ in range(n):
        acc = open_window(p, os.urandom)
        for _ in range(50):
            acc.add(0)
            acc.add(7)
        h = release(p, acc, os.urandom)["h"]
        for i in (0, 1):
            d = h[i] - 50
            sums[i] += d
            sqs[i] += d * d
    for i in (0, 1):
        assert abs(sums[i] / n) < 7 * math.sqrt(var / n)
        assert abs(sqs[i] / n - var) < 7 * math.sqrt(24 / n)
