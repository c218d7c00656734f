"""Window aggregation against exact-rational vectors; the same answers on both runtimes."""
from agent.core.window import STAT_NAMES, Window, div_round, isqrt, quantize, to_fixed
from support import load_vectors, raises


def _window(case):
    w = Window(case["edges"])
    for x in case["samples"]:
        w.add(x)
    return w


def test_vectors():
    for case in load_vectors("window.json"):
        w = _window(case)
        names = [k for k in STAT_NAMES if k != "leq"]  # leq: see test_decibel
        got = dict(zip(names, w.stats(names)))
        for k in names:
            assert got[k] == case["expect"][k], (k, got[k], case["expect"][k])


def test_merge_equals_single_pass():
    for case in load_vectors("window.json"):
        xs = case["samples"]
        a = Window(case["edges"])
        b = Window(case["edges"])
        for i, x in enumerate(xs):
            (a if i % 3 else b).add(x)
        a.merge(b)
        names = [k for k in STAT_NAMES if k != "leq"]
        assert a.stats(names) == _window(case).stats(names)


def test_empty_and_single():
    w = Window()
    assert w.stats(("n", "mean", "min", "max", "var", "sd")) == [0, None, None, None, None, None]
    w.add(-7)
    assert w.stats(("n", "mean", "min", "max", "var", "sd")) == [1, -7, -7, -7, None, None]


def test_reset_forgets_everything():
    w = Window([0, 10])
    for x in (1, 5, 20, -3):
        w.add(x)
    w.reset()
    assert w.n == 0 and w.s1 == 0 and w.s2 == 0 and w.lo is None and w.buckets == [0, 0, 0]


def test_memory_is_constant():
    w = Window([0, 100])
    for x in range(20000):
        w.add(x % 250)
    # Only counters: no list grows with the samples.
    assert len(w.buckets) == 3
    assert w.n == 20000 and w.lo == 0 and w.hi == 249


def test_helpers():
    assert div_round(5, 2) == 3 and div_round(-5, 2) == -3 and div_round(4, 3) == 1 and div_round(-4, 3) == -1
    for n in (0, 1, 2, 3, 4, 15, 16, 17, 10 ** 30, 10 ** 30 + 1):
        r = isqrt(n)
        assert r * r <= n < (r + 1) * (r + 1)
    assert to_fixed(21.537, 100) == 2154 and to_fixed(-0.25, 2) == -1 and to_fixed(7, 10) == 70
    assert quantize(21.53, (1, 10)) == 215 and quantize(101325, (10, 1)) == 10133 and quantize(-7, (1, 2)) == -14
    assert quantize(54.4, (1, 1)) == 54 and quantize(54.5, (1, 1)) == 55 and quantize(-0.75, (1, 2)) == -2
    raises(ValueError, Window, [3, 3])
    raises(ValueError, Window().stats, ("median",))
