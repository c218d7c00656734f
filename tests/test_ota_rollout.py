"""Staged rollouts through a real Mosquitto (mutual TLS, broker-config's ACL), with real keys.

The rollout service (provisioning/ota/service.py, what `civicmote rollout serve` runs) signs
orders with broker-config's rollout identity; simulated devices (provisioning/demo/ota_fleet.py:
each its own key, certificate and TLS session, checking orders and releases with agent.ota.docs
and signing every status with its device key) speak the update topics. The device side's
installing is simulated: a trial is a short wait (see ota_fleet's header).
- the stages run in order (canaries, 5, 25, 100 %) and no device starts before its stage;
- a rollout halts at its failure threshold (and on a failed canary), and devices are told to stop;
- pause and resume; the cap on concurrent downloads holds;
- the ACL: a device cannot read another device's ota/down, nor publish another's status or an order.
"""
import hashlib
import shutil
import time

import pytest
from provision_support import Client, wait_for

from agent.ota import docs
from ota_fleet_city import OtaCity

pytestmark = pytest.mark.skipif(not shutil.which("mosquitto") and not __import__("os").path.exists(
    "/usr/sbin/mosquitto"), reason="mosquitto is not installed")


def _stage_started(oc, rid):
    """{stage index: monotonic s the service moved there} (stage 0 at the rollout's first order)."""
    out = {}
    for t, e in oc.events:
        if e.get("rollout") == rid and e["event"] == "order" and e["says"].startswith("stage:"):
            out.setdefault(int(e["says"][6:]), t)
    return out


def test_stages_in_order(tmp_path):
    with OtaCity(tmp_path, devices=24) as oc:
        rid = oc.start(stages="5,25,100", canaries=2)
        devs = oc.run_fleet(until=oc.finished(rid), timeout=90)
        r = oc.rollout(rid)
        assert r["state"] == "done" and r["stage"] == 3, r
        assert all(d.sw == 2 for d in devs), [(d.d.dev, d.states) for d in devs if d.sw != 2]
        assert r["counts"] == {"confirmed": 24}
        signed = _stage_started(oc, rid)  # a stage that adds no device is passed without an order of its own
        assert 0 in signed and 3 in signed and sorted(signed, key=signed.get) == sorted(signed), signed
        started = {k: signed[min(j for j in signed if j >= k)] for k in range(4)}
        plan = [0, 5, 25, 100]
        canaries = set(r["canaries"])
        stage_of = {}
        for d in devs:  # each device began only once its stage had begun
            m = docs.member(d.d.dev, r["salt"])
            stage_of[d.d.dev] = 0 if d.d.dev in canaries else min(i for i, p in enumerate(plan) if m < p and i > 0)
            assert d.first["queued"] >= started[stage_of[d.d.dev]], (d.d.dev, stage_of[d.d.dev])
        for k in (1, 2, 3):  # and a stage began only once every device of the stages before confirmed
            assert all(d.first["confirmed"] <= started[k] for d in devs if stage_of[d.d.dev] < k), k
        st = oc.store.device_states("district00")
        assert len(st) == 24 and all(s["state"] == "confirmed" and s["sw"] == 2 for s in st.values())
        # the retained order is the last stage's; the service's signature on it verifies on a device
        last = oc.store.latest_order("district00")
        from agent.crypto import verifying_key_from_sec1

        o = docs.check_order(last, verifying_key_from_sec1(oc.ca_sec1), verifying_key_from_sec1, devs[0].d.dev,
                             "district00", int(time.time()), None)
        assert o["pct"] == 100 and o["release"] == hashlib.sha256(oc.release).digest()
        _fleet_view(oc, tmp_path, devs, rid)


def _fleet_view(oc, tmp_path, devs, rid):
    """/fleet and /fleet.json show each device's installed release and last attempt, and the rollout."""
    import json

    from provisioning.city.store import Store
    from provisioning.web.app import Settings, create_app

    Store(str(tmp_path / "city.db")).close()  # an empty collector store: the update data is the rollout's
    c = create_app(Settings(str(tmp_path / "city.db"), None, rollout=oc.state)).test_client()
    doc = json.loads(c.get("/fleet.json").get_data(as_text=True))
    assert [x["rollout"] for x in doc["rollouts"]] == [rid]
    ro = doc["rollouts"][0]
    assert ro["state"] == "done" and ro["pct"] == 100 and ro["counts"] == {"confirmed": len(devs)}
    rows = {x["device_id"]: x for x in doc["devices"]}
    for d in devs:
        u = rows[d.d.dev]["ota"]
        assert u["installed_seq"] == 2 and u["installed"] == "0.2.0" and u["result"] == "confirmed", u
    metrics = c.get("/metrics").get_data(as_text=True)
    assert 'civicmote_rollout_devices{rollout="%d",district="district00",state="confirmed"} %d' % (rid, len(devs)) \
        in metrics and 'civicmote_rollout_running{rollout="%d",district="district00"} 0' % rid in metrics
    assert 'civicmote_device_installed_release{device_id="%s",district="district00"} 2' % devs[0].d.dev in metrics
    html = c.get("/fleet").get_data(as_text=True)
    assert 'data-rollout="%d"' % rid in html and "0.2.0: confirmed" in html, html[html.find("<tbody"):][:3000]


def test_halts_at_threshold(tmp_path):
    with OtaCity(tmp_path, devices=30) as oc:
        bad = oc.pick(0.4)
        rid = oc.start(stages="25,50,100", threshold=20, min_done=4)
        devs = oc.run_fleet(bad=bad, until=oc.finished(rid), timeout=90)
        r = oc.rollout(rid)
        assert r["state"] == "halted" and r["reason"].startswith("failure threshold"), r
        assert r["stage"] < 2  # it never reached 100 %
        reached = [d for d in devs if d.states]
        assert len(reached) < 30 and [d for d in devs if not d.states]
        # devices are told to stop: the newest order names no release
        from agent.core import cbor, cose

        o = cbor.loads(cose.decode1(oc.store.latest_order("district00")).payload)
        assert o["release"] == b"" and o["seq"] == r["order_seq"]
        failed = [d for d in reached if d.d.dev in bad]
        assert failed and all(d.states[-1] == ("rolled_back", "crash_loop") for d in failed if d.first.get("trial"))
        # `rollout status` says it
        rc, out = oc.cli("rollout", "status", "--state", oc.state)
        row = out["rollouts"][0]
        assert rc == 0 and row["state"] == "halted" and row["counts"].get("rolled_back", 0) >= 1
        # the operator accepts those failures and resumes: a new order for the stage, the failures forgiven
        rc, out = oc.cli("rollout", "resume", "--state", oc.state, str(rid))
        assert rc == 0 and out["state"] == "running"
        # those the service had heard of when the operator resumed: a device whose roll back was still
        # on its way under load is not among them yet (it is judged as a new failure when it comes)
        rolled = {d.d.dev for d in failed if ("rolled_back", "crash_loop") in d.states}
        assert out["accepted_failures"] and set(out["accepted_failures"]) <= rolled, (out["accepted_failures"], rolled)
        assert wait_for(lambda: oc.rollout(rid)["order_for"].startswith("stage:"), 10)


def test_failed_canary_halts(tmp_path):
    with OtaCity(tmp_path, devices=10) as oc:
        canaries = [d.dev for d in oc.city.devices][:2]
        rid = oc.start(stages="50,100", canaries=2)
        devs = oc.run_fleet(bad={canaries[1]}, until=oc.finished(rid), timeout=60)
        r = oc.rollout(rid)
        assert r["state"] == "halted" and r["reason"] == "canary %s: rolled_back crash_loop" % canaries[1], r
        assert all(not d.states for d in devs if d.d.dev not in canaries)  # nobody else started


def test_pause_resume_and_cap(tmp_path):
    with OtaCity(tmp_path, devices=16, artefact_kib=64) as oc:
        rid = oc.start(stages="100", cap=3)
        rc, out = oc.cli("rollout", "pause", "--state", oc.state, str(rid))
        assert rc == 0 and out["state"] == "paused"
        assert wait_for(lambda: oc.rollout(rid)["order_for"] == "stop", 10)
        devs = oc.run_fleet(until=lambda d: time.sleep(2) or True, timeout=10)  # paused: nobody starts
        assert not [d for d in devs if d.states]
        rc, out = oc.cli("rollout", "resume", "--state", oc.state, str(rid))
        assert rc == 0 and out["state"] == "running"
        devs = oc.run_fleet(until=oc.finished(rid), timeout=120, retry_s=0.5)
        assert oc.rollout(rid)["state"] == "done" and all(d.sw == 2 for d in devs)
        cap = oc.service.caps["district00"]
        assert cap.peak == 3 and cap.refused > 0  # the cap was reached and held
        rc, out = oc.cli("rollout", "abort", "--state", oc.state, str(rid))
        assert rc == 4  # a finished rollout cannot be aborted


def test_acl(tmp_path):
    with OtaCity(tmp_path, devices=4, districts=2) as oc:
        a = [d for d in oc.city.devices if d.district == "district00"][0]
        b = [d for d in oc.city.devices if d.district == "district01"][0]
        rids = [oc.start(stages="100", district=x) for x in ("district00", "district01")]
        assert wait_for(lambda: all(oc.rollout(r)["order_seq"] > 0 for r in rids), 10)
        genuine = oc.store.latest_order("district01")
        port, ca, pre = oc.port, oc.city.cafile, "civicmote/v1/"
        spy = Client(port, ca, a.certfile, a.keyfile, a.dev)
        victim = Client(port, ca, b.certfile, b.keyfile, b.dev)
        assert spy.connect() and victim.connect()
        try:
            seen = oc.service.counts["req"]
            for c, dev in ((spy, b), (victim, b)):
                c.subscribe(pre + "%s/%s/ota/down" % (dev.district, dev.dev))
                c.subscribe(pre + "%s/ota/order" % dev.district)
            # from a: a forged order for b's district, a status and a request on b's topics
            forged_status = docs.make_status(a.key, a.dev, "confirmed", "", 2, b"\0" * 32, 0, 0, 2, int(time.time()))
            spy.publish(pre + "%s/ota/order" % b.district, b"O" + oc.store.latest_order("district00"))
            spy.publish(pre + "%s/%s/ota/status" % (b.district, b.dev), forged_status)
            spy.publish(pre + "%s/%s/ota/req" % (b.district, b.dev), b"\xa1bopeorder")
            victim.publish(pre + "%s/%s/ota/req" % (b.district, b.dev), b"\xa1bopeorder")
            # b gets its district's order (retained) and the answer on its own ota/down
            assert wait_for(lambda: [t for t, _ in victim.got if t.endswith(b.dev + "/ota/down")], 10)
            time.sleep(1.0)
            assert oc.service.counts["req"] == seen + 1  # only b's own request reached the service
            assert oc.service.counts["status"] == 0 and oc.service.counts["refused"] == 0
            assert all(p == b"O" + genuine for t, p in victim.got), victim.got  # the forged order never arrived
            assert spy.got == []  # a read nothing of b's
            # while a's own district order does reach a
            spy.subscribe(pre + "district00/ota/order")
            assert wait_for(lambda: [t for t, _ in spy.got if t.endswith("district00/ota/order")], 5)
        finally:
            spy.close()
            victim.close()


def test_rollout_serve_command(tmp_path):
    """`civicmote rollout serve` as the operator runs it: a process of its own, broker-config's folder."""
    import json
    import signal
    import subprocess

    from cli_helpers import CIVICMOTE

    with OtaCity(tmp_path, devices=6, service=False) as oc:
        rid = oc.start(stages="100")
        err = open(tmp_path / "serve.err", "wb")
        p = subprocess.Popen([CIVICMOTE, "rollout", "serve", "--state", oc.state, "--registry", oc.city.export,
                              "--broker", "mqtts://localhost:%d" % oc.port, "--broker-dir", str(oc.broker_dir),
                              "--json"], stdout=subprocess.PIPE, stderr=err)
        try:
            assert wait_for(lambda: oc.rollout(rid)["order_seq"] > 0 or p.poll() is not None, 60), \
                (tmp_path / "serve.err").read_text()
            devs = oc.run_fleet(until=lambda d: p.poll() is not None or oc.finished(rid)(d), timeout=60)
            assert oc.rollout(rid)["state"] == "done" and all(d.sw == 2 for d in devs), \
                (tmp_path / "serve.err").read_text()[-2000:]
        finally:
            p.send_signal(signal.SIGTERM)
            out = p.communicate(timeout=30)[0].decode()
        events = [json.loads(ln) for ln in out.splitlines() if ln.strip()]
        assert p.returncode == 0, (tmp_path / "serve.err").read_text()
        assert {"event": "done", "rollout": rid} in events
        assert events[-1]["event"] == "stopped" and events[-1]["status"] >= 6 * 5 and events[-1]["refused"] == 0
        assert b"PRIVATE" not in out.encode() and open(oc.broker_dir / "rollout.key").read() not in out
