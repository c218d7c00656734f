"""`civicmote broker-config` against a real Mosquitto: mutual TLS, per-device ACLs, CRL, collector.

Mosquitto drops unauthorised QoS 0/1 publishes of MQTT 3.1.1 clients silently (it still sends
PUBACK), so every "refused publish" below is checked by the collector receiving nothing, and
each is followed by an allowed publish that must arrive (so "nothing" is not just "not yet").
"""
import json
import shutil
import threading

import pytest
from cli_helpers import cli
from provision_support import PASSPHRASE, Client, Mosquitto, free_port, signed_summary, wait_for, write_board

pytestmark = pytest.mark.skipif(shutil.which("mosquitto") is None and not __import__("os").path.exists(
    "/usr/sbin/mosquitto"), reason="mosquitto not installed (make broker-deps)")


@pytest.fixture
def city(tmp_path, capsys, monkeypatch):
    """A CA, two provisioned simulated devices, a broker config and a running Mosquitto."""
    monkeypatch.setenv("CIVICMOTE_CA_PASSPHRASE", PASSPHRASE)
    reg = tmp_path / "registry.db"
    board = write_board(tmp_path)
    assert cli(capsys, "ca", "init", "--dir", tmp_path / "ca")[0] == 0
    devs = {}
    for name in ("dev1", "dev2"):
        code, out, err = cli(capsys, "provision", "--board", board, "--district", "north", "--target",
                             tmp_path / name, "--ca", tmp_path / "ca", "--registry", reg, "--json")
        assert code == 0, err
        devs[name] = json.loads(out)["device_id"]
    port = free_port()
    broker = tmp_path / "broker"

    def configure():
        code, out, err = cli(capsys, "broker-config", "--ca", tmp_path / "ca", "--registry", reg, "--out", broker,
                             "--port", port, "--bind", "127.0.0.1", "--user", "root", "--json")
        assert code == 0, err
        return json.loads(out)

    configure()
    m = Mosquitto(broker / "mosquitto.conf", port)
    clients = []

    def client(certdir, cert, key, cid):
        c = Client(port, broker / "ca.crt", certdir / cert if cert else None, certdir / key if key else None, cid)
        clients.append(c)
        return c

    yield {"tmp": tmp_path, "reg": reg, "devs": devs, "broker": broker, "mosquitto": m, "client": client,
           "configure": configure, "port": port}
    for c in clients:
        try:
            c.close()
        except Exception:
            pass
    m.stop()


def _collector(city):
    col = city["client"](city["broker"], "collector.crt", "collector.key", "collector")
    assert col.connect(), "the collector must be let in"
    col.subscribe("civicmote/v1/#")
    return col


def _device(city, name):
    d = city["tmp"] / name
    return city["client"](d, "device.crt", "device.pem", name)


def test_device_publishes_and_collector_verifies(city, capsys):
    col = _collector(city)
    dev = _device(city, "dev1")
    assert dev.connect()
    dev_id, topic, msg = signed_summary(city["tmp"] / "dev1", "north")
    dev.publish(topic, msg)
    assert wait_for(lambda: col.got), "the collector got nothing"
    assert col.got == [(topic, msg)]
    # The collector verifies it against the registry export.
    code, out, err = cli(capsys, "registry", "export", "--registry", city["reg"], "--json")
    export = city["tmp"] / "export.json"
    export.write_text(out)
    got = city["tmp"] / "got.cose"
    got.write_bytes(col.got[0][1])
    code, out, err = cli(capsys, "verify", "--registry", export, got)
    assert code == 0, out
    assert json.loads(out)["device_id"] == dev_id


def test_device_cannot_write_elsewhere_and_collector_cannot_write(city):
    col = _collector(city)
    dev1 = _device(city, "dev1")
    assert dev1.connect()
    other = city["devs"]["dev2"]
    dev1.publish("civicmote/v1/north/%s/summary" % other, b"forged")  # another device's topic
    dev1.publish("civicmote/v1/north/x/summary", b"forged")
    dev1.publish("elsewhere/topic", b"forged")
    col.publish("civicmote/v1/north/%s/summary" % other, b"from-collector")
    col.publish("civicmote/v1/north/civicmote-collector/summary", b"from-collector")
    _, topic, msg = signed_summary(city["tmp"] / "dev1", "north")
    dev1.publish(topic, msg)  # the barrier: this one is allowed
    assert wait_for(lambda: col.got)
    assert col.got == [(topic, msg)], "refused publishes reached the collector: %r" % col.got


def test_device_reads_nothing(city):
    dev1 = _device(city, "dev1")
    dev2 = _device(city, "dev2")
    assert dev1.connect() and dev2.connect()
    col = _collector(city)
    dev1.subscribe("civicmote/v1/#")
    _, topic, msg = signed_summary(city["tmp"] / "dev2", "north")
    dev2.publish(topic, msg)
    assert wait_for(lambda: col.got)  # delivered to the collector...
    assert not wait_for(lambda: dev1.got, timeout=0.5)  # ...and never to another device


def test_anonymous_and_impostor_are_refused(city, tmp_path):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID
    import datetime

    anon = city["client"](tmp_path, None, None, "anon")  # TLS without a client certificate
    anon.c.tls_set(ca_certs=str(city["broker"] / "ca.crt"))
    assert not anon.connect()
    # A self-signed impostor claiming a real device's id.
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, city["devs"]["dev1"])])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=1)).sign(key, hashes.SHA256()))
    imp = tmp_path / "impostor"
    imp.mkdir()
    (imp / "c.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (imp / "k.pem").write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                  serialization.NoEncryption()))
    assert not city["client"](imp, "c.crt", "k.pem", "impostor").connect()
    # And plain MQTT without TLS gets nowhere either.
    plain = city["client"](tmp_path, None, None, "plain")
    assert not plain.connect(timeout=2)


def test_revoked_device_is_refused_after_reload(city, capsys):
    dev2 = city["devs"]["dev2"]
    assert _device(city, "dev2").connect()
    code, out, err = cli(capsys, "registry", "revoke", dev2, "--registry", city["reg"], "--json")
    assert code == 0 and json.loads(out)["changed"] is True
    summary = city["configure"]()
    assert summary["refused"] == 1
    assert dev2 in (city["broker"] / "acl").read_text()
    city["mosquitto"].reload()
    col = _collector(city)
    late = _device(city, "dev2")
    assert not late.connect(), "a revoked device must not get in after the CRL reload"
    # The other device is unaffected.
    dev1 = _device(city, "dev1")
    assert dev1.connect()
    _, topic, msg = signed_summary(city["tmp"] / "dev1", "north")
    dev1.publish(topic, msg)
    assert wait_for(lambda: col.got) and col.got == [(topic, msg)]


def test_disable_is_reversible_at_the_broker(city, capsys):
    dev1 = city["devs"]["dev1"]
    assert cli(capsys, "registry", "disable", dev1, "--registry", city["reg"])[0] == 0
    city["configure"]()
    city["mosquitto"].reload()
    assert not _device(city, "dev1").connect()
    assert cli(capsys, "registry", "enable", dev1, "--registry", city["reg"])[0] == 0
    assert city["configure"]()["refused"] == 0
    city["mosquitto"].reload()
    assert _device(city, "dev1").connect()


def test_receipts_reach_only_their_device_and_give_the_commissioning_proof(city, capsys):
    """Real processes: `civicmote collect --receipt-cert` signs receipts with the collector key the CA
    certified (collector.receipt); `civicmote run` keeps and checks them; `device check` shows the proof.
    The broker's ACL lets only the device read its receipt topic, and only the collector write it."""
    import os
    import subprocess
    import sys
    import time

    from agent.core.receipt import open_cert
    from agent.crypto import verifying_key_from_sec1

    b, tmp = city["broker"], city["tmp"]
    url = "mqtts://127.0.0.1:%d" % city["port"]
    ca = verifying_key_from_sec1(bytes.fromhex(json.loads((b / "registry.json").read_text())["ca_public_key"]))
    assert open_cert((b / "collector.receipt").read_bytes(), ca)[0] == "civicmote-collector"
    spy = city["client"](tmp / "dev2", "device.crt", "device.pem", "dev2")  # another device, listening to all
    assert spy.connect()
    spy.subscribe("civicmote/v1/#")
    dev1 = city["devs"]["dev1"]
    forger = _device(city, "dev1")  # the device itself may not write its receipts
    assert forger.connect()
    forger.publish("civicmote/v1/north/%s/receipt" % dev1, b"forged")
    col = subprocess.Popen([sys.executable, "-m", "provisioning.cli", "collect", "--broker", url,
                            "--registry", b / "registry.json", "--tls-ca", b / "ca.crt",
                            "--tls-cert", b / "collector.crt", "--tls-key", b / "collector.key",
                            "--receipt-cert", b / "collector.receipt", "--receipt-interval", "0.3",
                            "--max-ahead", "0", "--duration", "40", "--json"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    col_err, subscribed = [], threading.Event()

    def pump():  # the collector subscribes before it writes "connected to": the device runs after that
        for line in col.stderr:
            col_err.append(line)
            if line.startswith("connected to"):
                subscribed.set()

    pumping = threading.Thread(target=pump, daemon=True)
    pumping.start()
    try:
        assert subscribed.wait(60), "".join(col_err)
        watcher = _collector(city)  # reads every device topic: sees the collector's receipts
        run = [sys.executable, "-m", "provisioning.cli", "run", "--device-dir", str(tmp / "dev1"), "--broker", url,
               "--fast", "--windows", "2"]
        first = subprocess.run(run, capture_output=True, timeout=60, text=True)
        assert first.returncode == 0, first.stderr
        assert wait_for(lambda: any(t.endswith("/receipt") for t, _ in watcher.got), timeout=15), "".join(col_err)
        receipts = [m for t, m in watcher.got if t == "civicmote/v1/north/%s/receipt" % dev1]
        assert receipts and b"forged" not in receipts
        # A next start gets the retained receipt on subscribing, checks it against the CA, keeps it
        # on disk (a run that ends before the receipt arrives leaves it for the next one).
        logs = first.stderr
        for _ in range(5):
            if os.path.exists(tmp / "dev1" / "receipt"):
                break
            r = subprocess.run(run[:-1] + ["1"], capture_output=True, timeout=60, text=True)
            assert r.returncode == 0, r.stderr
            logs += r.stderr
        assert "the city has stored up to seq" in logs, logs
        code, out, err = cli(capsys, "device", "check", "--device-dir", tmp / "dev1", "--broker", url, "--json")
        assert code == 0, err
        proof = json.loads(out)["stored_up_to"]
        assert proof["verified"] and proof["seq"] >= 1 and abs(proof["at"] - time.time()) < 120
        assert proof["text"].startswith("the city has stored up to seq %d at " % proof["seq"])
        assert not any(t.endswith("/receipt") for t, _ in spy.got)  # never another device's
    finally:
        col.terminate()
        col.wait(timeout=20)
        pumping.join(5)
