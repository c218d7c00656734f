"""Push the store's verified summaries into a city's SensorThings API server (CPython only).

    Forwarder(data, client, state, ...).run() -> totals

Per device, in seq order from the last acknowledged one: the Thing (with its Location), Sensor,
ObservedProperties and Datastreams are created once and their server ids remembered (state);
then `batch` summaries at a time go as one CreateObservations request, one dataArray per
Datastream, rows [phenomenonTime, resultTime, result, parameters] as model.py maps them. The
batch is acknowledged in the state only after the server answered every row. A batch that may
have reached the server unacknowledged (the first of each device in a process: the last one may
have stopped after sending it; any batch whose answer was lost) is first checked against the
server: the rows of each Datastream up to the latest resultTime it holds are dropped (a device's
rows go in time order, one Datastream's rows of a request are stored together), so none is
created twice.

While the server is down (no connection, 5xx, 429) it waits 1, 2, 4 ... 60 s and tries again,
up to `max_wait` seconds in a row (None: forever). A refused batch (a 4xx, a row answered
"error") stops it: sending the same data again would be refused again.
"""
import time
from concurrent.futures import ThreadPoolExecutor

from provisioning.web.sta import model
from provisioning.forward.sta_client import Refused, ServerDown
from provisioning.web import query as store_query

BACKOFF_MAX_S = 60


def body(entity):
    """An entity for POST: its STA properties without our id and link bookkeeping."""
    return {k: v for k, v in entity.items() if not k.startswith("_") and k != "@iot.id"}


class Forwarder:
    def __init__(self, data, client, state, batch=100, instant=False, page_url="", max_wait=None,
                 sleep=time.sleep, clock=time.monotonic, progress=None):
        """instant: send phenomenonTime as the window's end only (for servers that cannot store an
        interval; the interval then goes in parameters.window). page_url: civicmote web's public
        address, for links to each Observation's signed message. progress(event dict): called per
        batch and while waiting for the server."""
        self.data, self.client, self.state = data, client, state
        self.batch, self.instant, self.page_url = batch, instant, page_url.rstrip("/")
        self.max_wait, self.sleep, self.clock = max_wait, sleep, clock
        self.progress = progress or (lambda event: None)
        self.sent = self.summaries = 0

    # -- the run -----------------------------------------------------------------------------------
    def run(self, devices=None):
        """Forward everything stored and not yet acknowledged; -> totals."""
        started = self.clock()
        for dev in devices or [r["device_id"] for r in self.data.devices()]:
            self._device(dev)
        took = self.clock() - started
        return {"observations": self.sent, "summaries": self.summaries, "seconds": round(took, 3),
                "per_second": round(self.sent / took) if took > 0 else None}

    def backlog(self, devices=None):
        """Summaries stored and not yet acknowledged (for progress)."""
        total = 0
        for dev in devices or [r["device_id"] for r in self.data.devices()]:
            total += store_query.count_after(self.data, dev, self.state.acknowledged(dev))
        return total

    def _device(self, dev):
        """Batches of one device; the next batch is read and mapped while the server takes this one."""
        manifests = self.data.manifests(dev)
        seq = self.state.acknowledged(dev)
        first = dev not in self.state.checked  # once per process: after that the state is ours alone
        with ThreadPoolExecutor(1) as worker:
            ahead = worker.submit(self._prepare, dev, seq, manifests)
            while True:
                rows, mapped = ahead.result()
                if not rows:
                    return
                ahead = worker.submit(self._prepare, dev, rows[-1]["seq"], manifests)
                groups = self._groups(dev, mapped, manifests)
                rows_sent = self._send(dev, rows, groups, check=first)
                first = False
                self.state.checked.add(dev)
                self.state.acknowledge(dev, rows[-1]["seq"])
                self.sent += rows_sent
                self.summaries += len(rows)
                self.progress({"event": "batch", "device_id": dev, "seq": rows[-1]["seq"], "observations": rows_sent,
                               "total": self.sent, "summaries": self.summaries})

    def _prepare(self, dev, after_seq, manifests):
        """(rows, [(manifest, Observation)]) of the next batch after `after_seq` (no server calls here)."""
        rows = store_query.summaries_after(self.data, dev, after_seq, self.batch)
        mapped = []
        for s in rows:
            manifest = manifests.get(s["mh"])
            url = "%s/d/%s/messages/%d.cose" % (self.page_url, dev, s["seq"]) if self.page_url else ""
            mapped.extend((manifest, o) for o in model.observations(s, manifest, None, url))
        return rows, mapped

    def _groups(self, dev, mapped, manifests):
        """{server Datastream id: [(window end, dataArray row)]} of a batch."""
        groups = {}
        for manifest, o in mapped:
            remote = self._datastream(dev, o["_nav"]["Datastream"], manifest)
            params = o["parameters"]
            if self.instant:
                params = dict(params, window=o["phenomenonTime"])
            phen = o["resultTime"] if self.instant else o["phenomenonTime"]
            groups.setdefault(remote, []).append((o["_t"][1], [phen, o["resultTime"], o["result"], params]))
        return groups

    def _send(self, dev, rows, groups, check):
        """Send a batch (check: first drop what the server already holds); -> rows sent."""
        check = [check]

        def attempt():
            todo = self._drop_stored(groups) if check[0] else groups
            payload = [{"Datastream": {"@iot.id": remote}, "components": ["phenomenonTime", "resultTime", "result",
                                                                          "parameters"],
                        "dataArray": [r for _, r in items]} for remote, items in todo.items() if items]
            if not payload:
                return payload, []
            try:
                return payload, self.client.create_observations(payload)
            except ServerDown:
                check[0] = True  # it may have stored the batch before the answer was lost
                raise

        payload, results = self._retry(attempt, "the next run resumes at %s seq %s" % (dev,
                                                                                     self.state.acknowledged(dev)))
        bad = [i for i, r in enumerate(results) if r == "error" or not isinstance(r, str)]
        if bad:
            flat = [(p["Datastream"]["@iot.id"], row) for p in payload for row in p["dataArray"]]
            remote, row = flat[bad[0]]
            raise Refused("CreateObservations: the server refused %d of %d rows, first Datastream %s, row %s; "
                          "nothing of %s from seq %s on is acknowledged" % (len(bad), len(results), remote,
                                                                            str(row)[:160], dev, rows[0]["seq"]))
        return len(results)

    def _drop_stored(self, groups):
        """The batch less what the server already holds: each Datastream's rows up to its latest resultTime."""
        out = {}
        for remote, items in groups.items():
            latest = self.client.latest_result_time(remote)
            out[remote] = [(t, r) for t, r in items if latest is None or t > latest]
        return out

    # -- entities, created once ------------------------------------------------------------------
    def _remote(self, key, entity_set, make):
        ident = self.state.ids.get(key)
        if ident is None:
            ident = self._retry(lambda: self.client.create(entity_set, make()))
            self.state.remember(key, ident)
        return ident

    def _thing(self, dev):
        def make():
            rec, row = self.data.registry_record(dev), self.data.device(dev)
            thing = body(model.thing(dev, rec, row))
            thing["Locations"] = [body(model.location(dev, rec, row))]
            return thing
        return self._remote("Thing:" + dev, "Things", make)

    def _datastream(self, dev, ds_id, manifest):
        key = "Datastream:" + ds_id
        if key in self.state.ids:
            return self.state.ids[key]
        _, metric, _, _ = ds_id.split(".")
        entry = next((e for e in manifest.get("metrics", []) if e.get("name") == metric), None)
        thing = self._thing(dev)
        sensor = self._remote("Sensor:" + dev, "Sensors", lambda: body(model.sensor(
            dev, manifest, self.data.registry_record(dev),
            "%s/d/%s/manifest.json" % (self.page_url, dev) if self.page_url else "urn:civicmote:device:" + dev)))
        prop = self._remote("ObservedProperty:" + metric, "ObservedProperties",
                            lambda: body(model.observed_property(metric, entry)))
        ds = model.datastreams(dev, {b"": manifest})[ds_id]
        doc = dict(body(ds), Thing={"@iot.id": thing}, Sensor={"@iot.id": sensor}, ObservedProperty={"@iot.id": prop})
        return self._remote(key, "Datastreams", lambda: doc)

    def _retry(self, call, resume=""):
        """call() until the server answers, waiting 1, 2, 4 ... 60 s while it is down (max_wait in all)."""
        waited, attempt = 0.0, 0
        while True:
            try:
                return call()
            except ServerDown as e:
                delay = min(BACKOFF_MAX_S, 2 ** attempt)
                if self.max_wait is not None and waited + delay > self.max_wait:
                    raise ServerDown("%s; gave up after waiting %d s%s" % (e, waited, " (%s)" % resume if resume
                                                                            else ""))
                self.progress({"event": "waiting", "reason": str(e), "retry_in": delay})
                self.sleep(delay)
                waited, attempt = waited + delay, attempt + 1
