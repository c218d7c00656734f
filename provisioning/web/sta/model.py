"""The one mapping from civicmote's store to SensorThings API v1.1 entities (CPython only, pure).

    device                              -> Thing, id = device id; properties district, place, key
    the device's place (registry)       -> Location and FeatureOfInterest, id = device id
    device (its manifest, its board)    -> Sensor, id = device id
    metric                              -> ObservedProperty, id = metric name
    device x metric x statistic x window -> Datastream, id = "DEV.METRIC.STAT.WINDOW"
    a released value of a summary       -> Observation, id = "DEV.METRIC.STAT.WINDOW.SEQ"

Values are those of the CSV export (web/values.py): the released integer times the manifest's
resolution, exact. A value the device did not release (suppressed, withheld, no readings) is no
Observation; the Datastream says so. Histogram buckets are not mapped (no STA statistic fits).
Entities are dicts of STA properties; "_nav" holds the ids of the entities they link to, for
the read endpoint's links and filters (the forwarder drops it).
"""
import hashlib
from functools import lru_cache

from provisioning.language import catalogue as language
from provisioning.language import manifest_words
from provisioning.web.sta.ucum import unit_of_measurement
from provisioning.web import exports
from provisioning.web.values import entries, json_number, summary_values

MEASUREMENT = "http://www.opengis.net/def/observationType/OGC-OM/2.0/OM_Measurement"
COUNT_OBSERVATION = "http://www.opengis.net/def/observationType/OGC-OM/2.0/OM_CountObservation"
NOT_RELEASED = ("Windows in which the device released no value (suppressed, withheld or without readings) "
                "have no Observation; the device's page /d/%s says why.")


english = lru_cache(maxsize=1)(lambda: language.load("en"))
iso = lru_cache(maxsize=4096)(exports.iso)  # the exports' times; a day's page repeats each one per value


def interval(start, end):
    return "%s/%s" % (iso(start), iso(end))


def result(value):
    """A Fraction as JSON: an int when whole, else the float nearest it (for an exact decimal such as
    11.6 that is the float of "11.6", as the exports write; json_number does the rest)."""
    if value.denominator == 1:
        return value.numerator
    d = value.denominator
    while d % 10 == 0:
        d //= 10
    while d % 2 == 0:
        d //= 2
    while d % 5 == 0:
        d //= 5
    return float(value) if d == 1 else json_number(value)


def datastream_id(dev, metric, stat, window):
    return "%s.%s.%s.%d" % (dev, metric, stat, window)


def thing(dev, rec, row):
    """rec: the registry's record or None; row: the store's device row or None."""
    rec, row = rec or {}, row or {}
    props = {"deviceId": dev, "district": rec.get("district") or row.get("district") or ""}
    if rec.get("location"):
        props["place"] = rec["location"]
    if rec.get("public_key"):
        props["keySha256"] = hashlib.sha256(bytes.fromhex(rec["public_key"])).hexdigest()
    if rec.get("status"):
        props["status"] = rec["status"]
    return {"@iot.id": dev, "name": dev, "description": "civicmote city sensor %s in %s" % (dev, props["district"] or
                                                                                            "no district"),
            "properties": props, "_nav": {}}


def place(dev, rec, row):
    """The device's place as text (the registry's location, else its district)."""
    rec, row = rec or {}, row or {}
    return rec.get("location") or rec.get("district") or row.get("district") or dev


def place_feature(dev, rec, row):
    """GeoJSON for the place: a Feature without geometry (the registry knows the place by name, not by
    coordinates; nothing is made up)."""
    return {"type": "Feature", "geometry": None, "properties": {"name": place(dev, rec, row)}}


def location(dev, rec, row):
    return {"@iot.id": dev, "name": place(dev, rec, row), "description": "where sensor %s is mounted" % dev,
            "encodingType": "application/geo+json", "location": place_feature(dev, rec, row), "_nav": {}}


def feature_of_interest(dev, rec, row):
    return {"@iot.id": dev, "name": place(dev, rec, row), "description": "what sensor %s observes" % dev,
            "encodingType": "application/geo+json", "feature": place_feature(dev, rec, row), "_nav": {}}


def sensor(dev, manifest, rec, manifest_url=""):
    board = (manifest or {}).get("board") or (rec or {}).get("board") or "unknown board"
    return {"@iot.id": dev, "name": "%s (%s)" % (dev, board), "description": "civicmote %s; its signed manifest "
            "lists what it measures and how" % board, "encodingType": "text/html", "metadata": manifest_url,
            "_nav": {}}


def observed_property(metric, entry=None):
    return {"@iot.id": metric, "name": metric, "definition": "urn:civicmote:metric:%s" % metric,
            "description": (entry or {}).get("description") or metric, "_nav": {}}


def stats_of(entry):
    """The statistics of a manifest entry that become Datastreams, in order (names only: a device
    signs its manifest, and what is not a name here maps to nothing)."""
    if entry.get("class") == "personal":
        mechanism = entry.get("mechanism") if isinstance(entry.get("mechanism"), str) else None
        return {"mean": ["n", "sum", "mean"], "sum": ["sum"], "histogram": []}.get(mechanism, ["n"])
    stats = entry.get("stats") if isinstance(entry.get("stats"), list) else []
    return [s for s in stats if isinstance(s, str) and s != "hist"]


def datastreams(dev, manifests):
    """{id: Datastream} of a device from all its manifests ({mh: manifest})."""
    out = {}
    for mh in sorted(manifests):
        for name, e in sorted(entries(manifests[mh]).items()):
            window = e.get("window")
            if not isinstance(window, int):
                continue
            for stat in stats_of(e):
                ds_id = datastream_id(dev, name, stat, window)
                out[ds_id] = _datastream(ds_id, dev, name, stat, window, e)
    return out


def _datastream(ds_id, dev, name, stat, window, e):
    personal = e.get("class") == "personal"
    props = {"metric": name, "statistic": stat, "windowSeconds": window, "class": e.get("class", ""),
             "unit": e.get("unit", "")}
    for k in ("resolution", "mechanism", "epsilon", "k"):
        if k in e:
            props[k] = e[k]
    what = "%s of %s over %d s windows" % (stat, name, window)
    if personal:  # how people are protected: the one renderer's words, never a paraphrase of our own
        what += ". " + manifest_words.metric(e, english())[1].rstrip(".")
    return {"@iot.id": ds_id, "name": "%s %s %s %ds" % (dev, name, stat, window),
            "description": "%s. %s" % (what, NOT_RELEASED % dev),
            "observationType": COUNT_OBSERVATION if stat == "n" and not personal else MEASUREMENT,
            "unitOfMeasurement": unit_of_measurement(e.get("unit", ""), stat), "properties": props,
            "_nav": {"Thing": dev, "Sensor": dev, "ObservedProperty": name}}


def observations(summary, manifest, wanted, message_url=""):
    """[Observation] of one stored summary (a query row dict) whose Datastream id is in `wanted`
    (a set, or None for all of the manifest's). message_url: a link to its signed message."""
    dev, seq = summary["device_id"], summary["seq"]
    known = entries(manifest)
    out = []
    for v in summary_values(summary, manifest):
        e = known.get(v.metric)
        if v.value is None or e is None or not isinstance(e.get("window"), int):
            continue
        ds_id = datastream_id(dev, v.metric, v.stat, e["window"])
        if (wanted is not None and ds_id not in wanted) or v.stat not in stats_of(e):
            continue
        params = {"seq": seq, "mh": summary["mh"].hex()}
        if message_url:
            params["message"] = message_url
        out.append({"@iot.id": "%s.%d" % (ds_id, seq), "phenomenonTime": interval(v.start, v.end),
                    "resultTime": iso(v.end), "result": result(v.value), "parameters": params,
                    "_t": (v.start, v.end), "_nav": {"Datastream": ds_id, "FeatureOfInterest": dev}})
    return out
