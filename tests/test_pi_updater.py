"""Issue 23, the Raspberry Pi's root-run updater as a process, on a staged folder made here with
real signed releases (agent/ota/docs.py, bundle.py): what a compromised agent may stage is
refused; a power cut (SIGKILL) at each step of an install leaves `current` naming a whole
release that runs; a crash-looping or silent trial rolls back with its reason; device state is
never touched. The whole agent against a real city: tests/test_pi_update_e2e.py."""
import hashlib
import os
import subprocess

import pytest
from broker import Pki
from delivery_support import make_device
from pi_support import (PY, Signers, bundle_bytes, current, init_root, result, run_updater, stage, state)

from agent.core import cbor, cose
from agent.ota import docs

STATE_FILES = ("privacy.ledger", "seq", "progress", "receipt", "device.key", "device.json")


@pytest.fixture(scope="module")
def art():
    return bundle_bytes()


@pytest.fixture
def pi(tmp_path):
    d = tmp_path / "dev"
    dev, _ = make_device(d, window_s=1)
    pki = Pki(tmp_path / "pki")
    (d / "ca.crt").write_bytes(open(pki.cafile, "rb").read())
    keys = Signers(pki.ca_key)
    (d / "release_keys").write_bytes(keys.pinned())
    root = tmp_path / "opt"
    init_root(root, d)
    return {"dev_dir": d, "dev": dev, "root": root, "keys": keys, "pki": pki}


def _state_digest(d):
    out = {}
    for name in STATE_FILES:
        p = d / name
        out[name] = hashlib.sha256(p.read_bytes()).hexdigest() if p.exists() else None
    for p in sorted((d / "outbox").iterdir()):
        out["outbox/" + p.name] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def _runs(root):
    """The code `current` names starts: `python -m provisioning.cli --version` from it."""
    p = subprocess.run([PY, "-m", "provisioning.cli", "--version"], cwd=str(root / "current"), capture_output=True,
                       text=True, timeout=60)
    return p.returncode == 0 and os.path.isfile(root / "current" / "agent" / "ota" / "docs.py")


def _signed(payload_map, key, kid):
    return cose.sign1(cbor.dumps(payload_map), key, kid)


def _release_map(seq, art, classes=("cpython3",)):
    return {"kind": "release", "v": 1, "seq": seq, "ver": "0.%d" % seq, "comp": "agent", "class": list(classes),
            "size": len(art), "sha256": hashlib.sha256(art).digest(), "state": docs.STATE_FORMAT,
            "privacy": b"\x01" * 8}


def test_install_on_trial_then_crash_loop_rolls_back_and_state_is_untouched(pi, art):
    d, root, keys = pi["dev_dir"], pi["root"], pi["keys"]
    before = _state_digest(d)
    rel = keys.release(1, art)
    stage(d, rel, keys.order(rel), art)
    code, events, err = run_updater(root, d, "tick", "--restart-cmd", "true")
    assert code == 0, err
    assert [e["event"] for e in events if e["event"] in ("trial", "restarted")] == ["trial", "restarted"]
    assert current(root) == "releases/1" and _runs(root)
    assert (root / "releases" / "1" / "release.cose").read_bytes() == rel
    assert not (d / "ota" / "stage" / "ready").exists()  # consumed: the path unit does not fire again
    assert result(d)["state"] == "trial" and result(d)["rseq"] == 1 and result(d)["release"] == docs.doc_hash(rel).hex()
    for n in (1, 2, 3):  # three starts that never confirm
        code, events, _ = run_updater(root, d, "boot")
        assert code == 0 and [e["start"] for e in events if e["event"] == "trial_start"] == [n]
        assert current(root) == "releases/1"
    code, events, _ = run_updater(root, d, "boot")  # the fourth: rolled back before the agent starts
    assert code == 0 and [e["reason"] for e in events if e["event"] == "rolled_back"] == ["crash_loop"]
    assert current(root) == "releases/0" and _runs(root)
    st = state(root)
    assert st["trial"] is None and st["bad"] == [1] and st["installed"]["seq"] == 0
    assert result(d) == dict(result(d), state="rolled_back", reason="crash_loop", rseq=1, sw=0)
    assert not (root / "releases" / "1").exists()  # pruned
    # never retried automatically: the same release staged again is refused
    stage(d, rel, keys.order(rel), art)
    code, events, _ = run_updater(root, d, "tick", "--restart-cmd", "true")
    assert code == 1 and result(d)["state"] == "refused" and result(d)["reason"] == "stale_seq"
    assert _state_digest(d) == before  # ledger, seq, progress, outbox, key: never touched


def test_silent_trial_rolls_back_after_n_windows(pi, art):
    d, root, keys = pi["dev_dir"], pi["root"], pi["keys"]
    (d / "config.json").write_text('{"ota_health_windows": 2}')  # 2 windows of 1 s
    rel = keys.release(1, art)
    stage(d, rel, keys.order(rel), art)
    assert run_updater(root, d, "tick", "--restart-cmd", "true")[0] == 0
    assert run_updater(root, d, "boot")[0] == 0
    code, events, _ = run_updater(root, d, "tick", "--restart-cmd", "true")  # within the 2 s: still on trial
    assert current(root) == "releases/1" and not [e for e in events if e["event"] == "rolled_back"]
    import time

    time.sleep(2.0)
    code, events, _ = run_updater(root, d, "tick", "--restart-cmd", "true")
    assert [e["reason"] for e in events if e["event"] == "rolled_back"] == ["health_timeout"]
    assert [e["event"] for e in events][-1] == "restarted"  # the old release is started again
    assert current(root) == "releases/0" and result(d)["reason"] == "health_timeout"


def _cases(pi, art):
    keys, d = pi["keys"], pi["dev_dir"]
    from agent.store import identity

    dev_key = identity.load_key(str(d))
    dev_pub = dev_key.public_key().to_sec1()
    ca = keys.ca
    ca_pub = bytes.fromhex(_ca_pub(pi["pki"]))
    flipped = bytearray(art)
    flipped[len(art) // 2] ^= 0x01
    pinned_kid = docs.release_kid(keys.release_keys[0][1])
    good = keys.release(1, art)
    other_cert = docs.make_rollout_cert(keys.stranger[0], "city-rollout", keys.rollout_pub, 2 ** 32)
    return {
        "flipped bit": (good, keys.order(good), bytes(flipped), "bad_digest"),
        "trailing bytes": (good, keys.order(good), art + b"\x00", "bad_size"),
        "truncated": (good, keys.order(good), art[:-1], "bad_size"),
        "release by a stranger's key": (keys.release(1, art, key=keys.stranger), None, art, "wrong_signer"),
        "release by the CA": (docs.make_release(ca, ca_pub, 1, "0.1", "agent", ["cpython3"], len(art),
                                                hashlib.sha256(art).digest(), docs.STATE_FORMAT, b"\x01" * 8),
                              None, art, "wrong_signer"),
        "release by the device key": (keys.release(1, art, key=(dev_key, dev_pub)), None, art, "wrong_signer"),
        "stranger claiming a pinned kid": (_signed(_release_map(1, art), keys.stranger[0], pinned_kid), None, art,
                                           "bad_sig"),
        "order by an uncertified key": (good, keys.order(good, key=keys.stranger[0]), art, "bad_sig"),
        "order certified by another CA": (good, keys.order(good, cert=other_cert), art, "wrong_signer"),
        "order for another district": (good, keys.order(good, district="south"), art, "wrong_district"),
        "release for another class": (keys.release(1, art, classes=("mpy6",)), None, art, "wrong_class"),
        "release bigger than declared": (keys.release(1, art, size=len(art) - 100), None, art, "bad_size"),
    }


def _ca_pub(pki):
    from cryptography.hazmat.primitives import serialization

    return pki.ca_key.public_key().public_bytes(serialization.Encoding.X962,
                                                serialization.PublicFormat.UncompressedPoint).hex()


def test_what_a_compromised_agent_stages_is_refused(pi, art):
    d, root, keys = pi["dev_dir"], pi["root"], pi["keys"]
    for name, (rel, order, artefact, reason) in _cases(pi, art).items():
        stage(d, rel, order or keys.order(rel), artefact)
        code, events, err = run_updater(root, d, "tick", "--restart-cmd", "false")
        assert code == 1, (name, err, events)
        assert (result(d)["state"], result(d)["reason"]) == ("refused", reason), name
        assert current(root) == "releases/0" and state(root)["trial"] is None, name
        assert os.listdir(root / "releases") == ["0"] and os.listdir(root / "incoming") == [], name
        assert not (d / "ota" / "stage" / "ready").exists(), name
    assert state(root)["bad"] == []  # none of them was a genuine release: nothing is blacklisted


def test_symlinks_planted_by_the_agent_are_not_followed(pi, art, tmp_path):
    d, root, keys = pi["dev_dir"], pi["root"], pi["keys"]
    rel = keys.release(1, art)
    stage(d, rel, keys.order(rel), art)
    art_path = d / "ota" / "stage" / "artefact"
    art_path.unlink()
    os.symlink("/dev/zero", art_path)  # endless, and not a regular file
    code, _, _ = run_updater(root, d, "tick", "--restart-cmd", "false")
    assert code == 1 and result(d)["reason"] == "malformed"
    # the result file: a symlink planted where it goes is replaced, its target left alone
    victim = tmp_path / "victim"
    victim.write_text("root's file")
    (d / "ota" / "pi_result").unlink()
    os.symlink(victim, d / "ota" / "pi_result")
    stage(d, rel, keys.order(rel), art[:-1])
    assert run_updater(root, d, "tick", "--restart-cmd", "false")[0] == 1
    assert victim.read_text() == "root's file" and not os.path.islink(d / "ota" / "pi_result")
    # trust anchors are the root's copies: a release key the agent adds to its folder counts for nothing
    from pi_support import keypair

    mine = keypair()
    (d / "release_keys").write_bytes(docs.dump_release_keys([mine[1]]))
    rel2 = keys.release(1, art, key=mine)
    stage(d, rel2, keys.order(rel2), art)
    assert run_updater(root, d, "tick", "--restart-cmd", "false")[0] == 1
    assert result(d)["reason"] == "wrong_signer" and current(root) == "releases/0"


@pytest.mark.parametrize("step", ["copy", "unpack", "unpacked", "trial", "swap", "swapped"])
def test_power_cut_at_each_step_leaves_a_whole_release(pi, art, step):
    """SIGKILL inside the updater at `step`: `current` names a whole release that starts, and the
    state agrees with it after the next start's repair; the next run finishes the install."""
    d, root, keys = pi["dev_dir"], pi["root"], pi["keys"]
    before = _state_digest(d)
    rel = keys.release(1, art)
    stage(d, rel, keys.order(rel), art)
    code, _, _ = run_updater(root, d, "tick", "--restart-cmd", "true", env={"CIVICMOTE_UPDATER_CRASH_AT": step})
    assert code == -9
    assert current(root) in ("releases/0", "releases/1") and _runs(root)
    assert run_updater(root, d, "boot")[0] == 0  # the agent's next start: repairs, then counts
    st = state(root)
    want = "releases/%d" % (st["trial"] or st["installed"])["seq"]
    assert current(root) == want and _runs(root)
    if step in ("copy", "unpack", "unpacked"):  # before the state named it: installed again from the stage
        assert want == "releases/0" and (d / "ota" / "stage" / "ready").exists()
        assert run_updater(root, d, "tick", "--restart-cmd", "true")[0] == 0
    assert current(root) == "releases/1" and state(root)["trial"]["seq"] == 1
    assert sorted(os.listdir(root / "releases")) == ["0", "1"]  # no .partial left behind
    assert _state_digest(d) == before


@pytest.mark.skipif(os.environ.get("CIVICMOTE_SOAK") != "1", reason="CIVICMOTE_SOAK=1: SIGKILL at 30 instants")
def test_power_cut_at_any_instant_of_an_install(pi, art, tmp_path):
    """SIGKILL the updater at 30 instants spread over a whole install (not only at named steps)."""
    import time

    from pi_support import ROOT, updater_argv

    d, keys = pi["dev_dir"], pi["keys"]
    rel = keys.release(1, art)

    def attempt(root, delay):
        init_root(root, d)
        stage(d, rel, keys.order(rel), art)
        t0 = time.monotonic()
        p = subprocess.Popen(updater_argv(root, d, "tick", "--restart-cmd", "true"), cwd=str(ROOT),
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if delay is None:
            p.wait(60)
        else:
            time.sleep(delay)
            p.kill()
            p.wait()
        return time.monotonic() - t0

    whole = attempt(tmp_path / "whole", None)
    for i in range(30):
        root = tmp_path / ("r%d" % i)
        attempt(root, whole * i / 30)
        assert current(root) in ("releases/0", "releases/1") and _runs(root), i
        assert run_updater(root, d, "boot")[0] == 0
        assert run_updater(root, d, "tick", "--restart-cmd", "true")[0] == 0
        assert current(root) == "releases/1" and state(root)["trial"]["seq"] == 1 and _runs(root), i
