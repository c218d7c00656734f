"""An update's whole path, as a city runs it, through the commands of docs/updates.md.

`civicmote release keygen` (offline key) -> `release build --kind board` (the .mpy set) ->
`release sign` -> `release show` -> `rollout start` -> `rollout serve` (its own process, with the
rollout identity and ACL that `broker-config` wrote) -> a MicroPython board on the native port
(provisioned, the release key pinned in its folder, `civicmote collect` issuing receipts) fetches,
stages, restarts into the new version and confirms it -> `rollout status --json`, `/fleet.json`
and the collector's stored manifest all name the new software. The parts are tested one by one
elsewhere (test_ota_release_cli, test_ota_rollout, test_ota_board); this is the one run where
the real city service meets the real device code.
"""
import json
import os
import shutil
import subprocess
import sys
import time

import pytest
from board_city import CIVICMOTE, collected
from ota_board_support import OtaCity, wait_for

pytestmark = pytest.mark.skipif(shutil.which("mosquitto") is None and not os.path.exists("/usr/sbin/mosquitto"),
                                reason="mosquitto not installed")
RELEASE_PASS = "offline release pass"


class CliCity(OtaCity):
    """OtaCity without its stand-alone block server: `civicmote rollout serve` is the city's service."""

    def start_blocks(self):
        pass


def _cli(*args, env=None, check=True):
    p = subprocess.run([CIVICMOTE] + [str(a) for a in args], capture_output=True, text=True, timeout=300,
                       env=dict(os.environ, CIVICMOTE_RELEASE_PASSPHRASE=RELEASE_PASS, **(env or {})))
    if check:
        assert p.returncode == 0, (args[:2], p.stdout, p.stderr)
    return p


def test_release_signed_offline_rolled_out_by_the_service_confirmed_on_a_board(tmp_path):
    from agent.ota import docs

    city = CliCity(tmp_path).start()
    b, d = city.broker_dir, tmp_path / "dist"
    for name in ("rollout.crt", "rollout.key", "rollout.orders"):  # broker-config made the rollout identity
        assert (b / name).exists(), name
    acl = (b / "acl").read_text()
    assert "topic write civicmote/v1/north/%s/ota/req" % city.device_id in acl

    (tmp_path / "offline").mkdir()
    key = json.loads(_cli("release", "keygen", "--out", tmp_path / "offline" / "release.pem", "--json").stdout)
    assert "PRIVATE" not in json.dumps(key) and RELEASE_PASS not in json.dumps(key)
    (city.device / "release_keys").write_bytes(docs.dump_release_keys([bytes.fromhex(key["public_key"])]))
    _cli("release", "build", "--kind", "board", "--class", "mpy%d" % city.mpy_abi(), "--out", d / "board.bundle")
    _cli("release", "sign", "--key", tmp_path / "offline" / "release.pem", "--artefact", d / "board.bundle",
         "--seq", "1", "--ver", "0.9.1", "--privacy", "00" * 8, "--out", d / "board.release")
    shown = json.loads(_cli("release", "show", d / "board.release", "--release-key", key["public_key"],
                            "--artefact", d / "board.bundle", "--json").stdout)
    assert shown["seq"] == 1
    state = tmp_path / "rollout.db"
    started = json.loads(_cli("rollout", "start", "--state", state, "--release", d / "board.release", "--artefact",
                              d / "board.bundle", "--district", "north", "--release-key", key["public_key"],
                              "--canary", city.device_id, "--stages", "100", "--json").stdout)
    rid = started["rollout"]

    col = city.collect(10000, 300, store=tmp_path / "city.db", receipts=True)
    board = city.board_process().start()
    serve = subprocess.Popen([CIVICMOTE, "rollout", "serve", "--state", str(state), "--registry",
                              str(b / "registry.json"), "--broker", "mqtts://127.0.0.1:%d" % city.port,
                              "--broker-dir", str(b), "--for", "240", "--json"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        t0 = time.time()

        def status():
            return json.loads(_cli("rollout", "status", "--state", state, str(rid), "--json").stdout)["rollouts"][0]

        seen = []  # (states the service counts, rollout state) until the board has confirmed
        while not (city.state()[0].sw == 1 and city.state()[0].st[0] == "confirmed"):
            assert time.time() < t0 + 180, "the board did not confirm release 1:\n" + board.text()[-3000:]
            r = status()
            seen.append((sorted(r["counts"]), r["state"]))
            time.sleep(0.2)
        took = time.time() - t0
        # A version on trial may still roll back: the rollout is never done while its device is on trial.
        assert not [x for x in seen if x[1] == "done" and "confirmed" not in x[0]], seen
        wait_for(lambda: status()["state"] == "done", 60, board, "the rollout done")
        r = status()
        assert r["counts"] == {"confirmed": 1}, r
        time.sleep(3)  # windows on the new version, so its manifest and summaries reach the collector
    finally:
        serve.terminate()
        s_out, s_err = serve.communicate(timeout=30)
        board.stop()
        col.terminate()
        city.stop()
    assert "Traceback" not in s_err, s_err[-2000:]
    records, _ = collected(col, timeout=10)
    manifests = [r["manifest"] for r in records if r.get("event") == "manifest"]
    assert manifests and manifests[-1]["sw"]["seq"] == 1, [m.get("sw") for m in manifests]
    assert not [r for r in records if r.get("event") == "rejected"], records

    from provisioning.web.app import Settings, create_app

    fleet = json.loads(create_app(Settings(str(tmp_path / "city.db"), None, rollout=str(state))).test_client()
                       .get("/fleet.json").get_data(as_text=True))
    ro = [x for x in fleet["rollouts"] if x["rollout"] == rid][0]
    assert ro["state"] == "done" and ro["counts"] == {"confirmed": 1}, ro
    row = [x for x in fleet["devices"] if x["device_id"] == city.device_id][0]["ota"]
    assert row["installed_seq"] == 1 and row["installed"] == "0.9.1" and row["result"] == "confirmed", row
    print("whole path: order to confirmed on the board in %.1f s; artefact %d bytes" % (
        took, os.path.getsize(d / "board.bundle")), file=sys.stderr)
