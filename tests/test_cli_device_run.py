"""device init/show, run --fast, manifest show and sensors read, through the real CLI."""
import json
import os
import stat
from pathlib import Path

from cli_helpers import cli, json_lines

from agent.store import keyfile

ROOT = Path(__file__).resolve().parent.parent
SIM = ROOT / "boards" / "sim.json"


def test_device_init_is_idempotent_and_keeps_the_key_private(tmp_path, capsys):
    d = tmp_path / "dev"
    code, out, err = cli(capsys, "device", "init", "--device-dir", d, "--board", SIM, "--district", "north", "--json")
    assert code == 0, err
    first = json.loads(out)
    assert first["key_created"] is True and first["device_id"].startswith("cm") and first["district"] == "north"
    key_file = d / "device.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert (d / "privacy.ledger").exists() and (d / "board.json").exists()
    code, out, err = cli(capsys, "device", "init", "--device-dir", d, "--board", SIM, "--json")
    second = json.loads(out)
    assert code == 0 and second["key_created"] is False
    assert second["device_id"] == first["device_id"] and second["district"] == "north"
    code, out, err = cli(capsys, "device", "show", "--device-dir", d, "--json")
    shown = json.loads(out)
    assert shown["public_key"] == first["public_key"]
    secret = keyfile.load(str(key_file)).to_bytes().hex()
    for text in (out, err, json.dumps(first), json.dumps(second)):
        assert secret not in text


def test_device_show_without_identity_says_what_to_do(tmp_path, capsys):
    code, out, err = cli(capsys, "device", "show", "--device-dir", tmp_path)
    assert code == 2 and out == "" and "civicmote device init" in err and err.count("\n") == 1


def test_device_init_rejects_a_bad_board(tmp_path, capsys):
    bad = tmp_path / "bad.json"
    doc = json.loads(SIM.read_text())
    doc["metrics"]["footfall"]["dp"]["epsilon"] = "0"
    bad.write_text(json.dumps(doc))
    code, out, err = cli(capsys, "device", "init", "--device-dir", tmp_path / "d", "--board", bad)
    assert code == 2 and "footfall" in err and "epsilon" in err
    assert not (tmp_path / "d" / "device.key").exists()


def test_run_fast_signs_summaries_that_verify(tmp_path, capsys):
    d = tmp_path / "dev"
    cli(capsys, "device", "init", "--device-dir", d, "--board", SIM, "--district", "north")
    pub = json.loads(cli(capsys, "device", "show", "--device-dir", d, "--json")[1])["public_key"]
    out_dir = tmp_path / "out"
    code, out, err = cli(capsys, "run", "--device-dir", d, "--fast", "--windows", "13", "--out", out_dir,
                         "--start", "1795003200", "--json")
    assert code == 0, err
    events = json_lines(out)
    summaries = [e for e in events if e["event"] == "summary"]
    assert [e["seq"] for e in summaries] == list(range(1, 14))
    assert all(e["t1"] - e["t0"] == 300 for e in summaries)
    assert events[-1] == {"event": "stopped", "device_id": events[-1]["device_id"], "windows": 13,
                          "delivered": 0, "queued": 13}
    files = sorted(out_dir.glob("*.cose"))
    code, out, err = cli(capsys, "verify", "--public-key", pub, *files)
    assert code == 0, out
    verdicts = json_lines(out)
    assert len(verdicts) == 14 and all(v["ok"] for v in verdicts)
    # The hourly personal metrics appear only in the summary whose window ends on the hour.
    from agent.core import cose, summary

    hourly = []
    for f in files:
        if f.name == "manifest.cose":
            continue
        s = summary.decode(cose.decode1(f.read_bytes()).payload)
        assert {"temperature", "pm2_5", "noise"} <= set(s["m"])
        if "footfall" in s["m"]:
            hourly.append(s["t1"])
            assert set(s["m"]["footfall"]) <= {"n", "suppressed", "withheld"}
    assert hourly == [1795003200 + 3600 * (i + 1) for i in range(len(hourly))] and len(hourly) == 1


def test_run_restarts_continue_the_sequence(tmp_path, capsys):
    d = tmp_path / "dev"
    cli(capsys, "device", "init", "--device-dir", d, "--board", SIM)
    seqs = []
    for start in (1795003200, 1795010000):
        code, out, err = cli(capsys, "run", "--device-dir", d, "--fast", "--windows", "2", "--start", start, "--json")
        assert code == 0, err
        seqs += [e["seq"] for e in json_lines(out) if e["event"] == "summary"]
    assert seqs == sorted(seqs) and len(set(seqs)) == 4


def test_manifest_show_plain_and_json(capsys):
    code, out, err = cli(capsys, "manifest", "show", "--board", SIM)
    assert code == 0
    assert "People passing: counts people walking past, with noise added" in out
    assert "never stored or sent" in out
    code, out, err = cli(capsys, "manifest", "show", "--board", SIM, "--json")
    m = json.loads(out)
    assert m["kind"] == "manifest" and {e["name"] for e in m["metrics"]} >= {"footfall", "presence", "temperature"}


def test_sensors_read_on_sim_shows_changing_street_readings(capsys):
    code, out, err = cli(capsys, "sensors", "read", "--board", SIM, "--seconds", "6", "--json")
    assert code == 0, err
    frames = json_lines(out)
    assert len(frames) >= 6
    last = {r["sensor"]: r for r in frames[-1]["sensors"]}
    assert set(last) == {"ble", "bme", "co2", "dust", "motion", "noise"}
    assert all(r["state"] == "ok" for r in last.values())
    assert 900 < last["bme"]["readings"]["pressure_pa"] / 100 < 1100
    noise = [f["sensors"][[r["sensor"] for r in f["sensors"]].index("noise")]["readings"]["sound_dba"]
             for f in frames if any(r["sensor"] == "noise" and r["readings"] for r in f["sensors"])]
    assert len(set(noise)) > 1  # the street is alive: traffic noise changes second to second
    assert "ble_devices" not in json.dumps(frames)  # identifiers are counted, never shown


def test_sensors_read_reports_missing_hardware(capsys):
    code, out, err = cli(capsys, "sensors", "read", "--board", ROOT / "boards" / "rpi4.json", "--seconds", "1")
    assert code == 1 and "no reading from" in err
    assert "/dev/i2c-1" in out


def test_run_says_why_nothing_was_delivered_and_exits_3(tmp_path, capsys):
    from provision_support import free_port

    d = tmp_path / "dev"
    cli(capsys, "device", "init", "--device-dir", d, "--board", SIM, "--district", "north")
    code, out, err = cli(capsys, "run", "--device-dir", d, "--fast", "--windows", "1", "--broker",
                         "mqtt://127.0.0.1:%d" % free_port(), "--drain", "1", "--json")
    assert code == 3
    events = json_lines(out)
    assert events[0]["event"] == "started" and events[0]["first_window_closes"] % 300 == 0
    assert events[-1]["queued"] == 1 and "out of reach" in events[-1]["undelivered_reason"]
    assert err.count("\n") == 1 and "1 summaries not delivered" in err and "Connection refused" in err
