"""open_sensors on an emulated board: a plausible, changing, deterministic street."""
import json

from support import load_vectors

from agent.board import load_profile, open_sensors

V = load_vectors("sensor_profiles.json")
MORNING = 1764230400000  # 2025-11-27 08:00 UTC: rush hour
NIGHT = MORNING - 5 * 3600000  # 03:00


def _sim():
    p = json.loads(json.dumps(V["base"]))
    p["runtime"] = "cpython"
    p["chip"] = "sim"
    for b in p["buses"].values():
        b["backing"] = "emulated"
    p["sensors"]["co2"] = {"driver": "scd4x", "bus": "i2c0", "address": 98, "period_s": 5}
    p["metrics"]["co2"] = {"sensor": "co2", "reading": "co2_ppm", "unit": "ppm", "class": "environmental"}
    p["sensors"]["noise"]["frame"] = 256
    p["sensors"]["dust"]["period_s"] = 1
    p["sensors"]["noise"]["period_s"] = 1
    return load_profile(p)


def _run(start, seconds, seed=1, sink=None):
    ss = open_sensors(_sim(), start, identifier_sink=sink, seed=seed)
    values = {}
    for s in range(seconds):
        for metric, v in ss.metric_values(ss.poll(start + s * 1000)):
            values.setdefault(metric, []).append(v)
    return ss, values


def test_sim_board_reads_every_sensor_plausibly():
    ids = []
    ss, v = _run(MORNING, 31, sink=lambda metric, addr: ids.append(metric))
    assert sorted(v) == ["co2", "footfall", "noise", "pm2_5", "temperature"]
    assert len(v["temperature"]) == 4 and -10 < v["temperature"][0] < 35
    assert len(v["co2"]) == 6 and 400 < min(v["co2"])
    assert min(v["pm2_5"]) > 15  # rush-hour peak
    assert 40 < min(v["noise"]) < 100
    assert sum(v["footfall"]) > 0
    assert ids and set(ids) == {"presence"}
    assert "presence" not in v  # identifiers go to the sink, never into values
    for name, st in ss.health().items():
        assert st["state"] == "ok" and not st["faults"], name


def test_night_is_quieter_and_cleaner_than_rush_hour():
    _, day = _run(MORNING, 6)
    _, night = _run(NIGHT, 6)
    assert max(night["pm2_5"]) < min(day["pm2_5"])
    assert max(night["noise"]) < min(day["noise"])
    assert sum(night["footfall"]) <= sum(day["footfall"])


def test_same_seed_same_street_other_seed_differs():
    _, a = _run(MORNING, 12, seed=5)
    _, b = _run(MORNING, 12, seed=5)
    _, c = _run(MORNING, 12, seed=6)
    assert a == b
    assert a != c


def test_a_faulty_sensor_does_not_stop_the_others():
    ss = open_sensors(_sim(), MORNING)
    ss.buses["i2c0"].unplug()
    got = {}
    for s in range(12):
        for name in ss.poll(MORNING + s * 1000):
            got[name] = got.get(name, 0) + 1
    h = ss.health()
    assert h["bme"]["state"] == "degraded" and h["bme"]["faults"]["bus"] >= 1
    assert h["co2"]["state"] == "degraded"
    assert got["dust"] >= 10 and got["noise"] == 12 and "bme" not in got
    ss.buses["i2c0"].replug()
    for s in range(12, 80):
        ss.poll(MORNING + s * 1000)
    h = ss.health()
    assert h["bme"]["state"] == "ok" and h["bme"]["recoveries"] == 1
    assert h["co2"]["state"] == "ok"
