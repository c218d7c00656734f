"""`civicmote web`: serve the devices' public pages, the fleet view, data exports and /metrics (CPython only)."""
import ipaddress
import os
import signal
import socket
from pathlib import Path

from provisioning.cli.common import add_command
from provisioning.errors import EnvironmentProblem, UsageError
from provisioning.pki.registry import default_path

TOKEN_ENV = "CIVICMOTE_WEB_TOKEN"


def register(sub, common):
    p = add_command(sub, "web", do_web, common,
                    "serve each device's public page (the label's QR code), the fleet view, CSV/JSON exports and "
                    "Prometheus /metrics",
                    "Serve, from the collector's store and the registry (both read only):\n"
                    "  /d/ID            the device's public page: what it measures, latest values, last 24 h, how to "
                    "verify\n"
                    "  /d/ID/data.csv   its values (also .json; ?day=YYYY-MM-DD or ?from=&to=), messages.zip, "
                    "manifest.cose, public-key.hex\n"
                    "  /district/NAME/data.csv   a district's values (also .json)\n"
                    "  /sta/v1.1        the same values as an OGC SensorThings API v1.1 endpoint, read only "
                    "(docs/interop.md)\n"
                    "  /fleet, /fleet.json, /metrics   for operators: loopback clients only, unless they bring the "
                    "access token (--token-file or $%s) as 'Authorization: Bearer TOKEN' or ?token=\n"
                    "Runs until SIGTERM or Ctrl-C." % TOKEN_ENV)
    p.add_argument("--store", required=True, metavar="FILE|URL",
                   help="the collector's store, as given to civicmote collect --store: a SQLite file or a "
                        "postgresql://user@host/db URL")
    p.add_argument("--registry", metavar="FILE", help="registry database (default $CIVICMOTE_REGISTRY or "
                                                      "./registry.db; contacts, keys and status come from it)")
    p.add_argument("--bind", default="127.0.0.1", metavar="ADDR", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8080, metavar="N", help="port (default 8080; 0 picks a free one)")
    p.add_argument("--lang", default="en", metavar="CODE|FILE",
                   help="the city's language: en or de, or a catalogue JSON file (see docs/web.md)")
    p.add_argument("--timezone", default="UTC", metavar="ZONE", help="the city's time zone (e.g. Europe/Berlin)")
    p.add_argument("--token-file", metavar="FILE", help="file holding the operators' access token (else $%s)"
                   % TOKEN_ENV)
    p.add_argument("--rollout", metavar="FILE", help="the rollout state (civicmote rollout serve's): the fleet "
                   "view then shows each device's installed release and last update, and every rollout")
    p.add_argument("--threads", type=int, default=4, metavar="N", help="worker threads (default 4)")


def _token(args):
    if args.token_file:
        try:
            token = Path(args.token_file).read_text().strip()
        except OSError as e:
            raise UsageError("--token-file %s: cannot read it (%s)" % (args.token_file, e.strerror))
        if len(token) < 16:
            raise UsageError("--token-file %s: the token must be at least 16 characters" % args.token_file)
        return token
    token = os.environ.get(TOKEN_ENV, "").strip()
    if token and len(token) < 16:
        raise UsageError("$%s: the token must be at least 16 characters" % TOKEN_ENV)
    return token or None


def _loopback(addr):
    try:
        return ipaddress.ip_address(addr).is_loopback
    except ValueError:
        return addr == "localhost"


def do_web(out, args):
    from provisioning.web.app import Settings, create_app
    from provisioning.city.store_pg import is_url, redact
    from provisioning.web.query import check_store

    if not 0 <= args.port <= 65535:
        raise UsageError("--port must be 0..65535")
    if args.threads < 1:
        raise UsageError("--threads must be at least 1")
    registry = args.registry or default_path()
    if not Path(registry).is_file():
        if args.registry:
            raise UsageError("%s: no registry here; point --registry at the city's registry" % registry)
        registry = None  # pages then lack contact, key and status: said below
    check_store(args.store)
    if args.rollout and not Path(args.rollout).is_file():
        raise UsageError("--rollout %s: no rollout state there (civicmote rollout start makes it)" % args.rollout)
    settings = Settings(args.store, registry, lang=args.lang, tz=args.timezone, token=_token(args),
                        rollout=args.rollout)
    app = create_app(settings)

    from waitress.server import create_server

    try:
        server = create_server(app, host=args.bind, port=args.port, threads=args.threads, ident="civicmote")
    except (OSError, socket.gaierror) as e:
        raise EnvironmentProblem("cannot listen on %s:%d (%s)" % (args.bind, args.port, e))
    host, port = server.effective_host, server.effective_port
    shown = "[%s]" % host if ":" in str(host) else host
    url = "http://%s:%d" % (shown, int(port))
    fleet = "token" if settings.token else "loopback only"
    store = redact(args.store) if is_url(args.store) else args.store
    out.record({"event": "serving", "url": url, "store": store, "registry": registry, "fleet": fleet,
                "lang": settings.default.code},
               lambda r: "serving %s (pages /d/ID, fleet %s/fleet: %s)%s" % (
                   r["url"], r["url"], r["fleet"], "" if registry else "; no registry: pages lack contact and key"))
    if not _loopback(args.bind) and not settings.token:
        out.note("note: listening on %s without an access token: /fleet and /metrics answer loopback clients only"
                 % args.bind)
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        server.run()
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
        server.close()
    return 0


def _interrupt(*_):
    raise KeyboardInterrupt  # SIGTERM stops the server as Ctrl-C does: exit 0
