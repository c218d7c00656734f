"""The city as a service, with a real Mosquitto configured by `civicmote broker-config` (run as root
here, so with its defaults: Mosquitto drops to the mosquitto user) and `civicmote collect` as a
process: nothing acknowledged to a device is lost, a device provisioned while the collector runs
is stored without a restart, the CRL refresh keeps the broker open a year on, and hostile
messages through the real broker never stop the collector.

Scale (kept moderate for CI): 1,500 summaries queued while the collector is away (the old default
queue held 1,000) with a broker restart in between; a burst of 3 devices x 400 summaries while the
collector runs (CIVICMOTE_SOAK=1: 10 devices x 300, the issue's district flushing its outboxes).
"""
import datetime
import json
import os
import shutil
import subprocess
import threading
import time

import pytest
from cli_helpers import CIVICMOTE, cli, json_lines
from provision_support import PASSPHRASE, Client, Mosquitto, free_port, wait_for, write_board

pytestmark = pytest.mark.skipif(not os.path.exists("/usr/sbin/mosquitto"), reason="mosquitto not installed")


def _summary(device_dir, district, seq, extra=None):
    from agent.core import cbor, cose, summary
    from agent.store import identity

    key = identity.load_key(str(device_dir))
    dev, _ = identity.public_identity(key)
    s = summary.build(dev, seq, 1700000000 + 300 * seq, 1700000300 + 300 * seq, {"temperature": [215, 210, 220]},
                      b"\0" * 8)
    if extra is not None:
        return cose.sign1(cbor.dumps(dict(s, **extra)), key, dev.encode())
    return cose.sign1(summary.encode(s), key, dev.encode())


def _bad_manifest(device_dir):
    """A signed manifest whose content is wrong: v true, a big integer, a float."""
    from agent.core import cbor, cose
    from agent.store import identity

    key = identity.load_key(str(device_dir))
    dev, _ = identity.public_identity(key)
    m = {"kind": "manifest", "v": True, "dev": dev, "metrics": [], "x": 2 ** 64 - 1, "y": 1.5}
    return cose.sign1(cbor.dumps(m), key, dev.encode())


class City:
    def __init__(self, tmp, capsys):
        self.tmp, self.capsys = tmp, capsys
        self.reg = tmp / "registry.db"
        self.board = write_board(tmp)
        self.out = tmp / "broker"
        self.port = free_port()
        self.devs = {}
        assert cli(capsys, "ca", "init", "--dir", tmp / "ca")[0] == 0
        self.broker = None

    def provision(self, name, district="north"):
        code, out, err = cli(self.capsys, "provision", "--board", self.board, "--district", district, "--target",
                             self.tmp / name, "--ca", self.tmp / "ca", "--registry", self.reg, "--json")
        assert code == 0, err
        self.devs[name] = json.loads(out)["device_id"]
        return self.devs[name]

    def configure(self, *extra):
        code, out, err = cli(self.capsys, "broker-config", "--ca", self.tmp / "ca", "--registry", self.reg, "--out",
                             self.out, "--port", self.port, "--bind", "127.0.0.1", "--json", *extra)
        assert code == 0, err
        return json.loads(out)

    def start(self):
        self.broker = Mosquitto(self.out / "mosquitto.conf", self.port)
        return self.broker

    def device(self, name):
        d = self.tmp / name
        c = Client(self.port, self.out / "ca.crt", d / "device.crt", d / "device.pem", name)
        assert c.connect(), "device %s was refused" % name
        return c

    def collect(self, *extra, store="city.db"):
        args = [CIVICMOTE, "collect", "--broker", "mqtts://localhost:%d" % self.port, "--registry",
                self.out / "registry.json", "--store", self.tmp / store, "--tls-ca", self.out / "ca.crt",
                "--tls-cert", self.out / "collector.crt", "--tls-key", self.out / "collector.key", "--json"]
        proc = subprocess.Popen([str(a) for a in args + list(extra)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, env=dict(os.environ, CIVICMOTE_CA_PASSPHRASE=PASSPHRASE))
        proc.lines = {"out": [], "err": []}
        proc.connected = threading.Event()

        def pump(stream, into, watch):
            for line in stream:
                into.append(line)
                if watch and line.startswith("connected to"):
                    proc.connected.set()

        proc.pumps = [threading.Thread(target=pump, args=(proc.stdout, proc.lines["out"], False), daemon=True),
                      threading.Thread(target=pump, args=(proc.stderr, proc.lines["err"], True), daemon=True)]
        for t in proc.pumps:
            t.start()
        return proc

    def stored(self, store="city.db"):
        import sqlite3

        db = sqlite3.connect(str(self.tmp / store))
        try:
            return db.execute("SELECT device_id, seq FROM summaries").fetchall()
        finally:
            db.close()

    def close(self):
        if self.broker:
            self.broker.stop()


@pytest.fixture
def city(tmp_path, capsys, monkeypatch):
    import tempfile
    from pathlib import Path

    monkeypatch.setenv("CIVICMOTE_CA_PASSPHRASE", PASSPHRASE)
    # As root, Mosquitto drops to the mosquitto user, which cannot enter pytest's 0700 folders.
    tmp = Path(tempfile.mkdtemp(prefix="civicmote-city-")) if os.geteuid() == 0 else tmp_path
    os.chmod(tmp, 0o711)
    c = City(tmp, capsys)
    yield c
    c.close()
    if tmp != tmp_path:
        shutil.rmtree(tmp, ignore_errors=True)


def _finish(proc, timeout=90):
    proc.wait(timeout=timeout)
    for t in proc.pumps:
        t.join(10)
    return proc.returncode, json_lines("".join(proc.lines["out"])), "".join(proc.lines["err"])


def _subscribed(proc, timeout=60):
    """Wait for the collector's "connected to" line instead of sleeping: the collector sends its
    SUBSCRIBE from the CONNACK's callback, before the event that writes this line, and a device
    connecting after it (a TLS handshake) publishes later still."""
    if not proc.connected.wait(timeout):
        proc.kill()
        raise AssertionError("the collector did not connect within %d s: %s" % (timeout, "".join(proc.lines["err"])))


def test_broker_config_as_root_by_default_gives_a_working_broker_with_persistence(city):
    if os.geteuid() != 0:
        pytest.skip("needs root to show the privilege drop")
    city.provision("dev1")
    r = city.configure()
    assert r["broker_user"] == "mosquitto" and r["readers"]["server.key"] == "mosquitto"
    conf = (city.out / "mosquitto.conf").read_text()
    assert "persistence true" in conf and "user mosquitto" in conf and "max_packet_size" in conf
    assert "max_queued_messages %d" % r["max_queued_messages"] in conf and r["max_queued_messages"] >= 100000
    import stat

    assert stat.S_IMODE(os.stat(city.out / "collector.key").st_mode) == 0o600
    assert stat.S_IMODE(os.stat(city.out / "server.key").st_mode) == 0o640
    assert stat.S_IMODE(os.stat(city.reg).st_mode) == 0o600
    city.start()
    assert city.device("dev1")  # the broker read its key and CRL after dropping privileges


def test_nothing_acknowledged_is_lost_while_the_collector_is_away_and_the_broker_restarts(city):
    names = ["d1", "d2", "d3"]
    for n in names:
        city.provision(n)
    city.configure()
    city.start()
    code, events, err = _finish(city.collect("--duration", "2"))  # the persistent session exists now
    assert code == 0 and events[-1]["reason"] == "duration", err
    per_device = 500  # 1,500 in all: more than Mosquitto's default queue of 1,000
    for n in names:
        dev = city.device(n)
        for seq in range(1, per_device + 1):
            info = dev.publish("civicmote/v1/north/%s/summary" % city.devs[n], _summary(city.tmp / n, "north", seq))
            assert info.is_published(), "no PUBACK: the device would keep it"
        dev.close()
    city.broker.stop()  # a clean restart (systemctl restart) while the collector is away
    city.start()
    code, events, err = _finish(city.collect("--count", str(3 * per_device), "--duration", "120"))
    assert code == 0, err
    stored = city.stored()
    assert len(stored) == 3 * per_device
    for n in names:
        assert sorted(s for d, s in stored if d == city.devs[n]) == list(range(1, per_device + 1))


def test_an_outage_flush_burst_while_the_collector_runs_loses_nothing(city):
    soak = os.environ.get("CIVICMOTE_SOAK") == "1"  # the district: 10 devices x 300
    names = ["b%d" % i for i in range(10 if soak else 3)]
    for n in names:
        city.provision(n)
    city.configure()
    city.start()
    per_device = 300 if soak else 400
    proc = city.collect("--count", str(len(names) * per_device), "--duration", "300")
    _subscribed(proc)
    msgs = {n: [_summary(city.tmp / n, "north", s) for s in range(1, per_device + 1)] for n in names}
    devices = {n: city.device(n) for n in names}

    def flush(n):
        infos = [devices[n].c.publish("civicmote/v1/north/%s/summary" % city.devs[n], m, qos=1) for m in msgs[n]]
        for i in infos:
            i.wait_for_publish(30)

    threads = [threading.Thread(target=flush, args=(n,)) for n in names]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    code, events, err = _finish(proc, timeout=330)
    assert code == 0, err
    assert len(city.stored()) == len(names) * per_device
    for d in devices.values():
        d.close()


def test_a_device_provisioned_while_the_collector_runs_is_stored_without_a_restart(city):
    city.provision("old")
    city.configure()
    city.start()
    proc = city.collect("--count", "3", "--duration", "60")
    _subscribed(proc)
    dev = city.device("old")
    dev.publish("civicmote/v1/north/%s/summary" % city.devs["old"], _summary(city.tmp / "old", "north", 1))
    new = city.provision("new", "south")
    r = city.configure("--reload")  # the refresh service: ACL, CRL and registry.json, then SIGHUP
    assert r["reloaded_pid"] == city.broker.proc.pid
    time.sleep(1)
    late = city.device("new")
    for seq in (1, 2):
        late.publish("civicmote/v1/south/%s/summary" % new, _summary(city.tmp / "new", "south", seq))
    code, events, err = _finish(proc)
    assert code == 0, err
    assert sorted(s for d, s in city.stored() if d == new) == [1, 2]
    assert any(e.get("event") == "summary" and e["device_id"] == new and e["district"] == "south" for e in events)


def test_hostile_messages_through_the_real_broker_never_stop_the_collector(city):
    import random

    city.provision("bad")
    city.provision("good")
    city.configure()
    city.start()
    proc = city.collect("--idle", "6", "--duration", "120")
    _subscribed(proc)
    bad, good = city.device("bad"), city.device("good")
    topic = "civicmote/v1/north/%s/summary" % city.devs["bad"]
    rng = random.Random(5)
    hostile = [_summary(city.tmp / "bad", "north", 1, {"seq": 2 ** 63}), _summary(city.tmp / "bad", "north", 1,
               {"h": {"boot": "1"}}), _summary(city.tmp / "bad", "north", 1, {"v": True}), b"\xd2" * 40]
    base = _summary(city.tmp / "bad", "north", 3)
    for _ in range(300):
        b = bytearray(base)
        b[rng.randrange(len(b))] = rng.randrange(256)
        hostile.append(bytes(b))
    for i, m in enumerate(hostile):
        bad.c.publish(topic, m, qos=1)
        if i % 15 == 0:
            good.publish("civicmote/v1/north/%s/summary" % city.devs["good"],
                         _summary(city.tmp / "good", "north", i // 15 + 1))
    # a retained manifest with bad content: every collector that ever starts sees it
    bad.c.publish("civicmote/v1/north/%s/manifest" % city.devs["bad"], _bad_manifest(city.tmp / "bad"), qos=1,
                  retain=True).wait_for_publish(5)
    code, events, err = _finish(proc)
    assert code == 0, err
    assert "Traceback" not in err
    rejected = [e for e in events if e.get("event") == "rejected"]
    assert len(rejected) >= 290 and all(e["reason"] for e in rejected)
    assert sorted(s for d, s in city.stored() if d == city.devs["good"]) == list(range(1, 22))
    # Every collector that starts later gets the bad retained manifest again: rejected, and it runs on.
    proc = city.collect("--idle", "3", "--duration", "30")
    _subscribed(proc)
    good.publish("civicmote/v1/north/%s/summary" % city.devs["good"], _summary(city.tmp / "good", "north", 40))
    code, events, err = _finish(proc)
    assert code == 0 and "Traceback" not in err, err
    assert any(e.get("event") == "rejected" and e["topic"].endswith("/manifest") for e in events)
    assert any(e.get("event") == "summary" and e["seq"] == 40 for e in events)


def test_time_travel_the_refreshed_crl_keeps_the_broker_open_a_year_on(city):
    from cryptography import x509

    from provisioning.city import broker_config
    from provisioning.pki import ca
    from provisioning.pki.registry import Registry

    city.provision("t1")
    city.configure()
    authority = ca.load_ca(city.tmp / "ca", PASSPHRASE)
    reg = Registry(city.reg)
    records, export = reg.list(), reg.export()
    reg.close()
    today = datetime.datetime.now(datetime.timezone.utc)
    openssl = shutil.which("openssl")
    for days in (31, 90, 400):
        then = today + datetime.timedelta(days=days)
        # the daily refresh ran the day before: its CRL is what the broker holds on day `days`
        out = city.tmp / ("day%d" % days)
        broker_config.write(authority, records, out, city.port, "127.0.0.1", export=export,
                            now=then - datetime.timedelta(days=1))
        crl = x509.load_pem_x509_crl((out / "crl.pem").read_bytes())
        assert crl.last_update_utc <= then < crl.next_update_utc, days
        assert crl.is_signature_valid(authority.cert.public_key())
        if openssl:
            r = subprocess.run([openssl, "verify", "-crl_check", "-attime", str(int(then.timestamp())), "-CAfile",
                                str(out / "ca.crt"), "-CRLfile", str(out / "crl.pem"),
                                str(city.tmp / "t1" / "device.crt")], capture_output=True, text=True)
            assert r.returncode == 0 and ": OK" in r.stdout, (days, r.stdout, r.stderr)
    # Without the refresh, today's CRL has lapsed by day 31: openssl refuses the device then.
    if openssl:
        r = subprocess.run([openssl, "verify", "-crl_check", "-attime",
                            str(int((today + datetime.timedelta(days=31)).timestamp())), "-CAfile",
                            str(city.out / "ca.crt"), "-CRLfile", str(city.out / "crl.pem"),
                            str(city.tmp / "t1" / "device.crt")], capture_output=True, text=True)
        assert r.returncode != 0 and "CRL has expired" in (r.stdout + r.stderr)
    # And a real Mosquitto runs on a CRL written by the refresh path, reloaded while running.
    city.start()
    city.configure("--reload")
    assert city.device("t1")
    code, out, err = cli(city.capsys, "broker-config", "--check", "--out", city.out, "--json")
    assert code == 0 and json.loads(out)["crl_days_left"] > 29
    code, out, err = cli(city.capsys, "broker-config", "--ca", city.tmp / "ca", "--registry", city.reg, "--out",
                         city.out, "--port", city.port, "--crl-days", "3", "--json")
    code, out, err = cli(city.capsys, "broker-config", "--check", "--out", city.out, "--json")
    assert code == 1 and "CRL" in json.loads(out)["warnings"][0]


def test_files_get_their_modes_whatever_the_umask_and_units_are_written(city):
    import stat

    city.provision("u1")
    old = os.umask(0)
    try:
        r = city.configure("--collector-user", "root")
    finally:
        os.umask(old)
    modes = {p.relative_to(city.out).as_posix(): stat.S_IMODE(os.stat(p).st_mode) for p in city.out.rglob("*")}
    assert not [p for p, m in modes.items() if m & 0o002], "world-writable: %r" % modes
    assert modes["collector.key"] == 0o600 and modes["registry.json"] == 0o640
    assert modes["acl"] == 0o640 and modes["mosquitto.conf"] == 0o640 and modes["data"] == 0o700
    assert stat.S_IMODE(os.stat(city.tmp / "ca" / "ca.key").st_mode) == 0o600
    assert stat.S_IMODE(os.stat(city.reg).st_mode) == 0o600
    units = {p.name: p.read_text() for p in (city.out / "systemd").iterdir()}
    assert set(units) == {"civicmote-broker.service", "civicmote-collector.service", "civicmote-rollout.service",
                          "civicmote-broker-refresh.service", "civicmote-broker-refresh.timer",
                          "civicmote-broker-refresh.path"}
    assert "OnCalendar=daily" in units["civicmote-broker-refresh.timer"]
    assert "--reload" in units["civicmote-broker-refresh.service"]
    assert "PathChanged=%s" % city.reg in units["civicmote-broker-refresh.path"]
    assert "%s/registry.json" % city.out in units["civicmote-collector.service"]
    assert "Restart=always" in units["civicmote-collector.service"]
    assert "rollout serve" in units["civicmote-rollout.service"] and "%s/rollout.key" % city.out not in \
        units["civicmote-rollout.service"] and "--broker-dir %s" % city.out in units["civicmote-rollout.service"]
    assert "ReadWritePaths=%s/data" % city.out in units["civicmote-broker.service"]  # persistence under /etc
    analyze = shutil.which("systemd-analyze")
    if analyze:
        r = subprocess.run([analyze, "verify"] + [str(city.out / "systemd" / n) for n in sorted(units)],
                           capture_output=True, text=True)
        assert "Invalid" not in r.stderr and "Unknown" not in r.stderr, r.stderr
