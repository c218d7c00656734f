"""The rollout's decisions (provisioning/ota/stages.py), the download cap and the rollout state, without a broker."""
import pytest

from agent.ota import docs
from provisioning.errors import StateError, UsageError
from provisioning.ota import stages
from provisioning.ota.download_cap import DownloadCap
from provisioning.ota.rollout_store import RolloutStore

H = b"\x11" * 32
REL = {"hash": H, "seq": 5}
DEVS = ["cm%016d" % i for i in range(200)]


def rollout(stage=0, canaries=(), stages_=(5, 25, 100), threshold=10, min_done=10, salt=b"saltsalt"):
    return {"stage": stage, "canaries": list(canaries), "stages": list(stages_), "threshold": threshold,
            "min_done": min_done, "salt": salt}


def st(state, reason="", release=H, sw=0):
    return {"state": state, "reason": reason, "release": release, "sw": sw}


def test_targets_grow_stage_by_stage():
    r = rollout(canaries=DEVS[:2])
    sets = [stages.targeted(r, DEVS, docs.member, k) for k in range(4)]
    assert sets[0] == set(DEVS[:2])
    assert sets[0] < sets[1] < sets[2] < sets[3] == set(DEVS)
    assert 2 < len(sets[1]) < 30 and 30 < len(sets[2]) < 80  # about 5 % and 25 % of 200
    assert all(docs.member(d, r["salt"]) < 25 for d in sets[2] - sets[0])


def test_outcomes():
    assert stages.outcome(None, H, 5) == "pending"
    assert stages.outcome(st("confirmed"), H, 5) == "confirmed"
    assert stages.outcome(st("refused", "stale_seq", sw=5), H, 5) == "confirmed"  # it runs it already
    assert stages.outcome(st("rolled_back", "crash_loop"), H, 5) == "failed"
    assert stages.outcome(st("trial", sw=5), H, 5) == "pending"  # it runs the release, and may still roll back
    assert stages.outcome(st("refused", "wrong_class"), H, 5) == "failed"
    assert stages.outcome(st("refused", "stopped"), H, 5) == "pending"  # a pause abandoned it: not a failure
    assert stages.outcome(st("confirmed", release=b"\x22" * 32, sw=4), H, 5) == "pending"  # another release


def test_advance_wait_halt_done():
    r = rollout(stage=1, canaries=DEVS[:2])
    target = stages.targeted(r, DEVS, docs.member)
    statuses = {d: st("confirmed") for d in target}
    assert stages.evaluate(r, REL, DEVS, statuses, docs.member).action == "advance"
    one = sorted(target)[-1]
    d = stages.evaluate(r, REL, DEVS, dict(statuses, **{one: st("downloading")}), docs.member)
    assert d.action == "wait" and d.pending == [one] and d.counts["downloading"] == 1
    r3 = rollout(stage=3, canaries=DEVS[:2])
    assert stages.evaluate(r3, REL, DEVS, {x: st("confirmed") for x in DEVS}, docs.member).action == "done"
    # a failed canary halts at once
    d = stages.evaluate(rollout(stage=0, canaries=DEVS[:2]), REL, DEVS, {DEVS[1]: st("rolled_back", "health_timeout")},
                        docs.member)
    assert d.action == "halt" and d.reason == "canary %s: rolled_back health_timeout" % DEVS[1]
    # the threshold applies from min_done finished devices on
    r = rollout(stage=3, threshold=10, min_done=10)
    few = {x: st("rolled_back", "crash_loop") for x in DEVS[:9]}
    assert stages.evaluate(r, REL, DEVS, few, docs.member).action == "wait"  # 9 finished: too few to judge
    many = dict({x: st("confirmed") for x in DEVS[9:100]}, **few)
    assert stages.evaluate(r, REL, DEVS, many, docs.member).action == "wait"  # 9 of 100 finished failed: 9 %
    many[DEVS[150]] = st("refused", "bad_digest")
    many[DEVS[151]] = st("rolled_back", "crash_loop")
    d = stages.evaluate(r, REL, DEVS, many, docs.member)  # 11 of 102: above 10 %
    assert d.action == "halt" and d.reason.startswith("failure threshold: 11 of 102")
    # a stage timeout passes over devices that never finished, once it has run out
    slow = dict(rollout(stage=1, canaries=DEVS[:2]), stage_timeout=600, stage_at=1000.0)
    waiting = dict(statuses, **{one: st("downloading")})
    assert stages.evaluate(slow, REL, DEVS, waiting, docs.member, now=1599.0).action == "wait"
    assert stages.evaluate(slow, REL, DEVS, waiting, docs.member, now=1600.0).action == "advance"
    assert stages.evaluate(dict(slow, stage=3), REL, DEVS, {}, docs.member, now=1600.0).action == "done"
    # failures the operator accepted by resuming count as finished, not failed
    forgiven = dict(rollout(stage=3, threshold=10, min_done=10), forgiven=sorted(few) + [DEVS[150], DEVS[151]])
    assert stages.evaluate(forgiven, REL, DEVS, many, docs.member).action == "wait"
    c = dict(rollout(stage=0, canaries=DEVS[:2]), forgiven=[DEVS[1]])
    assert stages.evaluate(c, REL, DEVS, {DEVS[0]: st("confirmed"), DEVS[1]: st("rolled_back", "crash_loop")},
                           docs.member).action == "advance"
    # a stage that adds nobody is passed at once
    salt = next(bytes([i]) * 8 for i in range(256) if all(docs.member(x, bytes([i]) * 8) >= 1 for x in DEVS[:3]))
    empty = rollout(stage=0, stages_=(1, 100), salt=salt)
    assert not stages.targeted(empty, DEVS[:3], docs.member)
    assert stages.evaluate(empty, REL, DEVS[:3], {}, docs.member).action == "advance"


def test_parse_stages():
    assert stages.parse_stages("5,25,100") == [5, 25, 100]
    for bad in ("", "5,25", "25,5,100", "0,100", "5,5,100", "x"):
        with pytest.raises(UsageError):
            stages.parse_stages(bad)


def test_download_cap():
    cap = DownloadCap(2, idle_s=30)
    assert cap.admit("a", 0) and cap.admit("b", 1) and not cap.admit("c", 2)
    assert cap.admit("a", 3)  # a holder keeps its slot
    cap.status("a", "downloading")
    assert not cap.admit("c", 4)
    cap.status("a", "verifying")  # a's download ended
    assert cap.admit("c", 5) and not cap.admit("a", 6)
    assert cap.admit("d", 40)  # b and c went quiet for more than idle_s
    assert cap.peak == 2 and cap.refused == 3


def test_rollout_state(tmp_path):
    s = RolloutStore(tmp_path / "r.db", create=True, clock=lambda: 1000.0)
    rel = {"seq": 5, "ver": "1.0", "comp": "agent", "class": ["cpython3"], "size": 3, "sha256": b"\0" * 32}
    with s.transaction():
        s.add_release(H, rel, b"cose", "/x")
    rid = s.start(H, "north", [], [100], 10, 10, 5, b"saltsalt")
    with pytest.raises(StateError):
        s.start(H, "north", [], [100], 10, 10, 5, b"saltsalt")  # one live rollout per district
    assert s.set_state(rid, "paused", allowed=("running",))["state"] == "paused"
    with pytest.raises(StateError):
        s.set_state(rid, "paused", allowed=("running",))
    status = {"dev": "cmx", "state": "downloading", "reason": "", "rseq": 5, "release": H, "off": 0, "size": 3,
              "sw": 0, "t": 200}
    assert s.record_status("north", status, b"c1")
    assert not s.record_status("north", dict(status, state="queued", t=100), b"c0")  # older: logged only
    assert s.device_states()["cmx"]["state"] == "downloading" and len(s.history("cmx")) == 2
    seq = s.next_order_seq()
    s.add_order(seq, rid, "north", b"order", 2000, "stop")
    assert s.latest_order("north") == b"order" and s.next_order_seq() == seq + 1
    s.close()
    (tmp_path / "other.db").write_bytes(b"")
    with pytest.raises(UsageError):
        RolloutStore(tmp_path / "missing.db")


def test_serve_reloads_a_changed_registry_export(tmp_path):
    import json
    import os

    from provisioning.cli.output import Output
    from ota_fleet_city import release_key
    from provisioning.ota.serve import registry_watch

    devs = []
    for _ in range(2):
        from agent.core.identity import device_id

        pub = release_key()[1]  # any P-256 public key stands for a device's here
        devs.append({"device_id": device_id(pub), "public_key": pub.hex(), "status": "active", "district": "north"})
    path = tmp_path / "registry.json"
    path.write_text(json.dumps({"version": 1, "devices": devs[:1]}))

    class Service:
        ring = None

        def set_ring(self, ring):
            self.ring = ring

    svc = Service()
    check = registry_watch(str(path), svc, Output(True, stderr=open(os.devnull, "w")), every=0)
    check()
    assert svc.ring is None  # unchanged since the service loaded it
    path.write_text(json.dumps({"version": 1, "devices": devs}))
    check()
    assert set(svc.ring.keys) == {d["device_id"] for d in devs}
    path.write_text("{damaged")
    check()
    assert set(svc.ring.keys) == {d["device_id"] for d in devs}  # a damaged export keeps the previous one
