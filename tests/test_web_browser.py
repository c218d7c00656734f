"""The device page and the fleet view in a real headless Chromium (Debian's), served by `civicmote web`.

Checks what a resident sees on a phone-sized screen (content, the charts drawn, no sideways
scrolling, German from the catalogue), that no request leaves the host (Chromium's own network
log), the page weight, and keeps full-page screenshots under build/web/ as test artifacts.
"""
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from web_support import make_city

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "build" / "web"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
DRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-default-apps", "--disable-extensions", "--hide-scrollbars")
PHONE = {"width": 390, "height": 844, "pixelRatio": 1}

pytestmark = pytest.mark.skipif(not (os.path.exists(CHROMIUM) and os.path.exists(DRIVER)),
                                reason="needs Debian's chromium and chromium-driver (make setup installs them)")


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("web")
    city = make_city(tmp, int(time.time()))
    proc = subprocess.Popen([sys.executable, "-m", "provisioning.cli", "web", "--store", city.store, "--registry",
                             city.registry, "--port", "0", "--timezone", "Europe/Berlin", "--json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        line = proc.stdout.readline()
        assert line, proc.stderr.read()
        city.url = json.loads(line)["url"]
        yield city
    finally:
        proc.terminate()
        assert proc.wait(timeout=10) == 0  # SIGTERM is a clean stop


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for f in FLAGS:
        opts.add_argument(f)
    opts.add_argument("--user-data-dir=%s" % tmp_path_factory.mktemp("chromium-profile"))
    opts.add_experimental_option("mobileEmulation", {"deviceMetrics": PHONE})
    opts.set_capability("goog:loggingPrefs", {"performance": "ALL"})
    drv = webdriver.Chrome(options=opts, service=Service(executable_path=DRIVER))
    drv.execute_cdp_cmd("Network.enable", {})
    drv.execute_cdp_cmd("Network.setCacheDisabled", {"cacheDisabled": True})
    try:
        yield drv
    finally:
        drv.quit()


def load(drv, url):
    """Open url; -> ([requested URLs], bytes on the wire) from Chromium's network log of this load."""
    drv.get_log("performance")  # drop what came before
    drv.get(url)
    requests, weight = [], 0
    for entry in drv.get_log("performance"):
        msg = json.loads(entry["message"])["message"]
        if msg["method"] == "Network.requestWillBeSent":
            requests.append(msg["params"]["request"]["url"])
        elif msg["method"] == "Network.loadingFinished":
            weight += int(msg["params"]["encodedDataLength"])
    return requests, weight


def screenshot(drv, name):
    """A full-page PNG under build/web/; -> its path."""
    import base64

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    width, height = drv.execute_script("return [window.innerWidth, document.documentElement.scrollHeight]")
    shot = drv.execute_cdp_cmd("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True, "clip": {
        "x": 0, "y": 0, "width": width, "height": height, "scale": 1}})
    path = ARTIFACTS / name
    path.write_bytes(base64.b64decode(shot["data"]))
    print("screenshot: %s (%d px tall)" % (path, height))
    return path


def section_shot(drv, name):
    """A PNG of the page's privacy section (what it measures, in the signed manifest's words)."""
    from selenium.webdriver.common.by import By

    import base64

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    box = drv.find_element(By.ID, "measures").rect  # the whole section, also below the first screen
    assert box["height"] > 400, box  # drawn, not empty: the people paragraph and nine metrics
    shot = drv.execute_cdp_cmd("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True, "clip": {
        "x": box["x"], "y": box["y"], "width": box["width"], "height": box["height"], "scale": 1}})
    path = ARTIFACTS / name
    path.write_bytes(base64.b64decode(shot["data"]))
    print("screenshot: %s (%d px tall)" % (path, box["height"]))
    return path


def only_local(requests, base):
    return [u for u in requests if not (u.startswith(base + "/") or u.startswith("data:"))]


def fits_the_phone(drv):
    return drv.execute_script("return document.documentElement.scrollWidth <= window.innerWidth")


def test_device_page_on_a_phone(served, browser):
    from selenium.webdriver.common.by import By

    dev = served.active.dev
    requests, weight = load(browser, "%s/d/%s" % (served.url, dev))
    assert only_local(requests, served.url) == []
    assert any(u.endswith("/static/civicmote.css") for u in requests)
    assert browser.find_element(By.TAG_NAME, "h1").text == dev
    body = browser.find_element(By.TAG_NAME, "body").text
    for words in ("District north", "Market Square, pole 7", "Online", "What it measures", "What it never collects",
                  "images or video", "Temperature", "People passing", "at most 2.64 per day on any one person",
                  "When the noisy count (after the noise is added) is under 5",
                  "Latest values", "Last 24 hours", "sensors@city.example", "civicmote verify --public-key"):
        assert words in body, words
    assert "✓" in browser.find_element(By.ID, "verify").text  # the latest message verified on this load
    charts = browser.find_elements(By.CSS_SELECTOR, "svg.chart")
    assert len(charts) == 9  # seven environmental metrics, two personal ones
    for svg in charts:
        box = svg.rect
        assert box["width"] > 300 and box["height"] > 100  # drawn at phone width, not collapsed
    lines = browser.find_elements(By.CSS_SELECTOR, "svg.line-chart polyline.line")
    assert len(lines) >= 7 * 2  # the missing windows break each line in two
    assert all(len(p.get_attribute("points").split()) > 1 for p in lines)
    assert len(browser.find_elements(By.CSS_SELECTOR, "svg.bar-chart rect.bar")) > 10
    assert browser.find_elements(By.CSS_SELECTOR, "svg.bar-chart rect.missing")  # suppressed hours are shown
    assert fits_the_phone(browser)
    screenshot(browser, "device-en.png")
    section_shot(browser, "privacy-en.png")
    print("page weight: %d bytes on the wire for %d requests (%s)" % (weight, len(requests), ", ".join(
        u[len(served.url):] for u in requests)))
    (ARTIFACTS / "page-weight.json").write_text(json.dumps({"bytes": weight, "requests": len(requests)}) + "\n")
    assert 0 < weight < 200_000


def test_device_page_in_german(served, browser):
    from selenium.webdriver.common.by import By

    requests, _ = load(browser, "%s/d/%s?lang=de" % (served.url, served.active.dev))
    assert only_local(requests, served.url) == []
    assert browser.find_element(By.TAG_NAME, "html").get_attribute("lang") == "de"
    body = browser.find_element(By.TAG_NAME, "body").text
    for words in ("Bezirk north", "Was er nie erfasst", "Temperatur", "Aktuelle Werte", "Letzte 24 Stunden",
                  "Selbst nachprüfen", "auf 0,1 °C genau", "höchstens 2,64 pro Tag", "ε = 0,03 je Stunde",
                  "so viel wie bei 2,6 Personen"):
        assert words in body, words
    assert fits_the_phone(browser)
    screenshot(browser, "device-de.png")
    section_shot(browser, "privacy-de.png")


def test_revoked_device_and_unknown_id(served, browser):
    from selenium.webdriver.common.by import By

    load(browser, "%s/d/%s" % (served.url, served.revoked.dev))
    banner = browser.find_element(By.CSS_SELECTOR, ".banner.revoked").text
    assert "taken out of service" in banner and "key compromised" in banner
    screenshot(browser, "device-revoked.png")
    load(browser, "%s/d/%s" % (served.url, served.empty.dev))
    assert "Nothing published yet" in browser.find_element(By.TAG_NAME, "body").text
    assert not browser.find_elements(By.CSS_SELECTOR, "svg.chart")
    load(browser, "%s/d/cmaaaaaaaaaaaaaaaa" % served.url)
    assert browser.find_element(By.TAG_NAME, "h1").text == "No such sensor"


def test_fleet_view(served, browser):
    from selenium.webdriver.common.by import By

    requests, _ = load(browser, "%s/fleet" % served.url)
    # An operator's screen, not a phone.
    browser.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {"width": 1280, "height": 800,
                                                                   "deviceScaleFactor": 1, "mobile": False})
    assert browser.execute_script("return window.innerWidth") == 1280
    assert only_local(requests, served.url) == []
    rows = browser.find_elements(By.CSS_SELECTOR, "table.fleet tbody tr")
    assert len(rows) == 3
    by_dev = {r.get_attribute("data-device"): r.text for r in rows}
    assert "Online" in by_dev[served.active.dev] and "missing 3" in by_dev[served.active.dev]
    assert "Offline" in by_dev[served.revoked.dev] and "revoked" in by_dev[served.revoked.dev]
    reasons = browser.find_element(By.CSS_SELECTOR, "table.rejections").text
    assert "signature" in reasons and served.active.dev in reasons
    screenshot(browser, "fleet.png")
