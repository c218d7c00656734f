"""Exact discrete Laplace noise: our sampler against OpenDP's, in the same run.

CPython: samples per second of agent.privacy.sampler (os.urandom, pure Python, exact) and of
OpenDP's discrete Laplace (`make_laplace` on integers; Rust, exact), both one vector call
and one call per sample (how an agent releasing one statistic at a time would use it), and
the ratio. MicroPython (official WebAssembly port under Node.js): microseconds per sample.

    .venv/bin/python bench/bench_noise.py [--quick]
"""
import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from agent.privacy.sampler import RandomBits, discrete_laplace  # noqa: E402

SCALES = ((1, 1), (10, 3), (25, 1))

MPY_SCRIPT = """
import os, time
from agent.privacy.sampler import RandomBits, discrete_laplace
bits = RandomBits(os.urandom)
for s, t in %r:
    for _ in range(200):
        discrete_laplace(bits, s, t)
    n = %d
    t0 = time.ticks_us()
    for _ in range(n):
        discrete_laplace(bits, s, t)
    dt = time.ticks_diff(time.ticks_us(), t0)
    print("MPYBENCH %%d/%%d %%d %%d" %% (t, s, n, dt))
"""


def ours_rate(scale, n):
    t, s = scale
    bits = RandomBits(os.urandom)
    t0 = time.perf_counter()
    for _ in range(n):
        discrete_laplace(bits, s, t)
    return n / (time.perf_counter() - t0)


def opendp_rates(scale, n, n_scalar):
    import opendp.prelude as dp

    dp.enable_features("contrib")
    b = scale[0] / scale[1]
    vec = dp.m.make_laplace(dp.vector_domain(dp.atom_domain(T=int)), dp.l1_distance(T=int), scale=b)
    one = dp.m.make_laplace(dp.atom_domain(T=int), dp.absolute_distance(T=int), scale=b)
    zeros = [0] * n
    t0 = time.perf_counter()
    vec(zeros)
    v = n / (time.perf_counter() - t0)
    t0 = time.perf_counter()
    for _ in range(n_scalar):
        one(0)
    return v, n_scalar / (time.perf_counter() - t0)


def mpy_us(n):
    import mpy_port

    proc = mpy_port.run([MPY_SCRIPT % (tuple((s, t) for t, s in SCALES), n)])
    out = {}
    for line in proc.stdout.splitlines():
        if line.startswith("MPYBENCH "):
            _, scale, count, us = line.split()
            out[scale] = int(us) / int(count)
    if not out:
        raise SystemExit("MicroPython run failed:\n" + proc.stdout[-2000:] + proc.stderr[-2000:])
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="short run (fewer samples)")
    ap.add_argument("--no-mpy", action="store_true", help="skip the MicroPython port")
    args = ap.parse_args()
    n = 20_000 if args.quick else 200_000
    n_scalar = 2_000 if args.quick else 20_000
    n_mpy = 2_000 if args.quick else 10_000

    print("CPython %s: exact discrete Laplace, samples/s (higher is better)" % sys.version.split()[0])
    print("%-8s %12s %14s %14s %10s %10s" % ("scale", "ours", "OpenDP vec", "OpenDP 1/call", "ours/vec", "ours/1call"))
    res = {"quick": args.quick, "scales": {}}
    for scale in SCALES:
        ours = ours_rate(scale, n)
        vec, one = opendp_rates(scale, n, n_scalar)
        res["scales"]["%d/%d" % scale] = {"ours_per_s": round(ours), "ours_vs_opendp_vec_ratio": round(ours / vec, 2),
                                          "ours_vs_opendp_call_ratio": round(ours / one, 2)}
        print("%-8s %12.0f %14.0f %14.0f %10.2f %10.2f" % (
            "%d/%d" % scale, ours, vec, one, ours / vec, ours / one))
    if not args.no_mpy:
        print("MicroPython port (WebAssembly, Node.js): us/sample")
        res["mpy_us_per_sample"] = {}
        for label, us in sorted(mpy_us(n_mpy).items()):
            print("%-8s %12.1f" % (label, us))
            res["mpy_us_per_sample"][label] = round(us, 1)
    print(json.dumps(res))  # the last line: one JSON object (bench/README.md)


if __name__ == "__main__":
    main()
