"""The STA entity sets of civicmote web, read from the store (CPython only).

    Source(data).collection(set_name, query) -> iterator of entities (filtered, in order)
    Source(data).entity(set_name, id) -> entity or None
    Source(data).related(set_name, entity, nav, query) -> entity, None, or an iterator

Entities come from provisioning/web/sta/model.py. Things, Sensors, Locations and the rest
are few (one per device or metric) and are built whole; Observations are made from the summaries
one day of window ends at a time, in resultTime order, so the first page of a large store costs
one day's rows. A $filter that pins the Datastream or a time range narrows what is read.
"""
from provisioning.web.sta import model
from provisioning.web import query as store_query
from provisioning.web.sta import odata

SLICE_S = 86400

# entity set -> (properties, {navigation property: (target set, to-many)})
SETS = {
    "Things": (("name", "description", "properties"),
               {"Locations": ("Locations", True), "HistoricalLocations": ("HistoricalLocations", True),
                "Datastreams": ("Datastreams", True)}),
    "Locations": (("name", "description", "encodingType", "location"),
                  {"Things": ("Things", True), "HistoricalLocations": ("HistoricalLocations", True)}),
    "HistoricalLocations": (("time",), {"Thing": ("Things", False), "Locations": ("Locations", True)}),
    "Sensors": (("name", "description", "encodingType", "metadata"), {"Datastreams": ("Datastreams", True)}),
    "ObservedProperties": (("name", "definition", "description"), {"Datastreams": ("Datastreams", True)}),
    "Datastreams": (("name", "description", "observationType", "unitOfMeasurement", "properties"),
                    {"Thing": ("Things", False), "Sensor": ("Sensors", False),
                     "ObservedProperty": ("ObservedProperties", False), "Observations": ("Observations", True)}),
    "Observations": (("phenomenonTime", "resultTime", "result", "parameters"),
                     {"Datastream": ("Datastreams", False), "FeatureOfInterest": ("FeaturesOfInterest", False)}),
    "FeaturesOfInterest": (("name", "description", "encodingType", "feature"), {"Observations": ("Observations", True)}),
}
PER_DEVICE = {"Things": model.thing, "Locations": model.location, "FeaturesOfInterest": model.feature_of_interest}


def accessor(path):
    """A function entity -> the value of `path`, for odata.predicate and sorting."""
    if path in ("@iot.id", "id"):
        return lambda e: e["@iot.id"]
    if path == "phenomenonTime":
        return lambda e: e["_t"] if "_t" in e else e.get(path)
    if path == "resultTime":
        return lambda e: e["_t"][1] if "_t" in e else e.get(path)
    nav, _, rest = path.partition("/")
    if rest:
        return lambda e: e["_nav"].get(nav)
    return lambda e: e.get(path)


class Source:
    def __init__(self, data, base_url):
        self.data, self.base = data, base_url.rstrip("/")
        self._manifests, self._devices, self._records = {}, None, {}

    # -- devices and their manifests ---------------------------------------------------------
    def device_ids(self):
        if self._devices is None:
            ids = {r["device_id"] for r in self.data.devices()}
            ids |= {r["device_id"] for r in self.data.registry_records()}
            self._devices = sorted(ids)
        return self._devices

    def record(self, dev):
        if dev not in self._records:
            self._records[dev] = (self.data.registry_record(dev), self.data.device(dev))
        return self._records[dev]

    def manifests(self, dev):
        if dev not in self._manifests:
            self._manifests[dev] = self.data.manifests(dev)
        return self._manifests[dev]

    def page_url(self, dev):
        return "%s/d/%s" % (self.base.rsplit("/sta/", 1)[0], dev)

    # -- whole sets ------------------------------------------------------------------------------
    def _per_device(self, name, devs):
        if name == "Sensors":
            return [model.sensor(dev, (self.data.manifest(dev) or [None])[0], self.record(dev)[0],
                                 self.page_url(dev) + "/manifest.json") for dev in devs]
        if name == "HistoricalLocations":
            return []
        return [PER_DEVICE[name](dev, *self.record(dev)) for dev in devs]

    def datastreams(self, devs):
        out = []
        for dev in devs:
            out.extend(model.datastreams(dev, self.manifests(dev)).values())
        return out

    def observed_properties(self):
        found = {}
        for dev in self.device_ids():
            for m in self.manifests(dev).values():
                for e in m.get("metrics", []):
                    if isinstance(e, dict) and e.get("name") and e["name"] not in found:
                        found[e["name"]] = model.observed_property(e["name"], e)
        return [found[k] for k in sorted(found)]

    def all_of(self, name):
        if name == "Datastreams":
            return self.datastreams(self.device_ids())
        if name == "ObservedProperties":
            return self.observed_properties()
        return self._per_device(name, self.device_ids())

    # -- observations ----------------------------------------------------------------------------
    def observations(self, devs, wanted, lo, hi, desc=False):
        """Observations of `devs` (only Datastreams in `wanted`, a set or None) whose window ends
        in [lo, hi] (None: open), by (resultTime, id), one day of summaries at a time."""
        first, last = store_query.window_ends(self.data, devs)
        if first is None:
            return
        a = int(max(first, lo if lo is not None else first)) - 1  # summaries() takes t1 in (a, b]
        b = int(min(last, hi if hi is not None else last))
        starts = range(a, b, SLICE_S)
        for s0 in (reversed(starts) if desc else starts):
            rows = self.data.summaries(devs, s0, min(s0 + SLICE_S, b))
            batch = []
            metrics = None if wanted is None else {w.split(".")[1] for w in wanted}
            for s in rows:
                if metrics is not None:  # scale only the metrics asked for
                    s["metrics"] = {k: v for k, v in s["metrics"].items() if k in metrics}
                m = self.manifests(s["device_id"]).get(s["mh"])
                batch.extend(model.observations(s, m, wanted, self.message_url(s["device_id"], s["seq"])))
            batch.sort(key=lambda o: (o["_t"][1], o["@iot.id"]), reverse=desc)
            yield from batch

    def message_url(self, dev, seq):
        return "%s/messages/%d.cose" % (self.page_url(dev), seq)

    def observation_source(self, q, devs=None, wanted=None):
        """Observations for a query: narrowed by its filter, streamed when its order allows."""
        ds = odata.equal_ids(q.filter, ("Datastream/@iot.id", "Datastream/id"))
        if ds is not None:
            parts = ds.split(".")
            if len(parts) != 4 or (devs is not None and parts[0] not in devs):
                return iter(())
            devs, wanted = [parts[0]], {ds} if wanted is None or ds in wanted else set()
        foi = odata.equal_ids(q.filter, ("FeatureOfInterest/@iot.id", "FeatureOfInterest/id"))
        if foi is not None:
            devs = [d for d in (devs if devs is not None else [foi]) if d == foi]
        devs = self.device_ids() if devs is None else devs
        lo, hi = odata.time_bounds(q.filter)
        desc = q.orderby == [("resultTime", True)]
        obs = self.observations(devs, wanted, lo, hi, desc)
        if q.orderby in ([], [("resultTime", False)], [("resultTime", True)]):
            return obs  # already in this order: stream it
        return _sorted(obs, q.orderby)

    # -- the three ways in -----------------------------------------------------------------------
    def collection(self, name, q):
        items = self.observation_source(q) if name == "Observations" else _sorted(self.all_of(name), q.orderby)
        return _filtered(items, q.filter)

    def entity(self, name, ident):
        if name in PER_DEVICE or name == "Sensors":
            return self._per_device(name, [ident])[0] if ident in self.device_ids() else None
        if name == "ObservedProperties":
            return next((p for p in self.observed_properties() if p["@iot.id"] == ident), None)
        if name == "Datastreams":
            dev = ident.split(".")[0]
            return model.datastreams(dev, self.manifests(dev)).get(ident) if dev in self.device_ids() else None
        if name == "Observations":
            ds, _, seq = ident.rpartition(".")
            s = store_query.summary(self.data, ds.split(".")[0], int(seq)) if seq.isdigit() else None
            if s is None:
                return None
            found = model.observations(s, self.manifests(s["device_id"]).get(s["mh"]), {ds},
                                       self.message_url(s["device_id"], s["seq"]))
            return found[0] if found else None
        return None

    def related(self, name, entity, nav, q):
        target, many = SETS[name][1][nav]
        if not many:
            ident = entity["_nav"].get(nav)
            return None if ident is None else self.entity(target, ident)
        ident = entity["@iot.id"]
        if target == "Observations":
            wanted = {ident} if name == "Datastreams" else None
            return _filtered(self.observation_source(q, [ident.split(".")[0]], wanted), q.filter)
        if target == "HistoricalLocations":
            items = []
        elif target == "Datastreams":
            items = self.datastreams(self.device_ids()) if name == "ObservedProperties" else self.datastreams([ident])
            if name == "ObservedProperties":
                items = [d for d in items if d["_nav"]["ObservedProperty"] == ident]
        else:  # a Thing's Locations, a Location's Things: the same device
            items = self._per_device(target, [ident])
        return _filtered(_sorted(items, q.orderby), q.filter)


def _filtered(items, tree):
    if tree is None:
        return iter(items)
    test = odata.predicate(tree, accessor)
    return (e for e in items if test(e))


def _sorted(items, orderby):
    items = list(items)
    for path, desc in reversed(orderby or [("@iot.id", False)]):
        get = accessor(path)
        items.sort(key=lambda e: _key(get(e)), reverse=desc)
    return items


def _key(v):
    if isinstance(v, tuple):
        v = v[0]
    if v is None:
        return (0, 0, "")
    return (1, v, "") if isinstance(v, (int, float)) and not isinstance(v, bool) else (2, 0, str(v))
