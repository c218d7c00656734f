"""`civicmote label ID --out FILE.svg|.png`: the pole label."""
import json
import xml.etree.ElementTree as ET

import pytest
import segno
from cli_helpers import cli
from provision_support import PASSPHRASE, write_board

from provisioning.field import label


@pytest.fixture
def device(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("CIVICMOTE_CA_PASSPHRASE", PASSPHRASE)
    monkeypatch.setenv("CIVICMOTE_REGISTRY", str(tmp_path / "registry.db"))
    assert cli(capsys, "ca", "init", "--dir", tmp_path / "ca")[0] == 0
    code, out, err = cli(capsys, "provision", "--board", write_board(tmp_path), "--district", "harbour", "--target",
                         tmp_path / "d", "--ca", tmp_path / "ca", "--json", "--location", "Pier 4 lamp post",
                         "--contact", "sensors@city.example")
    assert code == 0, err
    return tmp_path, json.loads(out)["device_id"]


def _texts(svg_path):
    root = ET.parse(svg_path).getroot()  # well-formed XML or this raises
    return [t.text for t in root.iter("{http://www.w3.org/2000/svg}text")], root


def test_svg_label_says_what_who_and_never(device, capsys):
    tmp, dev = device
    out_path = tmp / "label.svg"
    code, out, err = cli(capsys, "label", dev, "--out", out_path, "--manifest-url",
                         "https://data.city.example/sensors/{district}/{device_id}", "--json")
    assert code == 0, err
    r = json.loads(out)
    url = "https://data.city.example/sensors/harbour/%s" % dev
    assert r["url"] == url
    texts, root = _texts(out_path)
    joined = "\n".join(texts)
    assert dev in texts and url in texts
    assert "air temperature (degC)" in joined
    assert "people passing by (events): a noisy total only, no one is identified" in " ".join(texts)
    assert "It never collects" in texts and "images or video" in joined
    assert "sensors@city.example" in joined and "Pier 4 lamp post" in joined
    # The QR code is segno's encoding of exactly that URL.
    expected = segno.make(url, error="m")
    path = [e for e in root.iter() if e.tag.endswith("path")]
    scale = max(2, 180 // expected.symbol_size(scale=1, border=0)[0])
    want = ET.fromstring(expected.svg_inline(scale=scale, border=0, dark="#000"))
    assert path[0].get("d") == [e for e in want.iter() if e.tag.endswith("path")][0].get("d")


def test_url_base_puts_the_device_page_in_the_qr_code(device, capsys, monkeypatch):
    tmp, dev = device
    code, out, err = cli(capsys, "label", dev, "--out", tmp / "l.svg", "--url-base", "https://sensors.city.example/",
                         "--json")
    assert code == 0, err
    url = "https://sensors.city.example/d/%s" % dev
    assert json.loads(out)["url"] == url
    texts, root = _texts(tmp / "l.svg")
    assert url in texts
    expected = segno.make(url, error="m")
    scale = max(2, 180 // expected.symbol_size(scale=1, border=0)[0])
    want = ET.fromstring(expected.svg_inline(scale=scale, border=0, dark="#000"))
    got = [e for e in root.iter() if e.tag.endswith("path")][0].get("d")
    assert got == [e for e in want.iter() if e.tag.endswith("path")][0].get("d")
    monkeypatch.setenv("CIVICMOTE_URL_BASE", "http://127.0.0.1:8080")
    code, out, err = cli(capsys, "label", dev, "--out", tmp / "l.svg", "--json")
    assert code == 0 and json.loads(out)["url"] == "http://127.0.0.1:8080/d/%s" % dev
    for bad in ("sensors.city.example", "ftp://x", "https://", "https://a b"):
        code, out, err = cli(capsys, "label", dev, "--out", tmp / "l.svg", "--url-base", bad)
        assert code == 2 and "--url-base" in err and "Traceback" not in err
    code, out, err = cli(capsys, "label", dev, "--out", tmp / "l.svg", "--url-base", "https://a", "--manifest-url", "x")
    assert code == 2


def test_default_qr_is_the_manifest_topic_and_contact_option_wins(device, capsys):
    tmp, dev = device
    code, out, err = cli(capsys, "label", dev, "--out", tmp / "l.svg", "--contact", "Call 311", "--json")
    assert code == 0
    assert json.loads(out)["url"] == "civicmote/v1/harbour/%s/manifest" % dev
    texts, _ = _texts(tmp / "l.svg")
    assert "Call 311" in texts and "sensors@city.example" not in texts


def test_png_is_the_qr_code(device, capsys):
    tmp, dev = device
    code, out, err = cli(capsys, "label", dev, "--out", tmp / "l.png")
    assert code == 0, err
    assert (tmp / "l.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "QR code only" in out


def test_label_bad_input(device, capsys):
    tmp, dev = device
    assert cli(capsys, "label", dev, "--out", tmp / "l.pdf")[0] == 2
    code, out, err = cli(capsys, "label", "cm" + "a" * 16, "--out", tmp / "l.svg")
    assert code == 2 and "not in the registry" in err
    code, out, err = cli(capsys, "label", dev, "--out", tmp / "l.svg", "--manifest-url", "{nope}")
    assert code == 2 and "template" in err


def test_plain_measures_fallbacks():
    assert label.plain_measures([{"metric": "pm2_5", "unit": "ug/m3", "class": "environmental"}]) == ["PM2.5 (ug/m3)"]
    assert label.plain_measures([])[0].startswith("nothing")
