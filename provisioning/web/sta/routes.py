"""civicmote web's read-only OGC SensorThings API v1.1 endpoint under /sta/v1.1 (CPython only).

    /sta/v1.1                              service root: the entity sets, serverSettings.conformance
    /sta/v1.1/SET                          a collection (query options: see odata.py)
    /sta/v1.1/SET('ID')                    one entity;  /sta/v1.1/SET('ID')/PROPERTY[/$value]
    /sta/v1.1/SET('ID')/NAV                the entity or collection it links to
    /d/<id>/messages/<seq>.cose            the signed message an Observation came from

Collections page with @iot.nextLink (odata.DEFAULT_TOP a page unless $top, at most odata.MAX_TOP).
It serves what the public pages serve, from the same store: the released values and the
devices' public facts, never the fleet view's counters. Bad input gets a 400 whose OData-style
error names the option: {"error": {"code": "400", "message": "$top: ...", "target": "$top"}}.
"""
import json
import re
from urllib.parse import urlencode

from flask import Response, request

from agent.core.identity import is_device_id
from provisioning.web import query as store_query
from provisioning.web.sta import odata
from provisioning.web.sta.entities import SETS, Source

PREFIX = "/sta/v1.1"
CONFORMANCE = ["http://www.opengis.net/spec/iot_sensing/1.1/req/datamodel",
               "http://www.opengis.net/spec/iot_sensing/1.1/req/resource-path/resource-path-to-entities",
               "http://www.opengis.net/spec/iot_sensing/1.1/req/request-data"]
EXPAND_TOP = 100  # entities of an expanded collection, the rest behind NAV@iot.nextLink
_SEGMENT = re.compile(r"^([A-Za-z]+)(?:\('((?:[^']|'')*)'\))?$")


class NotFound(Exception):
    pass


def register(app, data):
    """Add the endpoint to a Flask app; data() -> the request's query.CityData."""

    @app.route(PREFIX, strict_slashes=False)
    def sta_root():
        base = _base()
        doc = {"serverSettings": {"conformance": CONFORMANCE},
               "value": [{"name": n, "url": "%s/%s" % (base, n)} for n in SETS]}
        return _json(doc)

    @app.route(PREFIX + "/<path:path>")
    def sta_path(path):
        try:
            return _json(_serve(Source(data(), _base()), path))
        except odata.QueryError as e:
            return _error(400, str(e), e.option)
        except NotFound as e:
            return _error(404, str(e) or "no such entity", path)

    @app.route("/d/<dev>/messages/<int:seq>.cose")
    def signed_message(dev, seq):
        body = store_query.message(data(), dev, seq) if is_device_id(dev) else None
        if body is None:
            return Response("no such message\n", 404, mimetype="text/plain")
        return Response(body, 200, {"Content-Disposition": 'attachment; filename="%s-%d.cose"' % (dev, seq)},
                        mimetype="application/cose")


def _base():
    return request.host_url.rstrip("/") + PREFIX


def _json(doc):
    if isinstance(doc, Response):
        return doc
    return Response(json.dumps(doc, ensure_ascii=False, separators=(",", ":")), 200,
                    mimetype="application/json")


def _error(status, message, target):
    doc = {"error": {"code": str(status), "message": message, "target": target}}
    return Response(json.dumps(doc), status, mimetype="application/json")


def _serve(src, path):
    segments = path.strip("/").split("/")
    m = _SEGMENT.match(segments[0])
    if not m or m.group(1) not in SETS:
        raise NotFound("%s is not an entity set (%s)" % (segments[0], ", ".join(SETS)))
    name, ident = m.group(1), m.group(2)
    if ident is None:
        if len(segments) > 1:
            raise NotFound("address one entity, SET('ID'), before a property")
        return _page(src, name, src.collection(name, _query(name)), _query(name), request.base_url)
    entity = src.entity(name, ident.replace("''", "'"))
    if entity is None:
        raise NotFound("%s('%s') does not exist" % (name, ident))
    if len(segments) == 1:
        return _render(src, name, entity, _query(name))
    props, navs = SETS[name]
    part = segments[1]
    if part in navs:
        if len(segments) > 2:
            raise NotFound("one navigation step is served")
        target, many = navs[part]
        q = _query(target)
        found = src.related(name, entity, part, q)
        if not many:
            if found is None:
                raise NotFound("%s('%s') has no %s" % (name, ident, part))
            return _render(src, target, found, q)
        return _page(src, target, found, q, request.base_url)
    if part in props or part in ("@iot.id", "id"):
        value = entity["@iot.id" if part == "id" else part]
        if len(segments) == 3 and segments[2] == "$value":
            return Response(value if isinstance(value, str) else json.dumps(value), 200, mimetype="text/plain")
        if len(segments) > 2:
            raise NotFound("only $value follows a property")
        return {part: value}
    raise NotFound("%s has no property or link %s" % (name, part))


def _query(name):
    props, navs = SETS[name]
    return odata.parse(request.args, props + ("@iot.id", "id"), tuple(navs))


def _page(src, name, items, q, url):
    """A collection page: value, @iot.count when asked, @iot.nextLink when more follow."""
    doc = {}
    if q.count:
        items = list(items)
        doc["@iot.count"] = len(items)
        chosen = items[q.skip:q.skip + q.top + 1]
    else:
        chosen = []
        for i, e in enumerate(items):
            if i >= q.skip:
                chosen.append(e)
            if len(chosen) > q.top:
                break
    more = len(chosen) > q.top
    doc["value"] = [_render(src, name, e, q) for e in chosen[:q.top]]
    if more:
        args = request.args.to_dict()
        args["$skip"], args["$top"] = str(q.skip + q.top), str(q.top)
        doc["@iot.nextLink"] = url + "?" + urlencode(args, safe="$'(),/:")
    return doc


def _render(src, name, entity, q):
    """An entity's JSON: its properties, @iot.id, @iot.selfLink, navigation links, $select, $expand."""
    self_link = "%s/%s('%s')" % (src.base, name, entity["@iot.id"].replace("'", "''"))
    props, navs = SETS[name]
    out = {"@iot.id": entity["@iot.id"], "@iot.selfLink": self_link}
    for p in props:
        if p in entity:
            out[p] = entity[p]
    for nav in navs:
        out[nav + "@iot.navigationLink"] = "%s/%s" % (self_link, nav)
    for nav in q.expand:
        target, many = navs[nav]
        sub = odata.Query()
        if many:
            found = list(_take(src.related(name, entity, nav, sub), EXPAND_TOP + 1))
            out[nav] = [_render(src, target, e, sub) for e in found[:EXPAND_TOP]]
            if len(found) > EXPAND_TOP:
                out[nav + "@iot.nextLink"] = "%s/%s?$skip=%d" % (self_link, nav, EXPAND_TOP)
        else:
            found = src.related(name, entity, nav, sub)
            out[nav] = _render(src, target, found, sub) if found is not None else None
    if q.select is not None:
        keep = set(q.select) | set(q.expand)
        out = {k: v for k, v in out.items() if k in keep or (k.split("@")[0] in keep and "@" in k)
               or (k == "@iot.id" and "id" in keep)}
    return out


def _take(items, n):
    for i, e in enumerate(items):
        if i >= n:
            return
        yield e
