"""`civicmote web`'s SensorThings API v1.1 endpoint (/sta/v1.1).

Fraunhofer's own Python client (frost-sta-client, from PyPI) reads a device's Things,
Datastreams and a day of Observations from a real `civicmote web` process, following its
@iot.nextLink pages, and every value equals the CSV export's. Then the protocol itself: the
service root, links, paging, $count/$top/$skip/$orderby/$select/$filter/$expand, 400s that
name the option, and that nothing of the fleet view or of people beyond what was released shows.
"""
import csv
import io
import json
import re
import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from urllib.parse import quote

import pytest

from web_support import make_city

from provisioning.web.app import Settings, create_app

ROOT = Path(__file__).resolve().parents[1]
NOW = 1764500000  # 2025-11-30 10:53:20 UTC
DAY_FROM, DAY_TO = "2025-11-29T12:00:00Z", "2025-11-30T10:00:00Z"


@pytest.fixture(scope="module")
def city(tmp_path_factory):
    return make_city(tmp_path_factory.mktemp("city"), NOW)


@pytest.fixture(scope="module")
def served(city):
    proc = subprocess.Popen([sys.executable, "-m", "provisioning.cli", "web", "--store", city.store, "--registry",
                             city.registry, "--port", "0", "--json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        line = proc.stdout.readline()
        assert line, proc.stderr.read()
        yield json.loads(line)["url"].rstrip("/")
    finally:
        proc.terminate()
        assert proc.wait(timeout=10) == 0


def client(city):
    return create_app(Settings(city.store, city.registry, clock=lambda: NOW)).test_client()


def csv_values(city, dev, t_from, t_to):
    """{(metric, statistic, window_end): Decimal} of the CSV export, rows with a value only."""
    r = client(city).get("/d/%s/data.csv?from=%s&to=%s" % (dev, t_from, t_to))
    assert r.status_code == 200
    rows = list(csv.DictReader(io.StringIO(r.data.decode())))
    assert rows
    return {(r["metric"], r["statistic"], r["window_end"]): Decimal(r["value"]) for r in rows if r["value"]}


def test_frost_client_reads_a_day_and_the_values_equal_the_csv_export(city, served):
    import frost_sta_client as fsc

    service = fsc.SensorThingsService(served + "/sta/v1.1")
    dev = city.active.dev
    things = list(service.things().query().list())
    assert sorted(t.id for t in things) == sorted([city.active.dev, city.revoked.dev, city.empty.dev])
    thing = service.things().find(dev)
    assert thing.properties["district"] == "north" and thing.properties["place"] == "Market Square, pole 7"
    datastreams = list(thing.get_datastreams().query().list())
    assert len(datastreams) >= 10
    units = {d.id: d.unit_of_measurement.symbol for d in datastreams}
    assert units["%s.temperature.mean.300" % dev] == "Cel" and units["%s.pm2_5.mean.300" % dev] == "ug/m3"

    expected = csv_values(city, dev, DAY_FROM, DAY_TO)
    got = {}
    filt = "resultTime gt %s and resultTime le %s" % (DAY_FROM, DAY_TO)
    for ds in datastreams:
        # the client follows @iot.nextLink: a page of 100 (our default) per request
        for o in ds.get_observations().query().filter(filt).list():
            metric, stat = ds.properties["metric"], ds.properties["statistic"]
            start, end = o.phenomenon_time.split("/") if isinstance(o.phenomenon_time, str) else (None, None)
            assert end and end.endswith("Z") and start.endswith("Z")
            got[(metric, stat, end)] = Decimal(str(o.result))
            assert o.parameters["seq"] >= 1000 and len(o.parameters["mh"]) == 16
    assert len(got) > 2000
    assert got == expected


def test_service_root_links_and_paging(city):
    c = client(city)
    root = c.get("/sta/v1.1").get_json()
    assert "http://www.opengis.net/spec/iot_sensing/1.1/req/request-data" in root["serverSettings"]["conformance"]
    assert not any("create-update-delete" in x for x in root["serverSettings"]["conformance"])
    assert {v["name"] for v in root["value"]} >= {"Things", "Locations", "Sensors", "ObservedProperties",
                                                  "Datastreams", "Observations", "FeaturesOfInterest"}
    dev = city.active.dev
    ds = "%s.temperature.mean.300" % dev
    doc = c.get("/sta/v1.1/Datastreams('%s')/Observations?$count=true" % ds).get_json()
    assert doc["@iot.count"] == 285 and len(doc["value"]) == 100  # 288 windows less 3 lost, a page of 100
    seen = [o["@iot.id"] for o in doc["value"]]
    while "@iot.nextLink" in doc:
        doc = c.get(doc["@iot.nextLink"].replace("http://localhost", "")).get_json()
        seen += [o["@iot.id"] for o in doc["value"]]
    assert len(seen) == len(set(seen)) == 285
    o = c.get("/sta/v1.1/Observations('%s')" % seen[0]).get_json()
    assert o["@iot.selfLink"].endswith("/Observations('%s')" % seen[0])
    ds_doc = c.get(o["Datastream@iot.navigationLink"].replace("http://localhost", "")).get_json()
    assert ds_doc["@iot.id"] == ds and ds_doc["unitOfMeasurement"]["symbol"] == "Cel"
    thing = c.get(ds_doc["Thing@iot.navigationLink"].replace("http://localhost", "")).get_json()
    assert thing["@iot.id"] == dev
    foi = c.get("/sta/v1.1/Observations('%s')/FeatureOfInterest" % seen[0]).get_json()
    assert foi["feature"]["properties"]["name"] == "Market Square, pole 7"
    t0, t1 = o["phenomenonTime"].split("/")
    assert t0.endswith("Z") and t1.endswith("Z") and o["resultTime"] == t1
    # the signed message the value came from verifies as the one stored
    cose = c.get(o["parameters"]["message"].replace("http://localhost", ""))
    assert cose.status_code == 200 and cose.data[:1] in (b"\xd2", b"\x84")


def test_query_options(city):
    c = client(city)
    dev = city.active.dev
    base = "/sta/v1.1/Datastreams('%s.pm2_5.mean.300')/Observations" % dev
    top = c.get(base + "?$top=5&$skip=10&$orderby=resultTime desc").get_json()["value"]
    ends = [o["resultTime"] for o in top]
    assert len(top) == 5 and ends == sorted(ends, reverse=True)
    by_result = c.get(base + "?$top=20&$orderby=result asc,resultTime asc").get_json()["value"]
    assert [o["result"] for o in by_result] == sorted(o["result"] for o in by_result)
    sel = c.get(base + "?$top=1&$select=result,phenomenonTime").get_json()["value"][0]
    assert set(sel) == {"result", "phenomenonTime"}
    flt = "phenomenonTime ge 2025-11-30T00:00:00Z and phenomenonTime lt 2025-11-30T01:00:00Z"
    hour = c.get("/sta/v1.1/Observations?$filter=%s and Datastream/@iot.id eq '%s.pm2_5.mean.300'"
                 % (quote(flt), dev)).get_json()["value"]
    assert [o["phenomenonTime"][:20] for o in hour] == ["2025-11-30T00:%02d:00Z" % m for m in range(0, 60, 5)]
    ex = c.get("/sta/v1.1/Things('%s')?$expand=Datastreams,Locations" % dev).get_json()
    assert len(ex["Datastreams"]) >= 10 and ex["Locations"][0]["name"] == "Market Square, pole 7"
    op = c.get("/sta/v1.1/ObservedProperties('footfall')/Datastreams").get_json()["value"]
    assert {d["@iot.id"] for d in op} == {"%s.footfall.n.3600" % city.active.dev, "%s.footfall.n.3600" %
                                          city.revoked.dev}


@pytest.mark.parametrize("query,option", [("$top=-1", "$top"), ("$top=lots", "$top"), ("$skip=x", "$skip"),
                                          ("$count=maybe", "$count"), ("$filter=garbage", "$filter"),
                                          ("$filter=result gt", "$filter"), ("$filter=resultTime gt 5", "$filter"),
                                          ("$filter=(result gt 1", "$filter"), ("$orderby=height", "$orderby"),
                                          ("$select=secret", "$select"), ("$expand=Observations($top=1)", "$expand"),
                                          ("$expand=Things", "$expand"), ("$format=xml", "$format")])
def test_bad_query_options_are_400_naming_the_option(city, query, option):
    r = client(city).get("/sta/v1.1/Observations?" + query)
    assert r.status_code == 400
    err = r.get_json()["error"]
    assert err["target"] == option and err["message"].startswith(option)


def test_not_found_and_bad_paths(city):
    c = client(city)
    assert c.get("/sta/v1.1/Nothing").status_code == 404
    assert c.get("/sta/v1.1/Things('cmaaaaaaaaaaaaaaaa')").status_code == 404
    assert c.get("/sta/v1.1/Observations('x.y.z.1.2')").status_code == 404
    assert c.get("/sta/v1.1/Things('%s')/name/$value" % city.active.dev).data.decode() == city.active.dev


def test_people_released_only_and_no_fleet_data(city):
    """Suppressed and withheld windows are no Observation; the Datastream says so; nothing of /fleet."""
    c = client(city)
    dev = city.active.dev
    ds = c.get("/sta/v1.1/Datastreams('%s.footfall.n.3600')" % dev).get_json()
    assert "no Observation" in ds["description"] and "suppressed" in ds["description"]
    # How people are protected is the one renderer's sentence (issue 21), and no withdrawn claim.
    from provisioning.language import catalogue, manifest_words
    entry = next(e for e in city.active.manifest["metrics"] if e["name"] == "footfall")
    assert manifest_words.metric(entry, catalogue.load("en"))[1].rstrip(".") in ds["description"]
    doc = (Path(__file__).resolve().parent.parent / "docs" / "privacy.md").read_text(encoding="utf-8")
    section = doc.split("\n## What we do not claim\n", 1)[1].split("\n## ", 1)[0]
    for claim in re.findall(r"`([^`]+)`", section):
        assert claim.lower() not in ds["description"].lower()
    obs = c.get("/sta/v1.1/Datastreams('%s.footfall.n.3600')/Observations?$top=100" % dev).get_json()["value"]
    hours = {int(o["parameters"]["seq"]) for o in obs}
    from web_support import metrics
    expected = {seq for seq, t1 in city.windows if t1 % 3600 == 0 and "n" in metrics(seq, t1)["footfall"]}
    assert hours == expected and len(expected) < len([1 for _, t1 in city.windows if t1 % 3600 == 0])
    assert all(isinstance(o["result"], int) for o in obs)
    everything = json.dumps([c.get("/sta/v1.1/%s?$top=10000&$expand=%s" % (s, e)).get_json() for s, e in (
        ("Things", "Datastreams,Locations"), ("Sensors", "Datastreams"), ("Datastreams", "Thing"),
        ("FeaturesOfInterest", "Observations"))])
    for secret in ("sensors@city.example", "555-0100", "key compromised", "rejected", "signature", '"health"',
                   city.stranger.dev):
        assert secret not in everything


def test_the_endpoint_answers_the_same_from_postgresql(tmp_path):
    from pg import PgServer

    reason = PgServer.available()
    if reason:
        pytest.skip(reason)
    with PgServer() as pg:
        url = pg.new_database()
        city = make_city(tmp_path, NOW, also=[url])
        lite = client(city)
        other = create_app(Settings(url, city.registry, clock=lambda: NOW)).test_client()
        dev = city.active.dev
        for path in ("/sta/v1.1/Things?$expand=Datastreams", "/sta/v1.1/Sensors", "/sta/v1.1/ObservedProperties",
                     "/sta/v1.1/Datastreams('%s.noise.leq.300')/Observations?$count=true&$top=300" % dev,
                     "/sta/v1.1/Observations?$filter=resultTime gt 2025-11-30T06:00:00Z&$orderby=result desc",
                     "/sta/v1.1/FeaturesOfInterest('%s')?$expand=Observations" % dev):
            a, b = lite.get(path), other.get(path)
            assert a.status_code == b.status_code == 200
            assert a.get_json() == b.get_json() and a.get_json()["value" if "value" in a.get_json() else "@iot.id"]


def test_a_manifest_of_odd_shapes_maps_to_fewer_datastreams_not_an_error():
    """A device signs its own manifest: fields of the wrong type map to nothing."""
    from provisioning.web.sta import model

    odd = {"metrics": [{"name": "a", "class": "environmental", "unit": "°C", "window": 300, "stats": "mean"},
                       {"name": "b", "class": "environmental", "unit": [1], "window": 300, "stats": [1, "max", {}]},
                       {"name": "c", "class": "personal", "unit": "people", "window": 3600, "mechanism": ["x"]}]}
    ds = model.datastreams("cmaaaaaaaaaaaaaaaa", {b"\x01": odd})
    assert sorted(ds) == ["cmaaaaaaaaaaaaaaaa.b.max.300", "cmaaaaaaaaaaaaaaaa.c.n.3600"]
