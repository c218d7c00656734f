"""The collector's intake end to end (issue 25): group commit and a network thread of its own.

A simulated fleet (each device its own key, certificate and mutual-TLS connection) -> Mosquitto ->
`civicmote collect` -> store, in two conditions:
- flood: every device sends its summaries as fast as the broker acknowledges them (1,000
  devices x 10): stored/s is the city's capacity here;
- steady: the fleet offers 1,000 summaries/s: the publish -> stored latency (p50, p99).
Once with SQLite, once with PostgreSQL (a temporary server, tests/pg.py, when installed).
Summaries are signed before the clock starts, so the fleet's own signing does not compete.

The anchor, measured in the same run: verify-only, the rate one process verifies the same signed
summaries (envelope, ES256, strict CBOR, schema) with nothing stored and no network. Every
ratio printed is stored/s over that rate. The load average is printed with the figures: the
machine's two cores are shared by the broker, the fleet, the collector, PostgreSQL and others.

    python bench/bench_intake.py            # 1000 devices x 10, SQLite and PostgreSQL
    python bench/bench_intake.py --quick    # 40 devices x 3, SQLite (tests/test_bench_quick.py)
    python bench/bench_intake.py --json
"""
import argparse
import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from pg import PgServer  # noqa: E402
from provisioning.city.verifier import KeyRing, verify_message  # noqa: E402
from provisioning.demo.fleet import FleetCity, publish  # noqa: E402
from provisioning.demo.fleet_run import (MOSQUITTO, _ms, _reap, _stored, _wait_connected,  # noqa: E402
                                         _wait_port, free_port, percentile)


def presign(city, per_device):
    """Sign every summary now and make each device hand out its signed copy."""
    signed = {}
    for d in city.devices:
        mine = {seq: d.summary(seq) for seq in range(1, per_device + 1)}
        signed.update({(d.dev, seq): m for seq, m in mine.items()})
        d.summary = lambda seq, boot=1, mine=mine: mine[seq]
    return signed


def verify_only(city, signed, limit=3000):
    """Summaries verified per second (CPU and wall) in this process, nothing stored."""
    ring = KeyRing()
    for d in city.devices:
        ring.add_public_key(d.pub)
    msgs = list(signed.values())[:limit]
    cpu, wall = time.process_time(), time.monotonic()
    ok = sum(verify_message(m, ring, None).ok for m in msgs)
    cpu, wall = time.process_time() - cpu, time.monotonic() - wall
    assert ok == len(msgs)
    return {"verified": ok, "per_cpu_s": round(ok / cpu, 1), "per_s": round(ok / wall, 1)}


def _collector(city, port, store, i, folder, code=None):
    """`civicmote collect --share` as a process; code: another checkout's folder whose collector runs
    instead (an A/B under the same load)."""
    err_path = Path(folder) / ("collector-%d.err" % i)
    b = city.broker_dir
    env = dict(os.environ, PYTHONPATH=str(code)) if code else None
    proc = subprocess.Popen(
        [sys.executable, "-m", "provisioning.cli", "collect", "--broker", "mqtts://localhost:%d" % port,
         "--registry", city.export, "--tls-ca", str(b / "ca.crt"), "--tls-cert", str(b / "collector.crt"),
         "--tls-key", str(b / "collector.key"), "--store", store, "--share", "fleet", "--client-id",
         "fleet-collector-%d" % i, "--json"], stdout=open(Path(folder) / ("collector-%d.out" % i), "wb"),
        stderr=open(err_path, "wb"), env=env, cwd=str(code) if code else None)
    return proc, err_path


def _cpu_now(pid):
    """CPU seconds (user + system) a running process has used so far (Linux /proc)."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / float(os.sysconf("SC_CLK_TCK"))


class _Sampler:
    """CPU seconds of some processes (and of this one, pid 0) every 0.1 s, with the wall clock."""

    def __init__(self, pids):
        self.pids, self.samples, self._stop = pids, [], False

    def start(self):
        import threading

        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()
        return self

    def _run(self):
        while not self._stop:
            cpu = {pid: _cpu_now(pid) for pid in self.pids}
            cpu[0] = time.process_time()
            self.samples.append((time.time(), cpu))
            time.sleep(0.1)

    def stop(self):
        self._stop = True
        self._t.join()

    def between(self, t0, t1, pids):
        """CPU seconds the pids used between t0 and t1 (nearest samples)."""
        if not self.samples:
            return 0.0
        a = min(self.samples, key=lambda s: abs(s[0] - t0))[1]
        b = min(self.samples, key=lambda s: abs(s[0] - t1))[1]
        return sum(b.get(p, 0.0) - a.get(p, 0.0) for p in pids)


def one_run(city, folder, store, rate, per_device, collectors, tag, code=None):
    """Fresh broker (its own folder) and store; -> the figures of one run."""
    city.broker_dir = Path(folder) / ("broker-" + tag)
    port = free_port()
    city.broker_config(port, user="root" if os.geteuid() == 0 else None)
    broker = subprocess.Popen([MOSQUITTO, "-c", str(city.broker_dir / "mosquitto.conf")],
                              stdout=subprocess.DEVNULL, stderr=open(Path(folder) / ("mosquitto-%s.log" % tag), "wb"))
    procs = []
    load0 = os.getloadavg()[0]
    try:
        _wait_port(port, broker)
        procs = [_collector(city, port, store, i, folder, code) for i in range(collectors)]
        _wait_connected(procs)
        sampler = _Sampler([broker.pid] + [p.pid for p, _ in procs]).start()
        fleet_cpu = time.process_time()
        res = asyncio.run(publish(city, "127.0.0.1", port, rate, per_device))
        fleet_cpu = time.process_time() - fleet_cpu
        stored, other, _ = _stored(store, res["published"])
        sampler.stop()
    finally:
        cpu = sum(_reap(p) for p, _ in procs)
        broker_cpu = _reap(broker)
    sent = res["sent"]
    lat = [stored[k] - sent[k][0] for k in sent if k in stored]
    first = min((v[0] for v in sent.values()), default=0)
    last = max(stored.values(), default=first)
    pub_end = max((v[1] for v in sent.values()), default=first)
    n = len(lat)
    # CPU of the publishing phase alone (first publish to last stored: no TLS handshakes, no start-up)
    ph = {k: sampler.between(first, last, pids) for k, pids in
          (("collector", [p.pid for p, _ in procs]), ("broker", [broker.pid]), ("fleet", [0]))}
    return {"collectors": collectors, "rate_offered": rate, "published": len(res["published"]),
            "published_acked": len(sent), "stored": n, "acked_not_stored": len(set(sent) - set(stored)),
            "rejected": other["rejected"], "gave_up": len(res["errors"]), "connect_s": round(res["connect_s"], 1),
            "publish_s": round(pub_end - first, 2), "stored_s": round(last - first, 2),
            "stored_per_s": round(n / (last - first), 1) if n and last > first else None,
            "latency_p50_ms": _ms(percentile(lat, 50)), "latency_p99_ms": _ms(percentile(lat, 99)),
            "collector_cpu_s": round(cpu, 2), "stored_per_collector_cpu_s": round(n / cpu, 1) if cpu else None,
            "broker_cpu_s": round(broker_cpu, 2), "fleet_cpu_s": round(fleet_cpu, 2),
            # CPU per stored summary of each part (handshakes and start-up included), and what two
            # cores with nothing else on them would bound the chain to
            "us_per_summary": {k: round(v * 1e6 / n) if n else None for k, v in
                               (("collector", cpu), ("broker", broker_cpu), ("fleet", fleet_cpu))},
            "ceiling_2_free_cores_per_s": round(2 * n / (cpu + broker_cpu + fleet_cpu)) if n else None,
            "us_per_summary_publishing": {k: round(v * 1e6 / n) if n else None for k, v in ph.items()},
            "ceiling_2_free_cores_publishing_per_s": round(2 * n / sum(ph.values())) if n and sum(ph.values()) else None,
            "load_before": round(load0, 2),
            "load_after": round(os.getloadavg()[0], 2)}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--json", action="store_true")
    p.add_argument("--devices", type=int)
    p.add_argument("--per-device", type=int)
    p.add_argument("--steady-rate", type=float, help="summaries/s offered in the steady run (default 1000)")
    p.add_argument("--backends", default=None, help="comma-separated: sqlite,postgresql")
    p.add_argument("--pg-collectors", type=int, default=1, help="collectors sharing the stream on PostgreSQL")
    p.add_argument("--baseline", metavar="DIR", help="another checkout (e.g. the main branch's): each run is "
                   "made with its collector too, right after ours, under the same load")
    p.add_argument("--kinds", default="flood,steady", help="comma-separated: flood,steady")
    a = p.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stop the servers it started on the way out
    devices = a.devices or (40 if a.quick else 1000)
    per_device = a.per_device or (3 if a.quick else 10)
    steady = a.steady_rate or (200.0 if a.quick else 1000.0)
    backends = (a.backends or ("sqlite" if a.quick else "sqlite,postgresql")).split(",")
    folder = Path(tempfile.mkdtemp(prefix="civicmote-bench-intake-"))
    pg = None
    rows = []
    try:
        t = time.monotonic()
        city = FleetCity.create(folder / "fleet", devices)
        signed = presign(city, per_device)
        setup_s = time.monotonic() - t
        anchor = verify_only(city, signed)
        if "postgresql" in backends:
            reason = PgServer.available()
            if reason:
                print("postgresql: skipped (%s)" % reason, file=sys.stderr)
                backends.remove("postgresql")
            else:
                pg = PgServer().start()
        for backend in backends:
            n = a.pg_collectors if backend == "postgresql" else 1
            for kind in a.kinds.split(","):
                rate = 50000.0 if kind == "flood" else steady
                for code in ([None, a.baseline] if a.baseline else [None]):
                    tag = "%s-%s-%s" % (backend, kind, "baseline" if code else "this")
                    store = pg.new_database() if backend == "postgresql" else str(folder / ("%s.db" % tag))
                    r = one_run(city, folder, store, rate, per_device, n, tag, code)
                    r.update(backend=backend, kind=kind, code="baseline" if code else "this")
                    r["x_verify_only"] = round((r["stored_per_s"] or 0) / anchor["per_s"], 2)
                    rows.append(r)
    finally:
        if pg:
            pg.stop()
        shutil.rmtree(folder, ignore_errors=True)
    doc = {"devices": devices, "per_device": per_device, "cpus": os.cpu_count(), "setup_s": round(setup_s, 1),
           "verify_only": anchor, "rows": rows}
    if not a.json:
        print("%d devices x %d summaries, mutual TLS, Mosquitto, 1 collector per store unless said, %d CPUs "
              "shared by everything" % (devices, per_device, os.cpu_count()))
        print("anchor, verify only (this process): %s/s wall, %s per CPU-second"
              % (anchor["per_s"], anchor["per_cpu_s"]))
        print("%-10s %-8s %-6s %4s %8s %9s %8s %8s %8s %9s %6s %17s %11s" % (
            "store", "code", "run", "coll", "offered", "stored/s", "x verify", "p50 ms", "p99 ms", "per cpu-s",
            "lost", "us coll/brk/fleet", "load"))
        for r in rows:
            us = r["us_per_summary_publishing"]
            print("%-10s %-8s %-6s %4d %8s %9s %8.2f %8s %8s %9s %6d %17s %5s-%s" % (
                r["backend"], r["code"], r["kind"], r["collectors"],
                "flood" if r["kind"] == "flood" else int(r["rate_offered"]), r["stored_per_s"], r["x_verify_only"],
                r["latency_p50_ms"], r["latency_p99_ms"], r["stored_per_collector_cpu_s"], r["acked_not_stored"],
                "%s/%s/%s" % (us["collector"], us["broker"], us["fleet"]), r["load_before"], r["load_after"]))
    print(json.dumps(doc))
    lost = sum(r["acked_not_stored"] + r["published_acked"] - r["stored"] for r in rows)
    return 1 if lost else 0


if __name__ == "__main__":
    sys.exit(main())
