"""Usefulness of the released hourly footfall and presence at the shipped privacy settings.

For the sim board's street at three constant rates (a quiet night, 300 and 2,000 people an
hour), one hour runs through the agent's own path: the emulated PIR and Bluetooth scanner, the
real drivers, a real MetricSet; then the window is released many times with fresh noise. Each
row gives the ground truth (passes, phones + beacons), what the sensor holds before noise, and
the median relative error of the released value, both against the truth and against the
sensor's own noiseless value (the share that privacy costs). The anchor, measured in the same
run, is the noiseless release: `x anchor` is the released error over the noiseless error
against the truth. A suppressed release counts as 0. Per-person epsilon per window and per day
come from the board's manifest settings.

    .venv/bin/python bench/bench_privacy_usefulness.py [--quick] [--board FILE]
"""
import argparse
import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from agent.core import rational  # noqa: E402
from agent.emulators.street import Street  # noqa: E402
from agent.privacy import distinct  # noqa: E402
from agent.privacy.policy import spend_per_day  # noqa: E402
from agent.privacy.release import window_cost  # noqa: E402
from street_hour import SIM, T0, HOUR, MemoryLedger, people_board, replay, run_hour  # noqa: E402

SCENARIOS = (("quiet night", 20), ("daytime", 300), ("busy", 2000))


def median(xs):
    xs = sorted(xs)
    n = len(xs)
    return xs[n // 2] if n % 2 else (xs[n // 2 - 1] + xs[n // 2]) / 2


def rel(x, truth):
    return abs(x - truth) / truth if truth else float(abs(x))


def released_n(stats):
    return stats.get("n", 0)  # {"suppressed": true}: read as 0


def noiseless(metrics):
    """(footfall events, presence estimate) held by the window, before noise."""
    foot = metrics.personal["footfall"][1].n
    pres = metrics.personal["presence"][1]
    return foot, distinct.estimate(pres.occupied(), pres.bits)[0]


def scenario(board, rate, seeds, draws):
    rows = {"foot": [], "foot_p": [], "pres": [], "pres_p": [], "foot0": [], "pres0": []}
    truths = []
    for seed in seeds:
        street = Street(seed, rate_per_h=rate)
        fed = run_hour(board, street, os.urandom)
        passes, phones = street.people.truth(T0, T0 + HOUR)
        devices = phones + 3  # the street's fixed beacons are devices too
        foot0, pres0 = noiseless(fed)
        truths.append((passes, devices, foot0, pres0))
        rows["foot0"].append(rel(foot0, passes))
        rows["pres0"].append(rel(pres0, devices))
        for _ in range(draws):
            out = replay(board, fed.fed, os.urandom).close(MemoryLedger(), T0 + HOUR, T0 + HOUR)
            f, p = released_n(out["footfall"]), released_n(out["presence"])
            rows["foot"].append(rel(f, passes))
            rows["foot_p"].append(rel(f, foot0))
            rows["pres"].append(rel(p, devices))
            rows["pres_p"].append(rel(p, pres0))
    out = {k: median(v) for k, v in rows.items()}
    out["truth"] = tuple(median([t[i] for t in truths]) for i in range(4))
    return out


def pct(x):
    return "%5.1f%%" % (100 * x)


def ratio(a, b):
    return "%5.1fx" % (a / b) if b else "   inf"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="2 street seeds x 30 noise draws (a test runs this)")
    ap.add_argument("--board", default=str(SIM), help="board profile (default boards/sim.json)")
    args = ap.parse_args(argv)
    seeds, draws = ((1, 2), 30) if args.quick else ((1, 2, 3, 4, 5, 6), 200)
    board = people_board(args.board)
    window = window_cost([board.dp[n] for n in sorted(board.dp)])
    print("board %s: one budget per person per day %s (every window released: %s); per 1-hour window %s"
          % (board.name, _num(board.daily_epsilon), _num(spend_per_day(board.dp)), _num(window)))
    for name in sorted(board.dp):
        p = board.dp[name]
        print("  %-9s epsilon %s per window, one person adds at most %d, noise scale %s"
              % (name, _num(p.epsilon), p.sensitivity(), _num(p.scales()["n"])))
    print("%-12s %6s | %7s %6s %8s %8s %8s | %7s %6s %8s %8s %8s" % (
        "street", "/h", "passes", "held", "released", "privacy", "anchor",
        "devices", "held", "released", "privacy", "anchor"))
    results = {}
    for label, rate in SCENARIOS:
        r = scenario(board, rate, seeds, draws)
        results[rate] = r
        t = r["truth"]
        print("%-12s %6d | %7d %6d %8s %8s %8s | %7d %6d %8s %8s %8s" % (
            label, rate, t[0], t[2], pct(r["foot"]), pct(r["foot_p"]), ratio(r["foot"], r["foot0"]),
            t[1], t[3], pct(r["pres"]), pct(r["pres_p"]), ratio(r["pres"], r["pres0"])))
    print("released: median |released - truth| / truth; privacy: against the sensor's own noiseless value;"
          " anchor: released error / noiseless error (same run)")
    # The last line: one JSON object (bench/README.md), median relative errors per street rate.
    print(json.dumps({"bench": "privacy_usefulness", "quick": args.quick, "daily_epsilon": _num(board.daily_epsilon),
                      "median_relative_error": dict((str(rate), {k: r[k] for k in ("foot", "foot_p", "pres", "pres_p")})
                                                    for rate, r in results.items())}, sort_keys=True, default=str))
    return results


def _num(r):
    """An exact rational as a short decimal when it is one (66/25 -> 2.64)."""
    for places in range(0, 7):
        scaled = r[0] * 10 ** places
        if scaled % r[1] == 0:
            q = scaled // r[1]
            s = str(q).rjust(places + 1, "0")
            return s if not places else s[:-places] + "." + s[-places:]
    return "%s (%.4f)" % (rational.text(r), r[0] / r[1])


if __name__ == "__main__":
    main()
