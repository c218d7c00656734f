"""The fleet simulator end to end: N devices -> Mosquitto (mutual TLS) -> K collectors -> store (CPython only).

    python -m provisioning.demo.fleet_run --devices 2000 --rate 400 --summaries 2 --collectors 2 \
        [--store postgresql://...] [--out DIR] [--json]

Makes a CA and the fleet (provisioning/demo/fleet.py), writes the broker's configuration with
`broker-config`'s code (so the same ACL and CRL rules hold), starts Mosquitto on a free loopback
port and K `civicmote collect --share fleet` processes on one store (SQLite in DIR by default),
publishes, waits until the store holds every acknowledged summary (or stops growing), and
reports what the city stored: counts, any acknowledged summary not stored, stored per second,
publish -> stored latency percentiles (from the store's received_at), and the collectors' CPU.
"""
import argparse
import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from provisioning.city.store_pg import is_url, open_store, redact
from provisioning.demo.fleet import FleetCity, publish

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_port(port, proc, timeout=10.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            if proc.poll() is not None:
                break
            time.sleep(0.05)
    raise RuntimeError("mosquitto did not listen on %d" % port)


def percentile(values, p):
    if not values:
        return None
    v = sorted(values)
    return v[min(len(v) - 1, int(round(p / 100.0 * (len(v) - 1))))]


def _reap(proc, sig=signal.SIGTERM, timeout=20.0):
    """Stop a child and return its CPU seconds (user + system), from wait4's rusage."""
    if proc.returncode is not None:
        return 0.0  # already reaped (it died early): its CPU is unknown
    proc.send_signal(sig)
    end = time.monotonic() + timeout
    while True:
        try:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        except ChildProcessError:
            return 0.0
        if pid:
            proc.returncode = os.waitstatus_to_exitcode(status)
            proc.peak_rss_kb = usage.ru_maxrss
            return usage.ru_utime + usage.ru_stime
        if time.monotonic() > end:
            proc.kill()
            end += 5
        time.sleep(0.05)


def _collector(city, port, store, i, folder):
    out = open(Path(folder) / ("collector-%d.out" % i), "wb")
    err_path = Path(folder) / ("collector-%d.err" % i)
    b = city.broker_dir
    proc = subprocess.Popen(
        [sys.executable, "-m", "provisioning.cli", "collect", "--broker", "mqtts://localhost:%d" % port,
         "--registry", city.export, "--tls-ca", str(b / "ca.crt"), "--tls-cert", str(b / "collector.crt"),
         "--tls-key", str(b / "collector.key"), "--store", store, "--share", "fleet", "--client-id",
         "fleet-collector-%d" % i, "--json"], stdout=out, stderr=open(err_path, "wb"))
    return proc, err_path


def _wait_connected(procs, timeout=30.0):
    end = time.monotonic() + timeout
    for proc, err_path in procs:
        while "connected to" not in err_path.read_text(errors="replace"):
            if proc.poll() is not None or time.monotonic() > end:
                raise RuntimeError("collector did not connect: %s" % err_path.read_text(errors="replace")[-500:])
            time.sleep(0.05)
    time.sleep(0.5)  # the SUBACKs


def _stored(store, sent, settle=10.0, timeout=600.0):
    """{(dev, seq): received_at} of the sent summaries, once all are stored or none came for `settle` s."""
    s = open_store(store)
    try:
        last, quiet, end = -1, time.monotonic(), time.monotonic() + timeout
        while time.monotonic() < end:
            n = s.db.execute("SELECT count(*) FROM summaries").fetchone()[0]
            if n >= len(sent):
                break
            if n != last:
                last, quiet = n, time.monotonic()
            elif time.monotonic() - quiet > settle:
                break
            time.sleep(0.1)
        rows = s.db.execute("SELECT device_id, seq, received_at FROM summaries").fetchall()
        other = {t: s.db.execute("SELECT count(*) FROM %s" % t).fetchone()[0] for t in ("manifests", "rejected")}
        devices = s.db.execute("SELECT count(*) FROM devices").fetchone()[0]
    finally:
        s.close()
    return {(r[0], r[1]): r[2] for r in rows}, other, devices


def run(folder, devices, rate, per_device, collectors=1, store=None, handshakes=64):
    folder = Path(folder)
    t = time.monotonic()
    city = FleetCity.create(folder, devices)
    setup_s = time.monotonic() - t
    port = free_port()
    city.broker_config(port, user="root" if os.geteuid() == 0 else None)
    store = store or str(folder / "city.db")
    broker = subprocess.Popen([MOSQUITTO, "-c", str(city.broker_dir / "mosquitto.conf")],
                              stdout=subprocess.DEVNULL, stderr=open(folder / "mosquitto.log", "wb"))
    procs = []
    try:
        _wait_port(port, broker)
        procs = [_collector(city, port, store, i, folder) for i in range(collectors)]
        _wait_connected(procs)
        res = asyncio.run(publish(city, "127.0.0.1", port, rate, per_device, handshakes=handshakes))
        stored, other, seen = _stored(store, res["published"])
    finally:
        cpu = [_reap(p) for p, _ in procs]
        broker_cpu = _reap(broker)
    sent = res["sent"]
    lat = [stored[k] - sent[k][0] for k in sent if k in stored]
    first = min((v[0] for v in sent.values()), default=0)
    last = max(stored.values(), default=first)
    n = len(lat)
    report = {"devices": devices, "collectors": collectors, "store": redact(store) if is_url(store) else "sqlite",
              "rate_asked": rate, "setup_s": round(setup_s, 2), "connect_s": round(res["connect_s"], 2),
              "gave_up": len(res["errors"]), "lost_connections": len(res["lost"]), "reconnects": res["reconnects"],
              "resends": res["resends"], "published": len(res["published"]), "published_acked": len(sent), "stored": n,
              "acked_not_stored": len(set(sent) - set(stored)), "devices_in_store": seen,
              "manifests_stored": other["manifests"], "rejected": other["rejected"],
              "stored_per_s": round(n / (last - first), 1) if n and last > first else None,
              "latency_p50_ms": _ms(percentile(lat, 50)), "latency_p99_ms": _ms(percentile(lat, 99)),
              "collector_cpu_s": round(sum(cpu), 2),
              "stored_per_collector_cpu_s": round(n / sum(cpu), 1) if sum(cpu) else None,
              "broker_cpu_s": round(broker_cpu, 2),
              "broker_peak_rss_mb": round(getattr(broker, "peak_rss_kb", 0) / 1024.0, 1),
              "errors": (res["errors"] + res["lost"])[:5]}
    return report


def _ms(v):
    return None if v is None else round(v * 1000, 1)


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m provisioning.demo.fleet_run", description=__doc__.split("\n")[0])
    p.add_argument("--devices", type=int, default=1000)
    p.add_argument("--rate", type=float, default=300.0, help="summaries per second, the whole fleet")
    p.add_argument("--summaries", type=int, default=2, help="summaries per device")
    p.add_argument("--collectors", type=int, default=1)
    p.add_argument("--store", help="postgresql:// URL (default: SQLite in the output folder)")
    p.add_argument("--out", help="folder for the CA, certificates, logs and store (default: a temporary one)")
    p.add_argument("--json", action="store_true")
    a = p.parse_args(argv)
    if min(a.devices, a.summaries, a.collectors) < 1 or a.rate <= 0:
        print("fleet: --devices, --summaries, --collectors and --rate must be positive", file=sys.stderr)
        return 2
    folder = a.out or tempfile.mkdtemp(prefix="civicmote-fleet-")
    try:
        report = run(folder, a.devices, a.rate, a.summaries, a.collectors, a.store)
    finally:
        if not a.out:
            shutil.rmtree(folder, ignore_errors=True)
    if a.json:
        print(json.dumps(report, sort_keys=True))
    else:
        for k, v in report.items():
            print("%-28s %s" % (k, v))
    return 0 if report["acked_not_stored"] == 0 and report["stored"] == report["published_acked"] else 1


if __name__ == "__main__":
    sys.exit(main())
