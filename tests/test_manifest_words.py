"""What residents read is what the device signed (issue 21): every shipped board profile, in every
shipped catalogue, through the one renderer as the page (Flask test client, a store filled by the
real Collector with the signed manifest) and `civicmote manifest show` print it.

- every number shown is the manifest's own, or follows from it by the arithmetic the manifest
  states (computed here independently): epsilon per window, the daily cap per person, k, the
  window, the per-person bound, the rotation period, the refractory time;
- each of those appears in its metric's paragraph;
- nothing prints None, null, an empty value or an unfilled placeholder;
- none of the withdrawn claims listed in docs/privacy.md under "What we do not claim" appears.
"""
import html
import math
import os
import re
from fractions import Fraction
from pathlib import Path

import pytest

from cli_helpers import cli
from agent import crypto
from agent.board import load_profile
from agent.core import cose, summary
from agent.privacy.manifest import board_manifest, build_manifest, payload
from agent.store import identity
from provisioning.city.collector import Collector
from provisioning.city.verifier import KeyRing
from provisioning.pki.registry import Registry
from provisioning.language import catalogue, manifest_words
from provisioning.web.app import Settings, create_app

ROOT = Path(__file__).resolve().parents[1]
BOARDS = sorted((ROOT / "boards").glob("*.json"))
CATALOGUES = catalogue.SHIPPED  # a city's own: add its file here
NOW = 1764248400  # 2025-11-27 13:00 UTC, an hour boundary
NAMES = re.compile(r"PM\d+(?:[.,]\d+)?|CO2|NO2|O3")  # numbers that are part of a metric's name


def withdrawn_claims():
    """The backticked phrases under docs/privacy.md's "What we do not claim"."""
    text = (ROOT / "docs" / "privacy.md").read_text(encoding="utf-8")
    section = text.split("\n## What we do not claim\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"`([^`]+)`", section)


# -- the numbers, computed from the manifest without the renderer ---------------------------

def fmt(value, cat):
    """A Fraction as its exact short decimal in the catalogue's notation (what the page must show)."""
    value = Fraction(value)
    for places in range(7):
        scaled = value * 10 ** places
        if scaled.denominator == 1:
            whole, frac = divmod(int(scaled), 10 ** places)
            return "%d" % whole + ((cat.texts["_decimal"] + "%0*d" % (places, frac)) if places else "")
    raise AssertionError("no short decimal: %s" % value)


def period_number(seconds):
    """The number in "every 15 minutes" / "hour" (None: the unit alone)."""
    for size in (86400, 3600, 60, 1):
        if seconds % size == 0:
            n = seconds // size
            return None if n == 1 else n
    return seconds


def expected(m, cat):
    """{paragraph key: [numbers that must appear there]} and the set of every number allowed."""
    must, allowed = {}, set()
    p = m["privacy"]
    cap = Fraction(p["daily_epsilon"])
    must["people"] = [fmt(cap, cat), fmt(Fraction(p["every_window_per_day"]), cat)]
    times = math.exp(float(cap))
    allowed.add("%.0f" % times if times >= 10 else ("%.1f" % times).replace(".", cat.texts["_decimal"]))
    for e in m["metrics"]:
        nums = []
        w = period_number(e["window"])
        if w is not None:
            nums.append(str(w))
        if e["class"] == "environmental":
            nums.append(fmt(Fraction(e["resolution"]), cat))
            must[e["name"]] = nums
            continue
        nums.append(fmt(Fraction(e["epsilon"]), cat))
        nums.append(str(e["k"]))
        if e["mechanism"] == "count":
            nums.append(str(e["per_person"]))
            worst = e.get("worst_case")
            if worst is not None and worst > e["per_person"]:
                nums.append(str(worst))
                if e.get("refractory_s"):
                    n = period_number(e["refractory_s"])
                    nums.extend([] if n is None else [str(n)])
                if e.get("max_events"):
                    nums.append(str(e["max_events"]))
                ratio = Fraction(worst, e["per_person"])
                allowed.add(fmt(Fraction(math.floor(ratio * 10), 10), cat))
                allowed.add(fmt(Fraction(e["epsilon"]) * ratio, cat))
        elif e["mechanism"] == "distinct":
            n = period_number(e["rotation_s"])
            nums.extend([str(e.get("devices", 1)), str(e["sensitivity"])] + ([] if n is None else [str(n)]))
            fast = e["rotation_s"] // 3
            more = e.get("devices", 1) * (-(-e["window"] // fast) + 1)
            assert more > e["sensitivity"]
            n = period_number(fast)
            allowed.update([str(more), fmt(Fraction(math.floor(Fraction(more * 10, e["sensitivity"])), 10), cat)]
                           + ([] if n is None else [str(n)]))
        must[e["name"]] = nums
    for nums in must.values():
        allowed.update(nums)
    allowed.add(str(len(m["metrics"])))
    return must, allowed


def numbers(text):
    text = NAMES.sub(" ", text)
    return re.findall(r"\d+(?:[.,]\d+)?", text)


def check_text(text, m, cat, where):
    """Every check of the module docstring on one rendering of manifest m."""
    if m.get("dev"):
        text = text.replace(m["dev"], "DEV")
    must, allowed = expected(m, cat)
    stray = [n for n in numbers(text) if n not in allowed]
    assert not stray, "%s: numbers not in the manifest: %s" % (where, stray)
    paras = {}
    for e in m["metrics"]:
        title = cat.metric_title(e["name"], e) + ":"
        found = [ln for ln in text.split("\n") if ln.strip().startswith(title)]
        assert len(found) == 1, (where, e["name"], found)
        paras[e["name"]] = found[0]
    people = [ln for ln in text.split("\n") if cat("manifest.people", cap="", times="")[:12] in ln]
    assert len(people) == 1, (where, "the paragraph on people")
    paras["people"] = people[0]
    for key, nums in must.items():
        got = numbers(paras[key])
        for n in nums:
            assert n in got, "%s: %s should show %s: %s" % (where, key, n, paras[key])
    for line in text.split("\n"):
        bad = re.search(r"\bNone\b|\bnull\b|\{|\}|\(\s*\)|=\s*[(),;.]|\s[,.;:]|  ", line.strip())
        assert not bad, "%s: %r in %s" % (where, bad.group(0), line)
    low = text.lower()
    for claim in withdrawn_claims():
        assert claim.lower() not in low, "%s: withdrawn claim %r" % (where, claim)


# -- the tests ---------------------------------------------------------------------------------

def test_the_withdrawn_claims_are_listed():
    claims = withdrawn_claims()
    assert "no single person can be detected" in claims and "are never published" in claims
    assert "keine einzelne Person erkannt werden kann" in claims and len(claims) >= 8


@pytest.mark.parametrize("lang", CATALOGUES)
@pytest.mark.parametrize("board", BOARDS, ids=lambda p: p.stem)
def test_manifest_show_says_what_the_manifest_says(capsys, board, lang):
    m = board_manifest(load_profile(str(board)))
    assert m["v"] == 2 and m.get("privacy")
    code, out, _ = cli(capsys, "manifest", "show", "--board", str(board), "--lang", lang)
    assert code == 0
    check_text(out, m, catalogue.load(lang), "%s manifest show (%s)" % (board.stem, lang))


@pytest.fixture(scope="module")
def city(tmp_path_factory):
    """One registered device per shipped board, each with its signed manifest and one hour's
    summary (footfall suppressed, presence released) accepted by the real Collector."""
    tmp = tmp_path_factory.mktemp("boards")
    store, reg_path = str(tmp / "city.db"), str(tmp / "registry.db")
    reg = Registry(reg_path, create=True)
    ring = KeyRing()
    devices = {}
    for board in BOARDS:
        key = crypto.generate_signing_key(os.urandom)
        dev, pub = identity.public_identity(key)
        m = board_manifest(load_profile(str(board)), dev)
        reg.register({"device_id": dev, "public_key": pub.hex(), "district": "north", "board": board.stem,
                      "target": "sim://" + dev, "location": "pole", "contact": "sensors@city.example"})
        ring.add_public_key(pub)
        devices[board.stem] = (dev, key, m)
    col = Collector(ring, store)
    for dev, key, m in devices.values():
        topic = "civicmote/v1/north/%s/" % dev
        col.handle(topic + "manifest", cose.sign1(payload(m), key, dev.encode()), received_at=NOW - 10)
        released = {"footfall": {"suppressed": True}, "presence": {"n": 42}}
        s = summary.build(dev, 1, NOW - 300, NOW, released, summary.manifest_hash(payload(m)), health={"up": 300})
        events = col.handle(topic + "summary", cose.sign1(summary.encode(s), key, dev.encode()), received_at=NOW)
        assert [ev["event"] for ev in events] == ["summary"], events
    col.close()
    return store, reg_path, devices


def section(page, ident):
    """The text of <section id=ident>, tags dropped, one line per paragraph or list item."""
    body = page.split('<section id="%s">' % ident, 1)[1].split("</section>", 1)[0]
    body = re.sub(r"<(?:/p|/li|br)\s*>", "\n", body)
    return html.unescape(re.sub(r"<[^>]+>", "", body))


@pytest.mark.parametrize("lang", CATALOGUES)
def test_the_page_says_what_the_signed_manifest_says(city, lang):
    store, reg_path, devices = city
    client = create_app(Settings(store, reg_path, lang="en", tz="UTC", clock=lambda: NOW)).test_client()
    cat = catalogue.load(lang)
    for board, (dev, _, m) in sorted(devices.items()):
        r = client.get("/d/%s?lang=%s" % (dev, lang))
        assert r.status_code == 200, board
        page = r.get_data(as_text=True)
        check_text(section(page, "measures"), m, cat, "%s page (%s)" % (board, lang))
        text = html.unescape(re.sub(r"<[^>]+>", " ", page)).lower()
        for claim in withdrawn_claims():
            assert claim.lower() not in text, "%s page (%s): withdrawn claim %r" % (board, lang, claim)
        footfall = [e for e in m["metrics"] if e["name"] == "footfall"][0]
        assert manifest_words.suppressed_note(footfall, cat) in html.unescape(page)  # the latest value's note
        assert not re.search(r"\bNone\b", section(page, "latest"))


def test_german_uses_decimal_commas_and_english_points():
    m = board_manifest(load_profile(str(ROOT / "boards" / "sim.json")), "cmabcdefghijklmnop")
    de = manifest_words.describe(m, catalogue.load("de"))
    en = manifest_words.describe(m, catalogue.load("en"))
    assert "höchstens 2,64 pro Tag" in de and "ε = 0,03 je Stunde" in de and "ε = 0,08 je Stunde" in de
    assert "so viel wie bei 2,6 Personen" in de and "alle 15 Minuten" in de and "alle 2 Sekunden" in de
    assert "at most 2.64 per day on any one person" in en and "as 2.6 people are" in en
    assert "2.64" not in de and "0.03" not in de and "2,64" not in en


def test_a_city_catalogue_adds_a_language(tmp_path, capsys):
    # a partial catalogue: what it translates is used, the rest falls back to English
    f = tmp_path / "xx.json"
    f.write_text('{"_language": "Test", "_decimal": ";", "manifest.k": "K-RULE {k} on the noisy count."}',
                 encoding="utf-8")
    code, out, _ = cli(capsys, "manifest", "show", "--board", str(ROOT / "boards" / "sim.json"), "--lang", str(f))
    assert code == 0
    assert "K-RULE 5 on the noisy count." in out and "2;64 per day" in out


def test_an_older_manifest_is_not_filled_in():
    # a version-1 entry: no per-person bound, its cap per metric; the page says it cannot say
    old = {"kind": "manifest", "v": 1, "dev": "cmabcdefghijklmnop", "metrics": [
        {"name": "footfall", "unit": "events", "window": 3600, "class": "personal", "mechanism": "count",
         "epsilon": "1/10", "daily_epsilon": "1", "k": 5}]}
    for lang in CATALOGUES:
        cat = catalogue.load(lang)
        title, body = manifest_words.metric(old["metrics"][0], cat)
        assert body == cat("manifest.incomplete") and "None" not in body
        assert manifest_words.people(old, cat) == ""


def test_every_mechanism_reads_plainly():
    # the portable manifest test's metrics: count with max_events, distinct, mean, histogram
    metrics = [
        {"name": "temperature", "unit": "°C", "window": 300, "class": "environmental",
         "description": "the air temperature"},
        {"name": "footfall", "unit": "people", "window": 300, "class": "personal", "description": "people passing",
         "dp": {"mechanism": "count", "epsilon": "0.5", "per_person": 2, "max_events": 150, "k": 5}},
        {"name": "phones", "unit": "devices", "window": 300, "class": "personal",
         "dp": {"mechanism": "distinct", "epsilon": "1/4", "rotation_s": 900, "k": 10, "bits": 2048}},
        {"name": "dwell", "unit": "s", "window": 3600, "class": "personal", "description": "time spent at the stop",
         "dp": {"mechanism": "mean", "epsilon": "1", "per_person": 1, "lo": 0, "hi": 600, "k": 5}},
        {"name": "speed", "unit": "km/h", "window": 900, "class": "personal", "description": "vehicle speeds",
         "dp": {"mechanism": "histogram", "epsilon": "1/2", "per_person": 1, "k": 3, "buckets": [20, 30, 50]}},
    ]
    text = manifest_words.describe(build_manifest(metrics, device_id="cmabcdefghijklmnop", daily_epsilon="2.64"),
                                   catalogue.load("en"))
    assert text.startswith("Device cmabcdefghijklmnop publishes 5 measurements.")
    assert ("Publishing every window would spend 288 a day, so once the day's budget is spent the measurements "
            "of people are withheld until the next day (UTC).") in text
    assert ("People passing: counts people walking past, with noise added (ε = 0.5 per 5 minutes for one person). The "
            "promise holds for anyone who sets the sensor off at most 2 times in a window (walking past, or "
            "arriving and leaving). The sensor counts at most 150 events in a window, so someone who stays and "
            "keeps setting it off is counted at most 150 times in a window: they are protected only as 75 people "
            "together are (ε up to 37.5 for that window). When the noisy count (after the noise is added) is "
            "under 5, only \"suppressed\" is published; the true count may be a little above or below 5.") in text
    assert ("Temperature: measures the air temperature and publishes its average, lowest value and highest "
            "value every 5 minutes, to the nearest 1 °C. No personal data.") in text
    assert ("changes its address no more often than every 15 minutes, so one person shows at most 2 addresses "
            "in a window. When the noisy count") in text  # 5 minutes: no faster rotation adds an address
    assert "Time spent at the stop: averages time spent at the stop, each reading capped between 0 and 600 s" in text
    assert "(ε = 1 per hour for one person). The promise holds for anyone who affects at most 1 reading in a window." in text
    assert "Vehicle speeds: counts vehicle speeds in ranges (below 20, 20 to 30, 30 to 50, 50 and above km/h)" in text
    assert ("A range whose noisy count (after the noise is added) is under 3 is published as empty; its true count "
            "may be a little above or below 3.") in text
