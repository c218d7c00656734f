"""`make demo` end to end: provisioned devices -> mutual-TLS broker -> verifying collector.

The demo's broker is Mosquitto; without it (or with CIVICMOTE_DEMO_BROKER=embedded) it is the
embedded amqtt broker of provisioning/city/embedded_broker.py, which must enforce the same rules:
client certificates, CN as identity, and broker-config's ACL.
"""
import json
import os
import re
import socket
import ssl
import subprocess
import sys
import threading
import time
from pathlib import Path

import paho.mqtt.client as paho

from provisioning.city.broker_config import COLLECTOR_CN, acl_text
from provisioning.city.embedded_broker import Acl

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def run_demo(broker):
    env = dict(os.environ, CIVICMOTE_DEMO_BROKER=broker)
    r = subprocess.run([sys.executable, str(ROOT / "tools" / "demo.py")], capture_output=True, text=True,
                       timeout=150, cwd=ROOT, env=env)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return r.stdout


def assert_story(out):
    assert "30 of 30 summaries received" in out and "0 rejected" in out
    assert out.count("verified") >= 30
    assert "People passing: counts people walking past, with noise added" in out  # the manifest, in plain words
    assert "no single person" not in out and "<k" not in out
    # It crosses an hour, so the hourly people counts are in its table: each device's window
    # ending 08:00 shows footfall and presence (a noisy count, or the manifest's "suppressed").
    hourly = [ln for ln in out.splitlines() if re.search(r"07:55-08:00 ", ln)]
    assert len(hourly) == 3, hourly
    for ln in hourly:
        m = re.search(r"people/h (\S+)\s+phones/h (\S+)\s+\d+ bytes", ln)
        assert m, ln
        for cell in m.groups():
            assert cell == "suppressed" or cell.isdigit(), ln
    # and one line, in the manifest's words, says what a noisy or suppressed count means
    assert ("Counts of people have noise added on purpose, so a published count may be a little above or below "
            "the true one. When the noisy count (after the noise is added) is under 5, only \"suppressed\" is "
            "published; the true count may be a little above or below 5.") in out
    ratio = int(out.split("would have sent ")[1].split("x more")[0].split(", ")[1])
    assert ratio >= 50
    # It ends with the device page's address, which it fetched from civicmote web during the run.
    last = out.strip().splitlines()
    assert last[-1].strip().startswith("http://127.0.0.1:8080/d/cm") and "web --store demo-out/city.db" in last[-2]
    assert "HTTP 200" in out and " 9 charts" in out  # one per metric of the sim board
    assert (ROOT / "demo-out" / ("label-%s.svg" % last[-1].strip().rsplit("/", 1)[1])).exists()
    # Everything it started is gone: no broker or device left running from demo-out.
    ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    assert "demo-out" not in ps and "embedded_broker" not in ps


def test_demo_tells_the_whole_story():
    out = run_demo("mosquitto")
    assert_story(out)
    assert "Broker used: Mosquitto (" in out and "embedded" not in out


def test_demo_falls_back_to_the_embedded_broker():
    out = run_demo("embedded")
    assert_story(out)
    assert "Broker used: embedded amqtt 0.12.1 broker, forced by CIVICMOTE_DEMO_BROKER=embedded." in out
    assert "the real city broker is Mosquitto with `civicmote broker-config`" in out
    assert "Mosquitto on 127.0.0.1" not in out
    log = (ROOT / "demo-out" / "broker" / "embedded-broker.log").read_text()
    assert "embedded broker stopped" in log and "acl:" not in log  # stopped cleanly; nothing was refused


# -- the embedded broker enforces broker-config's rules ------------------------------------------

def test_acl_follows_mosquitto_rules_for_broker_config_lines():
    records = [{"device_id": "dev-a", "status": "active", "district": "north"},
               {"device_id": "dev-b", "status": "active", "district": "south"},
               {"device_id": "dev-old", "status": "revoked", "district": "north"}]
    acl = Acl(acl_text(records))
    ok = acl.allowed
    assert ok("dev-a", "dev-a", "civicmote/v1/north/dev-a/summary", "write")
    assert not ok("dev-a", "dev-a", "civicmote/v1/north/dev-b/summary", "write")
    assert not ok("dev-a", "dev-a", "civicmote/v1/south/dev-a/summary", "write")  # only its registered district
    assert ok("dev-b", "dev-b", "civicmote/v1/south/dev-b/manifest", "write")
    assert not ok("dev-a", "dev-a", "civicmote/v1/north/dev-a/summary", "read")  # devices read nothing
    assert not ok("dev-a", "dev-a", "civicmote/v1/#", "read")
    assert not ok("dev-old", "dev-old", "civicmote/v1/north/dev-old/summary", "write")  # deny beats the pattern
    assert ok(COLLECTOR_CN, "x", "civicmote/v1/+/+/summary", "read")
    assert ok(COLLECTOR_CN, "x", "civicmote/v1/north/dev-a/summary", "read")
    assert not ok(COLLECTOR_CN, "x", "civicmote/v1/north/%s/summary" % COLLECTOR_CN, "write")
    assert not ok(COLLECTOR_CN, "x", "civicmote/#", "read")  # wider than its grant
    assert not ok("a/b", "c", "civicmote/v1/n/a/b/summary", "write")  # %u holding '/' widens nothing
    assert not ok(None, "dev-a", "civicmote/v1/north/dev-a/summary", "write")
    for bad in ("topic", "user", "topics read a/b", "topic deny"):
        try:
            Acl(bad)
        except ValueError as e:
            assert "acl line 1" in str(e)
        else:
            raise AssertionError("accepted %r" % bad)


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _cli(*args, env):
    r = subprocess.run([str(BIN / "civicmote"), *map(str, args), "--json"], capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr
    return r.stdout


class _Client:
    """A paho client with its events gathered: subscriptions granted, messages received."""

    def __init__(self, port, client_id, ca, cert=None, key=None, clean=True):
        self.messages, self.granted, self.rc = [], [], None
        self.ready = threading.Event()
        c = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=clean,
                        protocol=paho.MQTTv311)
        ctx = ssl.create_default_context(cafile=str(ca))
        if cert:
            ctx.load_cert_chain(str(cert), str(key))
        c.tls_set_context(ctx)
        c.on_connect = lambda cl, u, f, rc, p: (setattr(self, "rc", rc), self.ready.set())
        c.on_message = lambda cl, u, m: self.messages.append((m.topic, m.payload))
        c.on_subscribe = lambda cl, u, mid, rcs, p: self.granted.extend(rcs)
        self.c = c
        c.connect("localhost", port, 30)
        c.loop_start()
        assert self.ready.wait(5) and not self.rc.is_failure, "%s: %s" % (client_id, self.rc)

    def publish(self, topic, payload):
        self.c.publish(topic, payload, qos=1).wait_for_publish(5)

    def close(self):
        self.c.disconnect()
        self.c.loop_stop()


def _wait(cond, timeout=5):
    end = time.monotonic() + timeout
    while not cond() and time.monotonic() < end:
        time.sleep(0.02)
    return cond()


def test_embedded_broker_enforces_certificates_and_acl(tmp_path):
    env = dict(os.environ, CIVICMOTE_CA_PASSPHRASE="test-only", CIVICMOTE_REGISTRY=str(tmp_path / "reg.db"))
    port = _free_port()
    _cli("ca", "init", "--dir", tmp_path / "ca", env=env)
    devs = {}
    for district in ("north", "harbour"):
        d = tmp_path / district
        rec = json.loads(_cli("provision", "--board", ROOT / "boards" / "sim.json", "--district", district,
                              "--target", d, "--broker", "mqtts://localhost:%d" % port, "--ca", tmp_path / "ca",
                              env=env))
        devs[district] = (rec["device_id"], d / "device.crt", d / "device.pem")
    b = tmp_path / "broker"
    user = ["--user", "root"] if os.geteuid() == 0 else []  # the embedded broker runs as us, as in tools/demo.py
    _cli("broker-config", "--ca", tmp_path / "ca", "--out", b, "--port", port, "--bind", "127.0.0.1", *user, env=env)
    log = open(tmp_path / "broker.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "provisioning.city.embedded_broker", "--dir", b, "--port", str(port)],
                            stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
    clients = []
    try:
        assert _wait(lambda: _connectable(port) or proc.poll() is not None) and proc.poll() is None
        (a, a_crt, a_key), (bdev, b_crt, b_key) = devs["north"], devs["harbour"]
        city = _Client(port, "city", b / "ca.crt", b / "collector.crt", b / "collector.key")
        clients.append(city)
        city.c.subscribe("civicmote/v1/#", qos=1)
        assert _wait(lambda: city.granted) and city.granted[0].value == 1
        # Device b leaves a persistent session under a client id that device a then resumes.
        dev_b = _Client(port, "shared-id", b / "ca.crt", b_crt, b_key, clean=False)
        dev_b.close()
        dev_a = _Client(port, "shared-id", b / "ca.crt", a_crt, a_key, clean=False)
        clients.append(dev_a)
        dev_a.c.subscribe("civicmote/v1/#", qos=1)  # devices read nothing
        assert _wait(lambda: dev_a.granted) and dev_a.granted[0].is_failure
        dev_a.publish("civicmote/v1/harbour/%s/summary" % bdev, b"forged by a")
        city.publish("civicmote/v1/north/%s/summary" % a, b"written by the city")
        dev_a.publish("civicmote/v1/north/%s/summary" % a, b"a's own")
        assert _wait(lambda: city.messages)
        time.sleep(0.3)
        assert city.messages == [("civicmote/v1/north/%s/summary" % a, b"a's own")]
        text = (tmp_path / "broker.log").read_text()
        assert "acl: shared-id (user %s) may not publish civicmote/v1/harbour/%s/summary" % (a, bdev) in text
        assert "acl: city (user %s) may not publish" % COLLECTOR_CN in text
        # No client certificate, no connection.
        try:
            _Client(port, "anonymous", b / "ca.crt")
        except (OSError, AssertionError):
            pass
        else:
            raise AssertionError("a client without a certificate was let in")
    finally:
        for c in clients:
            c.close()
        proc.terminate()
        proc.wait(5)
        log.close()
    assert proc.returncode == 0, (tmp_path / "broker.log").read_text()[-2000:]


def _connectable(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
        return True
    except OSError:
        return False
