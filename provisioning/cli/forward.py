"""`civicmote forward sensorthings URL`: push verified summaries into a city's SensorThings API server."""
import os
import signal
import time
from pathlib import Path

from provisioning.cli.common import add_group
from provisioning.errors import UsageError
from provisioning.pki.registry import default_path

PASSWORD_ENV = "CIVICMOTE_STA_PASSWORD"
UNIT_NAME = "civicmote-forward-sensorthings.service"
EXIT_HELP = """exit codes:
  0    everything stored was forwarded (or --follow was stopped by SIGTERM or Ctrl-C)
  1    the server refused a batch (a 4xx, or a row answered "error"); nothing of it was acknowledged
  2    usage or bad input (arguments, store, registry, state file of another server)
  3    the server stayed unreachable for --max-wait seconds, or the state file cannot be written
  130  interrupted"""


def register(sub, common):
    import argparse

    group = add_group(sub, "forward", "forward verified summaries to a city's data platform")
    p = group.add_parser(
        "sensorthings", parents=[common], help="push newly stored summaries into an OGC SensorThings API server",
        description="Push the collector's verified summaries into a city's OGC SensorThings API v1.1 server "
                    "(FROST-Server and others): create a Thing (with its Location), Sensor, ObservedProperties "
                    "and one Datastream per metric x statistic x window once, remember their ids in --state, "
                    "then send each device's summaries in seq order as CreateObservations dataArray batches. "
                    "Only released values become Observations (as on the device's page and in its CSV export). "
                    "A batch is acknowledged in --state only when the server took every row; after a crash or "
                    "a lost answer the next run asks the server what it already holds, so nothing is sent twice. "
                    "While the server is down it waits (1, 2, 4 ... 60 s) and tries again. Progress goes to "
                    "stderr (JSON lines on stdout with --json).\n\n" + EXIT_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.set_defaults(handler=do_forward_sensorthings)
    p.add_argument("url", metavar="URL", help="the server's v1.1 service root, e.g. "
                                              "https://sta.city.example/FROST-Server/v1.1")
    p.add_argument("--store", required=True, metavar="FILE|URL", help="the collector's store (SQLite file or "
                                                                       "postgresql:// URL), read only")
    p.add_argument("--registry", metavar="FILE", help="registry database, for each Thing's place and key "
                                                      "(default $CIVICMOTE_REGISTRY or ./registry.db if present)")
    p.add_argument("--state", required=True, metavar="FILE", help="where the server's ids and each device's last "
                                                                   "acknowledged seq are kept (one per server)")
    p.add_argument("--batch", type=int, default=200, metavar="N", help="summaries per CreateObservations request "
                                                                       "(default 200)")
    p.add_argument("--follow", action="store_true", help="keep forwarding what the collector stores, every "
                                                         "--interval seconds, until SIGTERM")
    p.add_argument("--interval", type=float, default=30.0, metavar="S", help="with --follow: seconds between "
                                                                             "passes (default 30)")
    p.add_argument("--max-wait", type=float, metavar="S", help="give up (exit 3) after waiting S seconds in a row "
                   "for the server (default: 600; with --follow, forever)")
    p.add_argument("--page-url", metavar="URL", help="civicmote web's public address: each Observation then "
                   "links to its signed message, each Sensor to its manifest")
    p.add_argument("--phenomenon-time", choices=("interval", "end"), default="interval",
                   help="interval: the window t0/t1 (the standard); end: its end only, the interval in "
                        "parameters.window, for servers that store only instants")
    p.add_argument("--user", metavar="NAME", help="HTTP basic user for the server (password from $%s)"
                   % PASSWORD_ENV)
    p.add_argument("--systemd-unit", metavar="DIR", help="write %s for these arguments into DIR (next to the "
                   "collector's units) and exit" % UNIT_NAME)


def do_forward_sensorthings(out, args):
    from provisioning.city import units
    from provisioning.forward.sensorthings import Forwarder
    from provisioning.forward.forward_state import ForwardState
    from provisioning.forward.sta_client import StaClient
    from provisioning.web.query import CityData, check_store

    if not args.url.startswith(("http://", "https://")):
        raise UsageError("URL %s: give the server's service root, http(s)://HOST/.../v1.1" % args.url)
    if args.batch < 1 or args.batch > 10000:
        raise UsageError("--batch must be 1..10000")
    if args.interval <= 0 or (args.max_wait is not None and args.max_wait < 0):
        raise UsageError("--interval must be > 0 and --max-wait >= 0")
    registry = args.registry or default_path()
    if not Path(registry).is_file():
        if args.registry:
            raise UsageError("%s: no registry here; point --registry at the city's registry" % registry)
        registry = None
    if args.systemd_unit:
        text = units.forward_unit(args.url, args.store, os.path.abspath(args.state), registry and
                                  os.path.abspath(registry), args.page_url, args.phenomenon_time == "end")
        path = Path(args.systemd_unit) / UNIT_NAME
        try:
            path.write_text(text)
        except OSError as e:
            raise UsageError("--systemd-unit %s: cannot write %s (%s)" % (args.systemd_unit, UNIT_NAME, e.strerror))
        out.record({"event": "unit", "path": str(path)}, lambda r: "wrote %s" % r["path"])
        return 0
    check_store(args.store)
    state = ForwardState(args.state, args.url.rstrip("/"))
    client = StaClient(args.url, args.user, os.environ.get(PASSWORD_ENV))
    max_wait = args.max_wait if args.max_wait is not None else (None if args.follow else 600.0)
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        while True:
            data = CityData(args.store, registry)
            try:
                totals = _pass(out, Forwarder(data, client, state, batch=args.batch,
                                              instant=args.phenomenon_time == "end", page_url=args.page_url or "",
                                              max_wait=max_wait, progress=_reporter(out)))
            finally:
                data.close()
            if not args.follow:
                out.record(dict(totals, event="done"), _human_totals)
                return 0
            if totals["observations"]:
                out.record(dict(totals, event="pass"), _human_totals)
            time.sleep(args.interval)
    except KeyboardInterrupt:
        if args.follow:
            return 0
        raise
    finally:
        signal.signal(signal.SIGTERM, previous)


def _pass(out, forwarder):
    backlog = forwarder.backlog()
    if backlog:
        out.note("forwarding %d summaries" % backlog)
    totals = forwarder.run()
    totals["backlog"] = backlog
    return totals


def _human_totals(r):
    return "forwarded %d observations of %d summaries in %.1f s%s" % (
        r["observations"], r["summaries"], r["seconds"], " (%d/s)" % r["per_second"] if r.get("per_second") else "")


def _reporter(out):
    last = [0.0]

    def report(event):
        if event["event"] == "waiting":
            out.note("waiting %d s for the SensorThings server: %s" % (event["retry_in"], event["reason"]))
        elif time.monotonic() - last[0] >= 2.0:  # long catch-ups: a line every 2 s, not per batch
            last[0] = time.monotonic()
            out.note("forwarded %d observations (%d summaries; %s at seq %d)" % (
                event["total"], event["summaries"], event["device_id"], event["seq"]))
        if out.json:
            out.record(event)
    return report


def _interrupt(*_):
    raise KeyboardInterrupt
