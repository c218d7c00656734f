"""The Flask application behind `civicmote web` (CPython only).

Public (what the QR code opens, and open data):
    /d/<id>                       the device's page (404 unknown, 410 revoked)
    /d/<id>/data.csv|.json        its values for a range (?day=YYYY-MM-DD or ?from=&to=; default 24 h)
    /d/<id>/messages.zip          its signed messages for a range, its manifest, key and how to verify
    /d/<id>/manifest.cose|.json   its signed manifest;  /d/<id>/public-key.hex  its key
    /district/<name>/data.csv|.json   every device of a district for a range
    /sta/v1.1/...                 the same data as OGC SensorThings API v1.1, read only (web/sta/)
Operators (loopback clients only, unless the request carries the access token):
    /fleet, /fleet.json, /metrics (Prometheus)
A request that came through a proxy (it carries Forwarded or X-Forwarded-For) is never taken for
loopback, so a city that publishes the page through its web server does not publish the fleet.
"""
import hmac
import ipaddress
import json
import time
from pathlib import Path
from zoneinfo import ZoneInfo

from flask import Flask, Response, abort, g, render_template, request

from agent.core.identity import is_device_id
from provisioning.errors import UsageError
from provisioning.language import catalogue
from provisioning.web import exports, fleet, fleet_ota, page
from provisioning.web.query import CityData
from provisioning.web.sta import routes as sta

HERE = Path(__file__).resolve().parent
SECURITY_HEADERS = {
    # Everything the page needs comes from this server; inline SVG needs no script at all.
    "Content-Security-Policy": "default-src 'none'; style-src 'self'; img-src 'self' data:; "
                               "base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
}


class Settings:
    """store, registry (paths), lang (code or catalogue file), tz (IANA name), token (str or None),
    clock() -> Unix seconds, rollout (the rollout state's path, or None: no update columns)."""

    def __init__(self, store, registry=None, lang="en", tz="UTC", token=None, clock=time.time, rollout=None):
        self.store, self.registry, self.token, self.clock = store, registry, token or None, clock
        self.rollout = rollout
        try:
            self.tz = ZoneInfo(tz)
        except Exception:
            raise UsageError("--timezone %s: not an IANA time zone (e.g. Europe/Berlin, UTC)" % tz)
        self.default = catalogue.load(lang)
        self.catalogues = {c: catalogue.load(c) for c in catalogue.SHIPPED}
        self.catalogues[self.default.code] = self.default


def create_app(settings):
    app = Flask("provisioning.web", template_folder=str(HERE / "templates"), static_folder=str(HERE / "static"))
    app.config["SEND_FILE_MAX_AGE_DEFAULT"] = 3600

    def data():
        if "data" not in g:
            g.data = CityData(settings.store, settings.registry)
        return g.data

    @app.teardown_appcontext
    def _close(_exc):
        d = g.pop("data", None)
        if d is not None:
            d.close()

    @app.after_request
    def _headers(resp):
        resp.headers.update(SECURITY_HEADERS)
        return resp

    def cat():
        return settings.catalogues.get(request.args.get("lang") or "", settings.default)

    def render(template, status=200, **ctx):
        c = cat()
        langs = [(code, k.name) for code, k in settings.catalogues.items()]
        return render_template(template, t=c, lang=c.code, langs=langs, **ctx), status

    def operator():
        if _is_loopback(request) or _has_token(request, settings.token):
            return
        abort(401 if settings.token else 403)

    @app.errorhandler(400)
    def _bad(e):
        return Response(str(e.description) + "\n", 400, mimetype="text/plain")

    @app.errorhandler(401)
    def _unauth(e):
        return Response("the fleet view needs the access token (Authorization: Bearer TOKEN or ?token=)\n", 401,
                        {"WWW-Authenticate": "Bearer"}, mimetype="text/plain")

    @app.errorhandler(403)
    def _forbidden(e):
        return Response("the fleet view answers loopback clients only; start civicmote web with an access token "
                        "to open it to others\n", 403, mimetype="text/plain")

    def known(dev):
        if not is_device_id(dev) or (data().registry_record(dev) is None and data().device(dev) is None):
            return False
        return True

    def time_range():
        try:
            return exports.parse_range(request.args, settings.tz, settings.clock())
        except UsageError as e:
            abort(400, str(e))

    @app.route("/")
    def index():
        return render("index.html")

    @app.route("/d/<dev>")
    def device(dev):
        if not is_device_id(dev):
            return render("notfound.html", 404, device_id=dev)
        state, ctx = page.device_page(data(), dev, cat(), settings.tz, settings.clock())
        if state == "unknown":
            return render("notfound.html", 404, device_id=dev)
        return render("device.html", page.STATUS_CODES[state], **ctx)

    @app.route("/d/<dev>/data.<fmt>")
    def device_data(dev, fmt):
        if fmt not in ("csv", "json") or not known(dev):
            abort(404)
        t_from, t_to = time_range()
        rec = data().registry_record(dev) or data().device(dev) or {}
        rows = exports.value_rows(data(), [dev], t_from, t_to, {dev: rec.get("district") or ""})
        return _export(fmt, "device", dev, t_from, t_to, rows)

    @app.route("/district/<name>/data.<fmt>")
    def district_data(name, fmt):
        devs = data().district_devices(name)
        if fmt not in ("csv", "json") or not devs:
            abort(404)
        t_from, t_to = time_range()
        rows = exports.value_rows(data(), devs, t_from, t_to, {d: name for d in devs})
        return _export(fmt, "district", name, t_from, t_to, rows)

    def _export(fmt, scope, name, t_from, t_to, rows):
        stem = "%s-%s-%s" % (name, exports.iso(t_from)[:10], exports.iso(t_to)[:10])
        disp = {"Content-Disposition": 'attachment; filename="%s.%s"' % (stem, fmt)}
        if fmt == "csv":
            body = "".join(exports.csv_lines(rows))  # the connection closes per request; build it whole
            return Response(body, 200, disp, mimetype="text/csv; charset=utf-8")
        return Response(exports.json_text(scope, name, t_from, t_to, list(rows)), 200, disp,
                        mimetype="application/json")

    @app.route("/d/<dev>/messages.zip")
    def messages(dev):
        if not known(dev):
            abort(404)
        t_from, t_to = time_range()
        key = (data().registry_record(dev) or {}).get("public_key")
        body = exports.messages_zip(data(), dev, key, t_from, t_to)
        return Response(body, 200, {"Content-Disposition": 'attachment; filename="%s-messages.zip"' % dev},
                        mimetype="application/zip")

    @app.route("/d/<dev>/manifest.<fmt>")
    def manifest(dev, fmt):
        m = data().manifest(dev) if known(dev) and fmt in ("cose", "json") else None
        if m is None:
            abort(404)
        if fmt == "json":
            return Response(json.dumps(m[0], ensure_ascii=False, indent=1, sort_keys=True) + "\n", 200,
                            mimetype="application/json")
        return Response(m[1], 200, {"Content-Disposition": 'attachment; filename="manifest.cose"'},
                        mimetype="application/cose")

    @app.route("/d/<dev>/public-key.hex")
    def public_key(dev):
        key = (data().registry_record(dev) or {}).get("public_key") if known(dev) else None
        if not key:
            abort(404)
        return Response(key + "\n", 200, mimetype="text/plain")

    @app.route("/fleet")
    def fleet_view():
        operator()
        d = data()
        updates, rollouts = fleet_ota.read(settings.rollout)
        return render("fleet.html", rows=fleet_ota.add_to_rows(fleet.fleet_rows(d), updates), rollouts=rollouts,
                      rejections=d.rejected_by_reason(), held=d.held(), now=settings.clock(), tz=settings.tz)

    @app.route("/fleet.json")
    def fleet_json():
        operator()
        d = data()
        updates, rollouts = fleet_ota.read(settings.rollout)
        doc = {"devices": fleet_ota.add_to_rows(fleet.fleet_rows(d), updates), "rollouts": rollouts,
               "held": d.held(), "rejected": [
            {"reason": r, "device_id": dev, "count": n, "last": last} for r, dev, n, last in d.rejected_by_reason()]}
        return Response(json.dumps(doc, sort_keys=True) + "\n", 200, mimetype="application/json")

    @app.route("/metrics")
    def metrics():
        operator()
        text = fleet.metrics_text(data())
        if settings.rollout:
            text += fleet_ota.metrics_text(*fleet_ota.read(settings.rollout))
        return Response(text, 200, mimetype="text/plain; version=0.0.4; charset=utf-8")

    sta.register(app, data)  # /sta/v1.1: the same public data for SensorThings clients
    return app


def _is_loopback(req):
    if req.headers.get("Forwarded") or req.headers.get("X-Forwarded-For"):
        return False
    try:
        return ipaddress.ip_address(req.remote_addr or "").is_loopback
    except ValueError:
        return False


def _has_token(req, token):
    if not token:
        return False
    given = req.args.get("token") or ""
    auth = req.headers.get("Authorization") or ""
    if auth.startswith("Bearer "):
        given = auth[7:]
    return hmac.compare_digest(given.encode(), token.encode())
