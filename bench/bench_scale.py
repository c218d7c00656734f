"""End to end through a real broker: a simulated fleet -> Mosquitto (mutual TLS) -> 1, 2, 4 collectors
sharing the stream -> SQLite, then PostgreSQL.

For each (store, collectors): verified summaries stored per second, per collector CPU-second, and
the publish -> stored latency (p50, p99, from the store's received_at). The fleet publishes as
fast as the broker acknowledges (--rate far above what one collector stores), so stored/s is the
city's capacity here. Ratios are against the anchor measured in the same run: one collector on
SQLite. Scaling efficiency = stored/s with N collectors / (N x stored/s with one).

    python bench/bench_scale.py            # 2000 devices x 3 summaries, 1/2/4 collectors, SQLite + PostgreSQL
    python bench/bench_scale.py --quick    # 60 devices x 2, 1/2 collectors (the test in make test runs this)
    python bench/bench_scale.py --json

PostgreSQL runs in a temporary server (tests/pg.py) when it is installed; else those rows are
skipped with the reason. Everything runs on this machine: collectors, broker, database and the
fleet share its cores, so the figures are a floor for a city's dedicated machines.
"""
import argparse
import json
import os
import shutil
import signal
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from pg import PgServer  # noqa: E402
from provisioning.demo.fleet_run import run  # noqa: E402


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--json", action="store_true")
    a = p.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stop the servers it started on the way out
    devices, per_device, counts = (60, 2, (1, 2)) if a.quick else (2000, 3, (1, 2, 4))
    rate = 20000.0
    rows = []
    pg_reason = PgServer.available()
    pg = None if pg_reason else PgServer().start()
    try:
        for backend in ("sqlite", "postgresql"):
            if backend == "postgresql" and pg is None:
                print("postgresql: skipped (%s)" % pg_reason, file=sys.stderr)
                continue
            for n in counts:
                folder = tempfile.mkdtemp(prefix="civicmote-bench-scale-")
                try:
                    store = pg.new_database() if backend == "postgresql" else None
                    r = run(folder, devices, rate, per_device, collectors=n, store=store)
                finally:
                    shutil.rmtree(folder, ignore_errors=True)
                r["backend"] = backend
                rows.append(r)
    finally:
        if pg:
            pg.stop()
    anchor = rows[0]["stored_per_s"] or 1.0
    single = {}
    for r in rows:
        single.setdefault(r["backend"], r["stored_per_s"] or 1.0)
        r["ratio_vs_anchor"] = round((r["stored_per_s"] or 0) / anchor, 2)
        r["scaling_efficiency"] = round((r["stored_per_s"] or 0) / (r["collectors"] * single[r["backend"]]), 2)
    if a.json:
        print(json.dumps({"devices": devices, "per_device": per_device, "cpus": os.cpu_count(), "rows": rows}))
    else:
        print("fleet of %d devices x %d summaries, mutual TLS, Mosquitto, %d CPUs shared by everything"
              % (devices, per_device, os.cpu_count()))
        print("%-10s %4s %9s %7s %9s %8s %8s %9s %6s" % ("store", "coll", "stored/s", "x anchor", "per cpu-s",
                                                          "p50 ms", "p99 ms", "efficiency", "lost"))
        for r in rows:
            print("%-10s %4d %9s %7.2f %9s %8s %8s %9.2f %6d" % (
                r["backend"], r["collectors"], r["stored_per_s"], r["ratio_vs_anchor"], r["stored_per_collector_cpu_s"],
                r["latency_p50_ms"], r["latency_p99_ms"], r["scaling_efficiency"], r["acked_not_stored"]))
        # the last line is one JSON object, as every bench ends (bench/README.md)
        print(json.dumps({"devices": devices, "per_device": per_device, "cpus": os.cpu_count(), "rows": rows}))
    lost = sum(r["acked_not_stored"] for r in rows) + sum(r["published_acked"] - r["stored"] for r in rows)
    return 1 if lost else 0


if __name__ == "__main__":
    sys.exit(main())
