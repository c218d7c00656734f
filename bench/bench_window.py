"""Window aggregation throughput on CPython (target: >= 500,000 samples/s).

Anchor, measured in the same run: the cheapest loop that touches every sample in Python
(`total += x`), so the ratio says what the statistics cost on top of merely seeing the data.
Usage: python bench/bench_window.py [--quick]
"""
import json
import random
import sys
import time

from agent.core.window import Window

TARGET = 500_000


def best_of(fn, repeat):
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def main():
    quick = "--quick" in sys.argv
    n = 100_000 if quick else 1_000_000
    rng = random.Random(1)
    xs = [rng.randrange(-4000, 12000) for _ in range(n)]

    def anchor():
        total = 0
        for x in xs:
            total += x
        return total

    def stats_only():
        w = Window()
        add = w.add
        for x in xs:
            add(x)
        return w

    def with_histogram():
        w = Window([0, 1000, 2000, 3000, 5000])
        add = w.add
        for x in xs:
            add(x)
        return w

    repeat = 3 if quick else 5
    t_anchor = best_of(anchor, repeat)
    t_stats = best_of(stats_only, repeat)
    t_hist = best_of(with_histogram, repeat)
    res = {
        "samples": n,
        "anchor_samples_per_s": round(n / t_anchor),
        "window_samples_per_s": round(n / t_stats),
        "window_with_histogram_samples_per_s": round(n / t_hist),
        "window_vs_anchor_time_ratio": round(t_stats / t_anchor, 2),
        "target_samples_per_s": TARGET,
        "meets_target": n / t_stats >= TARGET,
    }
    print("anchor (sum only)        %10.0f samples/s" % (n / t_anchor))
    print("window (n,sum,min,max,M2) %9.0f samples/s  = %.2fx the anchor's time" % (n / t_stats, t_stats / t_anchor))
    print("window + 6-bucket hist   %10.0f samples/s" % (n / t_hist))
    print("target >= %d samples/s: %s" % (TARGET, "met" if res["meets_target"] else "NOT met"))
    print(json.dumps(res))


if __name__ == "__main__":
    main()
