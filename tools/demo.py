"""make demo: three simulated street sensors -> a local Mosquitto -> the city's verifying collector.

Everything goes through the documented commands (ca init, provision, broker-config, registry
export, run) except the live table, which drives the collector's Python API so it can draw.
All files go to demo-out/ (recreated on each run); everything started is stopped at the end.

The broker is Mosquitto when it can be found. Without it, or with CIVICMOTE_DEMO_BROKER=embedded,
the demo runs the embedded amqtt broker (provisioning/city/embedded_broker.py) on the same
broker-config files, and says so; CIVICMOTE_DEMO_BROKER=mosquitto refuses to fall back.
"""
import importlib.util
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
BIN = Path(sys.executable).parent
CIVICMOTE = str(BIN / "civicmote")
WORK = ROOT / "demo-out"
BOARD = ROOT / "boards" / "sim.json"
DISTRICTS = ("north", "harbour", "old-town")
WINDOWS = 10
DEADLINE_S = 100  # the whole demo must finish within two minutes
WEB_PORT = 8080  # civicmote web's default port, where the printed address points

from rich.console import Console  # noqa: E402
from rich.live import Live  # noqa: E402
from rich.table import Table  # noqa: E402

console = Console(highlight=False, soft_wrap=True)


def civicmote(*args, env=None):
    r = subprocess.run([CIVICMOTE, *map(str, args), "--json"], capture_output=True, text=True, env=env)
    if r.returncode != 0:
        raise SystemExit("demo: civicmote %s failed (exit %d): %s" % (" ".join(map(str, args[:2])), r.returncode,
                                                                     r.stderr.strip()))
    return r.stdout


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, proc, name, log, timeout=10):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise SystemExit("demo: %s exited (%d): %s" % (name, proc.returncode, Path(log).read_text()[-2000:]))
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit("demo: %s did not start listening on port %d" % (name, port))


def mosquitto_path():
    for p in (shutil.which("mosquitto"), "/usr/sbin/mosquitto"):
        if p and os.path.exists(p):
            return p
    return None


def pick_broker():
    """-> (kind, mosquitto path or None, why): Mosquitto if it can be had, else the embedded amqtt broker."""
    want = os.environ.get("CIVICMOTE_DEMO_BROKER") or "auto"
    if want not in ("auto", "mosquitto", "embedded"):
        raise SystemExit("demo: CIVICMOTE_DEMO_BROKER=%s: expected mosquitto, embedded or auto" % want)
    path = mosquitto_path() if want != "embedded" else None
    if path:
        return "mosquitto", path, None
    if want == "mosquitto":
        raise SystemExit("demo: CIVICMOTE_DEMO_BROKER=mosquitto but Mosquitto is missing; "
                         "run 'make setup' as root, or: sudo apt-get install mosquitto")
    why = "forced by CIVICMOTE_DEMO_BROKER=embedded" if want == "embedded" else "Mosquitto was not found"
    if importlib.util.find_spec("amqtt") is None:
        raise SystemExit("demo: %s and the embedded broker (amqtt) is not installed either; run 'make setup' "
                         "(sudo for Mosquitto), or: %s -m pip install amqtt" % (why, sys.executable))
    return "embedded", None, why


def start_broker(kind, path, port):
    """Start the broker on broker-config's folder; -> (process, name, log path)."""
    bdir = WORK / "broker"
    if kind == "mosquitto":
        log, cmd, name = bdir / "mosquitto.log", [path, "-c", str(bdir / "mosquitto.conf")], "mosquitto"
    else:
        log, name = bdir / "embedded-broker.log", "the embedded broker"
        cmd = [sys.executable, "-m", "provisioning.city.embedded_broker", "--dir", str(bdir), "--port", str(port),
               "--bind", "127.0.0.1"]
    with open(log, "w") as f:
        proc = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, cwd=ROOT)
    return proc, name, log


def broker_label(kind, path, why):
    if kind == "mosquitto":
        return "Mosquitto (%s)" % path
    from importlib.metadata import version

    return "embedded amqtt %s broker, %s" % (version("amqtt"), why)


def show_page(dev, env, procs):
    """Serve the city's store with `civicmote web` for a moment, fetch the device's page as a browser
    would, write its label pointing there, and say how to open it; -> the lines to print last."""
    import urllib.request

    port = free_port()
    log = WORK / "web.log"
    with open(log, "w") as f:
        web = subprocess.Popen([CIVICMOTE, "web", "--store", str(WORK / "city.db"), "--registry",
                                str(WORK / "registry.db"), "--port", str(port)], stdout=f, stderr=subprocess.STDOUT,
                               env=env)
    procs.append(web)
    try:
        wait_port(port, web, "civicmote web", log)
        with urllib.request.urlopen("http://127.0.0.1:%d/d/%s" % (port, dev), timeout=10) as r:
            html = r.read().decode()
            status = r.status
    finally:
        web.send_signal(signal.SIGTERM)
        web.wait(timeout=5)
    base = "http://127.0.0.1:%d" % WEB_PORT
    svg = WORK / ("label-%s.svg" % dev)
    civicmote("label", dev, "--out", svg, "--url-base", base, "--contact", "sensors@city.example (demo)", env=env)
    return ("Device %s's public page (checked just now: HTTP %d, %d bytes, %d charts); "
            "its label %s holds this address in its QR code. To open it:\n"
            "   %s web --store %s --registry %s\n"
            "   [bold]%s/d/%s[/bold]" % (dev, status, len(html.encode()), html.count('<svg class="chart'),
                                        svg.relative_to(ROOT), Path(CIVICMOTE).relative_to(ROOT)
                                        if Path(CIVICMOTE).is_relative_to(ROOT) else CIVICMOTE,
                                        (WORK / "city.db").relative_to(ROOT), (WORK / "registry.db").relative_to(ROOT),
                                        base, dev))


def main():
    t_start = time.monotonic()
    shutil.rmtree(WORK, ignore_errors=True)
    WORK.mkdir()
    env = dict(os.environ, CIVICMOTE_CA_PASSPHRASE="demo-only-passphrase",
               CIVICMOTE_REGISTRY=str(WORK / "registry.db"))
    port = free_port()
    broker = "mqtts://localhost:%d" % port
    kind, mosq_path, why = pick_broker()
    label = broker_label(kind, mosq_path, why)
    procs = []
    try:
        console.rule("[bold]civicmote demo[/bold]: privacy-first city sensors")
        console.print("Broker: [bold]%s[/bold]" % label)
        civicmote("ca", "init", "--dir", WORK / "ca", env=env)
        console.print("1. The city's provisioning CA: [cyan]%s[/cyan] (key encrypted with a passphrase)" % (WORK / "ca"))
        devices = []
        for i, district in enumerate(DISTRICTS):
            d = WORK / "devices" / district
            rec = json.loads(civicmote("provision", "--board", BOARD, "--district", district, "--target", d,
                                       "--broker", broker, "--ca", WORK / "ca", env=env))
            devices.append((rec["device_id"], district, d))
        console.print("2. Provisioned %d simulated devices; each made its own key, proved it holds it, and got a "
                      "certificate:" % len(devices))
        for dev, district, d in devices:
            console.print("   [green]%s[/green]  district %-9s  %s" % (dev, district, d.relative_to(ROOT)))
        user = ["--user", "root"] if os.geteuid() == 0 else []
        civicmote("broker-config", "--ca", WORK / "ca", "--out", WORK / "broker", "--port", port,
                  "--bind", "127.0.0.1", *user, env=env)
        proc, name, log = start_broker(kind, mosq_path, port)
        procs.append(proc)
        wait_port(port, proc, name, log)
        if kind == "mosquitto":
            console.print("3. Mosquitto on 127.0.0.1:%d: mutual TLS only, each device may publish under its own id "
                          "only, the collector reads and never writes" % port)
        else:
            console.print("3. Embedded broker (amqtt, %s) on 127.0.0.1:%d, run from broker-config's files: mutual "
                          "TLS only, each device may publish under its own id only, the collector reads and never "
                          "writes (broker-config's acl, enforced by provisioning/city/embedded_broker.py).\n"
                          "   [yellow]A stand-in for this demo only: the real city broker is Mosquitto with "
                          "`civicmote broker-config`.[/yellow]" % (why, port))
        export = WORK / "registry.json"
        export.write_text(civicmote("registry", "export", env=env))

        from provisioning.demo.view import CollectorFeed

        # amqtt speaks MQTT 3.1.1 only; Mosquitto, the city's broker, MQTT 5
        feed = CollectorFeed(export, "localhost", port, WORK / "broker", WORK / "city.db",
                             protocol=5 if kind == "mosquitto" else "3.1.1")
        # The simulated morning rush of today, 07:15-08:05 UTC: it crosses 08:00, where the hourly
        # people counts come out, late enough that the live table's last rows still show them.
        start = int(time.time())
        start = start - start % 86400 + 7 * 3600 + 15 * 60
        for dev, district, d in devices:
            p = subprocess.Popen([CIVICMOTE, "run", "--device-dir", str(d), "--fast", "--windows", str(WINDOWS),
                                  "--start", str(start), "--drain", "20", "--json"],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
            procs.append(p)
        console.print("4. Running the 3 devices for %d five-minute windows each on a simulated clock (this "
                      "morning's rush hour); the city's collector verifies every signed summary as it arrives:\n"
                      % WINDOWS)
        expected = WINDOWS * len(devices)
        rows = []
        live = Live(console=console, refresh_per_second=8) if console.is_terminal else None
        if live:
            live.start()
        try:
            while time.monotonic() - t_start < DEADLINE_S:
                for ev in feed.poll(wait=0.1):
                    if ev["event"] == "summary":
                        rows.append(ev)
                        if live is None:
                            console.print(feed.line(ev))
                    elif ev["event"] in ("rejected", "gap"):
                        console.print("   [red]%s[/red]" % json.dumps(ev, sort_keys=True))
                if live:
                    live.update(feed.table(rows[-12:], expected, len(rows)))
                if len(rows) >= expected and all(p.poll() is not None for p in procs[1:]):
                    break
        finally:
            if live:
                live.stop()
        for p in procs[1:]:
            try:
                p.wait(timeout=max(1, DEADLINE_S - (time.monotonic() - t_start)))
            except subprocess.TimeoutExpired:
                p.kill()
        dev0, district0, d0 = devices[0]
        manifest_text = feed.manifest_text(dev0)
        counts_line = feed.counts_explained(dev0)
        stats = feed.stop()
        ok = len(rows)
        console.print("\n   [bold]%d of %d[/bold] summaries received, signature and device checked against the "
                      "registry; %d duplicates removed, %d rejected." % (ok, expected, stats["duplicates"],
                                                                      stats["rejected"]))
        console.print("   People and phones are counted per hour (the 08:00 rows). %s" % counts_line)

        console.rule("What device %s tells residents it collects (its signed manifest)" % dev0)
        console.print(manifest_text)
        console.rule("Bytes")
        sent = sum(ev["bytes"] for ev in rows)
        # Raw streaming measured over one window of the same street, times the windows run.
        raw = feed.raw_stream_bytes(BOARD, 300, start) * WINDOWS * len(devices)
        console.print("Signed summaries received: [bold]%d bytes[/bold] (%d bytes each on average)."
                      % (sent, sent // max(1, ok)))
        console.print("Streaming the raw samples at their read rates as JSON would have sent [bold]%d bytes[/bold], "
                      "%.0fx more, and with them every phone's Bluetooth address." % (raw, raw / max(1, sent)))
        console.print("\nBroker used: %s." % label)
        page = show_page(dev0, env, procs)
        console.print("Files are in %s (devices, CA, broker config, city.db, the label). %d s in all." % (
            WORK.relative_to(ROOT), time.monotonic() - t_start))
        if ok < expected:
            raise SystemExit("demo: only %d of %d summaries arrived" % (ok, expected))
        console.rule("The page behind the label's QR code")
        console.print(page)
    finally:
        for p in reversed(procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    p.kill()


if __name__ == "__main__":
    main()
