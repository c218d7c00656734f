"""End to end through the clustered broker: a simulated fleet -> 3-node RabbitMQ (MQTT over mutual
TLS, devices spread over the nodes) -> 1 and 2 collectors consuming its quorum queue -> PostgreSQL
(SQLite if PostgreSQL is missing).

Per run: summaries stored per second, per collector CPU-second, publish -> stored latency p50/p99,
and any acknowledged summary not stored. Ratios against the anchor measured in the same run: one
collector.

    python bench/bench_cluster.py            # 300 devices x 5 summaries
    python bench/bench_cluster.py --quick    # 30 devices x 3

`make test` runs measure() and report() on tests/test_cluster_rabbitmq.py's cluster, which is
already up (one 3-node boot, not two); tests/test_bench_quick.py leaves this script's own out.
"""
import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from pg import PgServer  # noqa: E402
from rabbit import RabbitCluster, rabbit_nodes  # noqa: E402
from provisioning.city import cluster_config  # noqa: E402
from provisioning.demo.fleet import FleetCity, publish  # noqa: E402
from provisioning.demo.fleet_run import _ms, _reap, _stored, percentile  # noqa: E402


def _collectors(city, broker_dir, rc, store, n, folder):
    url = "amqps://" + ",".join("localhost:%d" % node["amqps"] for node in rc.nodes)
    procs = []
    for i in range(n):
        err = Path(folder) / ("bench-c%d.err" % i)
        procs.append((subprocess.Popen(
            [sys.executable, "-m", "provisioning.cli", "collect", "--broker", url, "--registry", city.export,
             "--tls-ca", str(broker_dir / "ca.crt"), "--tls-cert", str(broker_dir / "collector.crt"), "--tls-key",
             str(broker_dir / "collector.key"), "--store", store, "--json"],
            stdout=subprocess.DEVNULL, stderr=open(err, "wb")), err))
    end = time.monotonic() + 120
    for p, err in procs:
        while "connected to" not in err.read_text(errors="replace"):
            if p.poll() is not None or time.monotonic() > end:
                raise RuntimeError("collector did not connect: %s" % err.read_text(errors="replace")[-500:])
            time.sleep(0.05)
    return procs


def measure(city, broker_dir, rc, store, collectors, per_device, rate=20000.0, folder=None):
    """One run on a running cluster; the store must be empty of these devices' summaries."""
    folder = folder or tempfile.mkdtemp(prefix="civicmote-bench-cluster-")
    procs = _collectors(city, Path(broker_dir), rc, store, collectors, folder)
    try:
        res = asyncio.run(publish(city, "127.0.0.1", [n["mqtts"] for n in rc.nodes], rate, per_device))
        stored, _, _ = _stored(store, res["published"])
    finally:
        cpu = sum(_reap(p) for p, _ in procs)
    sent = res["sent"]
    lat = [stored[k] - sent[k][0] for k in sent if k in stored]
    first = min((v[0] for v in sent.values()), default=0)
    last = max(stored.values(), default=first)
    n = len(lat)
    return {"collectors": collectors, "devices": len(city.devices), "published": len(res["published"]),
            "published_acked": len(sent), "stored": n, "acked_not_stored": len(set(sent) - set(stored)),
            "errors": len(res["errors"]), "reconnects": res["reconnects"], "resends": res["resends"],
            "stored_per_s": round(n / (last - first), 1) if n and last > first else None,
            "stored_per_collector_cpu_s": round(n / cpu, 1) if cpu else None,
            "latency_p50_ms": _ms(percentile(lat, 50)), "latency_p99_ms": _ms(percentile(lat, 99))}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--json", action="store_true")
    a = p.parse_args(argv)
    reason = RabbitCluster.available()
    if reason:
        print("bench_cluster: skipped (%s)" % reason, file=sys.stderr)
        return 0
    devices, per_device = (30, 3) if a.quick else (300, 5)
    folder = Path(tempfile.mkdtemp(prefix="civicmote-bench-cluster-"))
    pg = None if PgServer.available() else PgServer().start()
    rows = []
    try:
        whole = FleetCity.create(folder / "fleet", 2 * devices)  # one CA; a fresh half of the fleet per run
        cities = [FleetCity(whole.folder, whole.devices[:devices], whole.ca),
                  FleetCity(whole.folder, whole.devices[devices:], whole.ca)]
        nodes = rabbit_nodes(3)
        cluster_config.write(whole.ca, whole.records, folder / "broker", nodes)
        with RabbitCluster(folder / "broker", nodes) as rc:
            for n, city in zip((1, 2), cities):
                store = pg.new_database() if pg else str(folder / ("city%d.db" % n))
                rows.append(measure(city, folder / "broker", rc, store, n, per_device, folder=folder))
    finally:
        if pg:
            pg.stop()
    store_kind = "postgresql" if pg else "sqlite"
    if a.json:
        print(report(rows, store_kind, devices, per_device)[-1])
    else:
        print("\n".join(report(rows, store_kind, devices, per_device)))
    return 1 if any(r["acked_not_stored"] or r["stored"] != r["published"] for r in rows) else 0


def report(rows, store_kind, devices, per_device):
    """The printed lines (ratios against the first row); the last is one JSON object, as every
    bench ends (bench/README.md)."""
    anchor = rows[0]["stored_per_s"] or 1.0
    for r in rows:
        r["ratio_vs_anchor"] = round((r["stored_per_s"] or 0) / anchor, 2)
    lines = ["3-node RabbitMQ on loopback, %d devices x %d summaries, store %s, %d CPUs shared by everything"
             % (devices, per_device, store_kind, os.cpu_count())]
    for r in rows:
        lines.append("%d collector(s): %s stored/s (x%.2f), %s per collector cpu-s, p50 %s ms, p99 %s ms, lost %d, "
                     "device reconnects %d, resends %d"
                     % (r["collectors"], r["stored_per_s"], r["ratio_vs_anchor"], r["stored_per_collector_cpu_s"],
                        r["latency_p50_ms"], r["latency_p99_ms"], r["acked_not_stored"], r["reconnects"],
                        r["resends"]))
    lines.append(json.dumps({"store": store_kind, "cpus": os.cpu_count(), "rows": rows}))
    return lines

if __name__ == "__main__":
    sys.exit(main())
