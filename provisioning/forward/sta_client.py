"""A small HTTP client for writing into a city's SensorThings API v1.1 server (CPython only).

Standard library only (urllib), so the forwarder runs wherever the collector runs. Errors are
sorted by who can fix them:
    ServerDown   no connection, a timeout, or a 5xx/429: wait and try again
    Refused      a 4xx, or a CreateObservations row answered "error": the data or the mapping
                 is at fault, retrying the same request will not help
"""
import base64
import json
import re
from datetime import datetime
import urllib.error
import urllib.request

from provisioning.errors import EXIT_FAILED, EnvironmentProblem, ProvisioningError

_ID_IN_LINK = re.compile(r"\((?:'((?:[^']|'')*)'|([0-9]+))\)\s*$")


class ServerDown(EnvironmentProblem):
    pass


class Refused(ProvisioningError):
    exit_code = EXIT_FAILED


class StaClient:
    """StaClient(url of the service root, e.g. https://sta.city.example/FROST-Server/v1.1)."""

    def __init__(self, url, user=None, password=None, timeout=30):
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.headers = {"Content-Type": "application/json", "Accept": "application/json",
                        "User-Agent": "civicmote-forward"}
        if user:
            token = base64.b64encode(("%s:%s" % (user, password or "")).encode()).decode()
            self.headers["Authorization"] = "Basic " + token

    def request(self, method, path, body=None):
        """(status, headers, parsed JSON or None); raises ServerDown or Refused."""
        url = path if path.startswith("http") else "%s/%s" % (self.url, path.lstrip("/"))
        data = None if body is None else json.dumps(body, separators=(",", ":")).encode()
        req = urllib.request.Request(url, data=data, method=method, headers=self.headers)
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                raw = resp.read()
                return resp.status, dict(resp.headers), _json(raw)
        except urllib.error.HTTPError as e:
            text = e.read()[:300].decode("utf-8", "replace").strip()
            if e.code >= 500 or e.code == 429:
                raise ServerDown("%s %s: the SensorThings server answered %d (%s)" % (method, _short(url), e.code,
                                                                                        text[:120]))
            raise Refused("%s %s: the SensorThings server refused it (%d: %s)" % (method, _short(url), e.code,
                                                                                  text or e.reason))
        except (urllib.error.URLError, OSError) as e:
            reason = getattr(e, "reason", e)
            raise ServerDown("%s: cannot reach the SensorThings server (%s)" % (_short(self.url), reason))

    def create(self, entity_set, body):
        """POST a new entity; -> its id on the server (from Location or the answer's @iot.id)."""
        status, headers, doc = self.request("POST", entity_set, body)
        link = headers.get("Location") or headers.get("location") or ""
        m = _ID_IN_LINK.search(link)
        if m:
            return m.group(1).replace("''", "'") if m.group(1) is not None else int(m.group(2))
        if isinstance(doc, dict) and "@iot.id" in doc:
            return doc["@iot.id"]
        raise Refused("POST %s: the server created it (%d) but named no id (no Location header)"
                      % (entity_set, status))

    def create_observations(self, groups):
        """POST CreateObservations (dataArray); -> one selfLink or "error" per row, in order."""
        rows = sum(len(g["dataArray"]) for g in groups)
        _, _, doc = self.request("POST", "CreateObservations", groups)
        if not isinstance(doc, list) or len(doc) != rows:
            raise Refused("POST CreateObservations: expected %d results, got %r" % (rows, str(doc)[:120]))
        return doc

    def latest_result_time(self, datastream_id):
        """The latest resultTime (Unix s) the server holds for a Datastream, or None."""
        path = "%s/Observations?$orderby=resultTime%%20desc&$top=1&$select=resultTime" % entity_path(
            "Datastreams", datastream_id)
        _, _, doc = self.request("GET", path)
        found = [_unix(o["resultTime"]) for o in (doc or {}).get("value", []) if o.get("resultTime")]
        return found[0] if found else None


def entity_path(entity_set, ident):
    if isinstance(ident, int):
        return "%s(%d)" % (entity_set, ident)
    return "%s('%s')" % (entity_set, str(ident).replace("'", "''"))


def _unix(text):
    try:
        return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp())
    except ValueError:
        return None


def _json(raw):
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return None


def _short(url):
    return url.split("?")[0][:120]
