"""Board profiles: the valid base loads, every broken variant is rejected naming its field."""
import json

from support import load_vectors, raises

from agent.board import load_profile
from agent.errors import ConfigError

V = load_vectors("sensor_profiles.json")


def _fresh():
    return json.loads(json.dumps(V["base"]))


def _apply(profile, changes):
    for path in sorted(changes):
        value = changes[path]
        keys = path.split(".")
        d = profile
        for k in keys[:-1]:
            d = d[k]
        if value == "-":
            del d[keys[-1]]
        else:
            d[keys[-1]] = value
    return profile


def test_base_profile_is_valid():
    b = load_profile(_fresh())
    assert b.name == "test" and b.window_s == 300
    assert b.personal_metrics() == ["footfall", "presence"]
    assert b.metrics_of("bme") == [("temperature", "temperature_c")]
    assert b.dp["footfall"].mechanism == "count" and b.dp["presence"].mechanism == "distinct"


def test_broken_profiles_are_rejected_with_the_field_named():
    assert len(V["bad"]) >= 30
    for case in V["bad"]:
        e = raises(ConfigError, load_profile, _apply(_fresh(), case["set"]))
        msg = str(e)
        if "error" in case:
            assert msg == "profile: " + case["error"], (case["set"], msg)
        else:
            assert msg.startswith("profile: " + case["error_starts"]), (case["set"], msg)


def test_file_errors_name_the_file():
    e = raises(ConfigError, load_profile, "/nonexistent/x.json")
    assert str(e).startswith("/nonexistent/x.json: cannot read")
    e = raises(ConfigError, load_profile, _apply(_fresh(), {"sensors.bme.bus": "i2c9"}), "boards/x.json")
    assert str(e) == "boards/x.json: sensors.bme.bus: no bus named 'i2c9'"
