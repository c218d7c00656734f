# CPython only: agent.core.cbor against its anchor, cbor2 (C extension), measured in the same run.
"""Encode + decode of a typical summary payload with agent.core.cbor and with cbor2.

    .venv/bin/python bench/bench_cbor.py [--quick] [--mpy]

Prints microseconds per operation and the ratio ours / cbor2 (lower is better). --mpy also
times our codec on the MicroPython WebAssembly port (tests/mpy_port.py) and prints its ratio to
cbor2 on CPython in this run: a rough figure, since the port runs under Node.js.
"""
import argparse
import json
import os
import sys
import timeit

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "tests"))

import cbor2  # noqa: E402

from agent.core.cbor import dumps, loads  # noqa: E402

# A summary as ARCHITECTURE.md describes it: five metrics, manifest hash, drop report.
SUMMARY = {
    "v": 1, "dev": "cmabcdefghijklmnop", "seq": 123456, "t0": 1767225600, "t1": 1767225660,
    "mh": bytes(range(32)), "drop": {"n": 2, "from": 123400, "to": 123401},
    "m": {
        "pm25": {"mean": 12.5, "min": 3.25, "max": 40.0, "n": 60},
        "pm10": {"mean": 20.75, "min": 8.0, "max": 61.5, "n": 60},
        "temp_c": {"mean": 21.40625, "min": 20.5, "max": 22.25, "n": 60},
        "noise_db": {"mean": 54.1, "min": 38.2, "max": 81.9, "n": 600},
        "people": {"count": 17, "eps": 0.5, "k": 5},
    },
}

MPY_SCRIPT = """
import time
from agent.core.cbor import dumps, loads
S = %r
N = %d
raw = dumps(S)
t = time.ticks_us()
for _ in range(N):
    dumps(S)
enc = time.ticks_diff(time.ticks_us(), t) / N
t = time.ticks_us()
for _ in range(N):
    loads(raw)
dec = time.ticks_diff(time.ticks_us(), t) / N
print("MPYBENCH %%.2f %%.2f" %% (enc, dec))
"""


def per_call_us(fn, number, repeat):
    return min(timeit.repeat(fn, number=number, repeat=repeat)) / number * 1e6


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="short run (a few seconds)")
    ap.add_argument("--mpy", action="store_true", help="also time the codec on the MicroPython port")
    args = ap.parse_args()
    number, repeat = (300, 3) if args.quick else (2000, 5)

    ours_raw = dumps(SUMMARY)
    theirs_raw = cbor2.dumps(SUMMARY, canonical=True)
    assert loads(ours_raw) == SUMMARY and cbor2.loads(theirs_raw) == SUMMARY
    rows = [
        ("encode", per_call_us(lambda: dumps(SUMMARY), number, repeat),
         per_call_us(lambda: cbor2.dumps(SUMMARY, canonical=True), number, repeat)),
        ("decode", per_call_us(lambda: loads(ours_raw), number, repeat),
         per_call_us(lambda: cbor2.loads(theirs_raw), number, repeat)),
    ]
    print("summary payload: %d bytes (ours), %d bytes (cbor2 canonical)" % (len(ours_raw), len(theirs_raw)))
    print("%-8s %12s %12s %8s" % ("op", "ours us", "cbor2 us", "ratio"))
    for name, ours, theirs in rows:
        print("%-8s %12.1f %12.1f %7.1fx" % (name, ours, theirs, ours / theirs))
    total_ours = rows[0][1] + rows[1][1]
    total_theirs = rows[0][2] + rows[1][2]
    print("%-8s %12.1f %12.1f %7.1fx" % ("both", total_ours, total_theirs, total_ours / total_theirs))
    res = {"payload_bytes": len(ours_raw), "ours_us": round(total_ours, 1), "cbor2_us": round(total_theirs, 1),
           "ours_vs_cbor2_ratio": round(total_ours / total_theirs, 2), "quick": args.quick}

    if args.mpy:
        import mpy_port

        proc = mpy_port.run([MPY_SCRIPT % (SUMMARY, 50 if args.quick else 300)])
        line = [ln for ln in proc.stdout.splitlines() if ln.startswith("MPYBENCH")]
        if not line:
            print("MicroPython run failed:", proc.stdout[-500:], proc.stderr[-500:])
            return 1
        enc, dec = (float(x) for x in line[0].split()[1:])
        print("%-8s %12.1f %12s %7.1fx  (MicroPython WebAssembly port vs cbor2 on CPython)"
              % ("mpy both", enc + dec, "", (enc + dec) / total_theirs))
        res["mpy_us"] = round(enc + dec, 1)
    print(json.dumps(res))  # the last line: one JSON object (bench/README.md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
