"""`civicmote web` without a browser: exports against the store and the manifest, /metrics through
Prometheus' own parser, status codes of every kind of device, who may see the fleet, the signed
messages verifying with `civicmote verify`, and the command's bad input."""
import csv
import io
import json
import sqlite3
import zipfile
from decimal import Decimal
from fractions import Fraction
from pathlib import Path

import pytest

from cli_helpers import cli
from web_support import MISSING, make_city

from agent.core import rational
from provisioning.language import catalogue
from provisioning.web.app import Settings, create_app

NOW = 1764500000  # 2025-11-30 10:53:20 UTC
TOKEN = "a-token-of-the-city-0123456789"


@pytest.fixture(scope="module")
def city(tmp_path_factory):
    return make_city(tmp_path_factory.mktemp("city"), NOW)


def client(city, token=None, lang="en"):
    app = create_app(Settings(city.store, city.registry, lang=lang, tz="Europe/Berlin", token=token,
                              clock=lambda: NOW))
    return app.test_client()


def stored(city):
    """{(device, seq): (t1, metrics)} and {device: manifest entries by name}, read straight from the store."""
    db = sqlite3.connect(city.store)
    rows = {(d, seq): (t1, json.loads(m)) for d, seq, t1, m in db.execute("SELECT device_id, seq, t1, metrics "
                                                                            "FROM summaries")}
    manifests = {d: {e["name"]: e for e in json.loads(m)["metrics"]} for d, m in db.execute(
        "SELECT device_id, manifest FROM manifests")}
    return rows, manifests


def _ts(iso):
    from datetime import datetime

    return int(datetime.fromisoformat(iso).timestamp())


def check_row(row, rows, manifests):
    """One exported row against the stored integers and the signed manifest's scaling and names."""
    dev, seq = row["device_id"], int(row["seq"])
    t1, m = rows[(dev, seq)]
    e = manifests[dev][row["metric"]]
    assert row["unit"] == e["unit"] and row["class"] == e["class"]
    if e["class"] == "environmental":
        i = e["stats"].index(row["statistic"])
        raw = m[row["metric"]][i]
        num, den = rational.parse(e["resolution"])
        if raw is None:
            assert row["value"] in ("", None) and row["note"]
        else:
            assert Fraction(Decimal(str(row["value"]))) == Fraction(raw * num, den)
    else:
        released = m[row["metric"]]
        # The metric's own window: the hour before the summary that carries it.
        assert (_ts(row["window_start"]), _ts(row["window_end"])) == (t1 - 3600, t1)
        if "n" in released:
            assert int(row["value"]) == released["n"]
        else:
            assert row["value"] in ("", None) and row["note"] in ("suppressed", "withheld: budget")


def test_device_csv_round_trips_against_the_store_and_manifest(city):
    r = client(city).get("/d/%s/data.csv" % city.active.dev)
    assert r.status_code == 200 and r.mimetype == "text/csv"
    reader = list(csv.DictReader(io.StringIO(r.get_data(as_text=True))))
    rows, manifests = stored(city)
    seqs = {int(x["seq"]) for x in reader}
    assert seqs == {seq for seq, t1 in city.windows if t1 > NOW - 86400}  # default: the last 24 h
    for row in reader:
        check_row(row, rows, manifests)
    # Every released value is there once: 7 environmental metrics, 14 values a window, plus hourly counts.
    hourly = sum(1 for seq in seqs if rows[(city.active.dev, seq)][0] % 3600 == 0)
    assert len(reader) == 14 * len(seqs) + 2 * hourly
    temps = [x for x in reader if x["metric"] == "temperature" and x["statistic"] == "mean"]
    assert all(x["value"].count(".") == 1 and len(x["value"].split(".")[1]) == 1 for x in temps)  # 11.6, not 11.60001


def test_json_export_holds_the_same_values(city):
    c = client(city)
    as_csv = list(csv.DictReader(io.StringIO(c.get("/d/%s/data.csv" % city.active.dev).get_data(as_text=True))))
    doc = c.get("/d/%s/data.json" % city.active.dev).get_json()
    assert doc["scope"] == "device" and doc["id"] == city.active.dev and len(doc["rows"]) == len(as_csv)
    rows, manifests = stored(city)
    for j, x in zip(doc["rows"], as_csv):
        check_row(j, rows, manifests)
        assert (j["value"] is None and x["value"] == "") or float(x["value"]) == j["value"]


def test_a_day_of_one_district_as_csv(city):
    day = "2025-11-30"  # the city's day (Europe/Berlin): 2025-11-29T23:00Z .. 2025-11-30T23:00Z
    r = client(city).get("/district/north/data.csv?day=%s" % day)
    assert r.status_code == 200 and "north-2025-11-29-2025-11-30.csv" in r.headers["Content-Disposition"]
    reader = list(csv.DictReader(io.StringIO(r.get_data(as_text=True))))
    assert {x["device_id"] for x in reader} == {city.active.dev} and {x["district"] for x in reader} == {"north"}
    start = 1764457200  # 2025-11-30T00:00+01:00
    expected = {seq for seq, t1 in city.windows if start < t1 <= NOW}
    assert {int(x["seq"]) for x in reader} == expected
    harbour = client(city).get("/district/harbour/data.json?from=2025-11-30T08:00Z&to=2025-11-30T12:00Z").get_json()
    assert {x["device_id"] for x in harbour["rows"]} == {city.revoked.dev} and len(harbour["rows"]) > 0


@pytest.mark.parametrize("query, words", [
    ("from=yesterday", "from=yesterday"), ("day=30.11.2025", "YYYY-MM-DD"),
    ("from=2025-11-30&to=2025-11-29", "before"), ("from=2024-01-01&to=2025-11-30", "366 days")])
def test_bad_ranges_are_one_line_400s(city, query, words):
    r = client(city).get("/d/%s/data.csv?%s" % (city.active.dev, query))
    assert r.status_code == 400 and words in r.get_data(as_text=True)


def test_metrics_parse_with_prometheus_parser(city):
    from prometheus_client.parser import text_string_to_metric_families

    r = client(city).get("/metrics")
    assert r.status_code == 200 and r.mimetype == "text/plain"
    samples = {}
    for fam in text_string_to_metric_families(r.get_data(as_text=True)):
        for s in fam.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    a, rv = city.active.dev, city.revoked.dev
    north, harbour = (("device_id", a), ("district", "north")), (("device_id", rv), ("district", "harbour"))
    assert samples[("civicmote_device_online", north)] == 1
    assert samples[("civicmote_device_online", harbour)] == 0
    assert samples[("civicmote_device_messages_total", tuple(sorted(north + (("outcome", "accepted"),))))] == \
        len(city.windows)
    assert samples[("civicmote_device_messages_total", tuple(sorted(north + (("outcome", "rejected"),))))] == 1
    assert samples[("civicmote_device_gap_summaries_total", tuple(sorted(north + (("cause", "missing"),))))] == \
        len(MISSING)
    assert samples[("civicmote_device_outbox_depth", north)] == 287 % 4  # h.q of the latest summary
    assert samples[("civicmote_devices", (("status", "revoked"),))] == 1
    assert samples[("civicmote_devices", (("status", "active"),))] == 2
    assert samples[("civicmote_held_messages", (("device_id", city.stranger.dev),))] == 1


def test_status_codes_of_every_kind_of_device(city):
    c = client(city)
    assert c.get("/d/%s" % city.active.dev).status_code == 200
    revoked = c.get("/d/%s" % city.revoked.dev)
    assert revoked.status_code == 410 and "key compromised" in revoked.get_data(as_text=True)
    empty = c.get("/d/%s" % city.empty.dev)
    assert empty.status_code == 200 and "Nothing published yet" in empty.get_data(as_text=True)
    assert "What it was set up to measure" in empty.get_data(as_text=True)
    for url in ("/d/cmaaaaaaaaaaaaaaaa", "/d/not-an-id", "/d/cmaaaaaaaaaaaaaaaa/data.csv", "/district/nowhere/data.csv",
                "/d/%s/manifest.cose" % city.empty.dev, "/d/%s/data.xml" % city.active.dev):
        assert c.get(url).status_code == 404, url
    assert "No such sensor" in c.get("/d/cmaaaaaaaaaaaaaaaa").get_data(as_text=True)


def test_the_page_asks_nothing_of_other_sites(city):
    r = client(city).get("/d/%s" % city.active.dev)
    html = r.get_data(as_text=True)
    assert "default-src 'none'" in r.headers["Content-Security-Policy"]
    import re

    refs = re.findall(r'(?:src|href)="([^"]*)"', html)
    assert refs and all(u.startswith("/") or u.startswith("?") for u in refs), refs
    assert "<script" not in html and "@import" not in html and "Set-Cookie" not in r.headers


def test_fleet_is_for_loopback_or_the_token(city):
    remote = {"REMOTE_ADDR": "203.0.113.9"}
    open_c, locked = client(city), client(city, token=TOKEN)
    for url in ("/fleet", "/fleet.json", "/metrics"):
        assert open_c.get(url).status_code == 200
        assert open_c.get(url, environ_base=remote).status_code == 403
        # Through a proxy on the same host: not loopback.
        assert open_c.get(url, headers={"X-Forwarded-For": "203.0.113.9"}).status_code == 403
        assert locked.get(url, environ_base=remote).status_code == 401
        assert locked.get(url, environ_base=remote, headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert locked.get(url, environ_base=remote, headers={"Authorization": "Bearer " + TOKEN}).status_code == 200
        assert locked.get(url + "?token=" + TOKEN, environ_base=remote).status_code == 200
    assert open_c.get("/d/%s" % city.active.dev, environ_base=remote).status_code == 200  # the page is public
    doc = open_c.get("/fleet.json").get_json()
    active = [d for d in doc["devices"] if d["device_id"] == city.active.dev][0]
    assert active["status"] == "online" and active["gaps"] == {"missing": 3} and active["outbox"] == 287 % 4
    assert [r["count"] for r in doc["rejected"]] == [1] and "signature" in doc["rejected"][0]["reason"]
    assert doc["held"] == {city.stranger.dev: 1}


def test_signed_messages_download_verifies_with_civicmote_verify(city, tmp_path, capsys):
    r = client(city).get("/d/%s/messages.zip" % city.active.dev)
    assert r.status_code == 200
    with zipfile.ZipFile(io.BytesIO(r.data)) as z:
        z.extractall(tmp_path)
    d = tmp_path / city.active.dev
    key = (d / "public-key.hex").read_text().strip()
    assert key == city.active.pub.hex()
    files = sorted(d.glob("*.cose"))
    assert len(files) == 1 + len([1 for _, t1 in city.windows if t1 > NOW - 86400])  # summaries + manifest
    code, out, err = cli(capsys, "verify", "--public-key", key, *files)
    assert code == 0, out
    assert all(json.loads(line)["ok"] for line in out.splitlines())
    assert "civicmote verify" in (d / "README.txt").read_text()
    other = cli(capsys, "verify", "--public-key", city.revoked.pub.hex(), files[0])
    assert other[0] == 1  # the same file under another device's key does not verify


def test_german_page_and_catalogues(city, tmp_path):
    html = client(city, lang="de").get("/d/%s" % city.active.dev).get_data(as_text=True)
    assert '<html lang="de">' in html and "Was er nie erfasst" in html and "auf 0,1 °C genau" in html
    en = json.loads((Path(catalogue.HERE) / "en.json").read_text())
    de = json.loads((Path(catalogue.HERE) / "de.json").read_text())
    assert set(en) == set(de)  # every text is translated
    own = tmp_path / "fr.json"
    own.write_text(json.dumps({"_language": "Français", "page.never": "Ce qu'il ne collecte jamais"}))
    c = create_app(Settings(city.store, city.registry, lang=str(own), clock=lambda: NOW)).test_client()
    page = c.get("/d/%s" % city.active.dev).get_data(as_text=True)
    assert "Ce qu&#39;il ne collecte jamais" in page and "What it measures" in page  # the rest falls back


def test_web_command_bad_input(city, tmp_path, capsys):
    code, out, err = cli(capsys, "web", "--store", tmp_path / "none.db")
    assert code == 2 and "no collector store" in err and len(err.strip().splitlines()) == 1
    (tmp_path / "junk.db").write_bytes(b"not sqlite" * 100)
    assert cli(capsys, "web", "--store", tmp_path / "junk.db")[0] == 2
    code, out, err = cli(capsys, "web", "--store", city.store, "--registry", city.registry, "--timezone", "Mars/Base")
    assert code == 2 and "--timezone" in err
    code, out, err = cli(capsys, "web", "--store", city.store, "--registry", city.registry, "--lang", "xx")
    assert code == 2 and "catalogue" in err
    (tmp_path / "token").write_text("short")
    code, out, err = cli(capsys, "web", "--store", city.store, "--registry", city.registry, "--token-file",
                         tmp_path / "token")
    assert code == 2 and "16 characters" in err


def test_released_values_of_every_mechanism():
    from provisioning.web.values import decimal_text, headline, summary_values

    manifest = {"metrics": [
        {"name": "temperature", "unit": "°C", "window": 300, "class": "environmental", "resolution": "1/10",
         "stats": ["n", "mean", "min", "var", "hist"]},
        {"name": "wait", "unit": "ds", "window": 3600, "class": "personal", "mechanism": "mean"},
        {"name": "speed", "unit": "km/h", "window": 3600, "class": "personal", "mechanism": "histogram"}]}
    s = {"t0": 3300, "t1": 3600, "metrics": {
        "temperature": [30, -5, None, 250, [4, 26]], "wait": {"n": 37, "sum": 412, "mean": "11.14"}, "speed": {"h": [12, None, 7]}}}
    got = {(v.metric, v.stat): v for v in summary_values(s, manifest)}
    assert decimal_text(got[("temperature", "mean")].value, got[("temperature", "mean")].places) == "-0.5"
    assert got[("temperature", "n")].value == 30 and got[("temperature", "n")].unit == "count"  # a count, unscaled
    var = got[("temperature", "var")]
    assert decimal_text(var.value, var.places) == "2.50" and var.unit == "°C²"  # steps squared
    assert [got[("temperature", "hist%d" % i)].value for i in (0, 1)] == [4, 26]
    assert got[("temperature", "min")].value is None and got[("temperature", "min")].note
    assert decimal_text(got[("wait", "mean")].value, got[("wait", "mean")].places) == "11.14"
    assert (got[("wait", "mean")].start, got[("wait", "mean")].end) == (0, 3600)
    assert got[("speed", "h1")].value is None and got[("speed", "h1")].note == "suppressed"
    heads = headline(summary_values(s, manifest))
    assert heads["temperature"].stat == "mean" and heads["wait"].stat == "mean" and heads["speed"].stat == "h0"
    # Without its manifest a summary is still exported, unscaled and said to be so.
    bare = summary_values(s, None)
    assert {v.note for v in bare if v.metric == "temperature" and v.value is not None} == {
        "no manifest for this summary"}


def test_web_command_port_in_use_is_environment(city, capsys):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        code, out, err = cli(capsys, "web", "--store", city.store, "--registry", city.registry, "--port",
                             s.getsockname()[1])
    assert code == 3 and "cannot listen" in err and "Traceback" not in err
