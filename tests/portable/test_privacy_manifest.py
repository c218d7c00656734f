"""The manifest: exact, runtime-independent payload (worded for residents on the host: tests/test_manifest_words.py)."""
import hashlib

from support import load_vectors, raises, tohex

from agent.core import cbor, cose
from agent.errors import ConfigError
from agent.privacy.manifest import build_manifest, manifest_hash, metric_words, payload, sign_manifest
from agent.privacy.policy import parse_dp

METRICS = [
    {"name": "temperature", "unit": "°C", "window": 300, "class": "environmental",
     "description": "the air temperature"},
    {"name": "footfall", "unit": "people", "window": 300, "class": "personal",
     "description": "people passing",
     "dp": {"mechanism": "count", "epsilon": "0.5", "per_person": 2, "max_events": 150, "k": 5}},
    {"name": "phones", "unit": "devices", "window": 300, "class": "personal",
     "dp": {"mechanism": "distinct", "epsilon": "1/4", "rotation_s": 900, "k": 10, "bits": 2048}},
    {"name": "dwell", "unit": "s", "window": 3600, "class": "personal", "description": "time spent at the stop",
     "dp": {"mechanism": "mean", "epsilon": "1", "per_person": 1, "lo": 0, "hi": 600, "k": 5}},
    {"name": "speed", "unit": "km/h", "window": 900, "class": "personal", "description": "vehicle speeds",
     "dp": {"mechanism": "histogram", "epsilon": "1/2", "per_person": 1, "k": 3, "buckets": [20, 30, 50]}},
]
DAILY = "300"


def _only_plain_types(x):
    if isinstance(x, dict):
        for k in x:
            assert isinstance(k, str)
            _only_plain_types(x[k])
    elif isinstance(x, list):
        for v in x:
            _only_plain_types(v)
    else:
        assert isinstance(x, (int, str)) and not isinstance(x, float), x


def test_manifest_payload_is_exact():
    m = build_manifest(METRICS, device_id="cmabcdefghijklmnop", board="sim", daily_epsilon=DAILY)
    _only_plain_types(m)
    assert m["v"] == 2 and m["dev"] == "cmabcdefghijklmnop" and m["board"] == "sim"
    names = [e["name"] for e in m["metrics"]]
    assert names == ["dwell", "footfall", "phones", "speed", "temperature"]
    by = {}
    for e in m["metrics"]:
        by[e["name"]] = e
    assert by["footfall"] == {"name": "footfall", "unit": "people", "window": 300, "class": "personal",
                              "description": "people passing", "mechanism": "count", "epsilon": "1/2",
                              "sensitivity": 2, "scale": {"n": "4"}, "k": 5, "per_person": 2,
                              "max_events": 150, "worst_case": 150, "per_reading": 150,
                              "released": ["n", "suppressed", "withheld"]}
    assert by["phones"]["per_person"] == 2 and by["phones"]["rotation_s"] == 900 and by["phones"]["devices"] == 1
    assert by["phones"]["scale"] == {"n": "8"}  # 2 addresses in 5 minutes, epsilon 1/4
    # one budget per person per day; every window of every personal metric would spend:
    # 288 x 1/2 + 288 x 1/4 + 24 x 1 + 96 x 1/2 = 288
    assert m["privacy"] == {"unit": "person", "daily_epsilon": "300", "every_window_per_day": "288"}
    assert sorted(m["fields"]) == ["dev", "gap", "h", "m", "mh", "seq", "t0", "t1", "v"]
    assert sorted(m["health"]) == ["boot", "clamp", "deg", "err", "net", "q", "up"]
    assert by["temperature"] == {"name": "temperature", "unit": "°C", "window": 300,
                                 "class": "environmental", "description": "the air temperature",
                                 "resolution": "1", "stats": ["mean", "min", "max"]}
    assert m["kind"] == "manifest"
    assert by["dwell"]["mean_split"] == "1/2" and by["dwell"]["sensitivity"] == 600
    assert by["dwell"]["scale"] == {"sum": "1200", "n": "2"}
    assert by["speed"]["buckets"] == [20, 30, 50]
    assert by["phones"]["bits"] == 2048


def test_manifest_accepts_a_dict_and_parsed_policies():
    d = {"footfall": {"unit": "people", "window_s": 300, "class": "personal",
                      "dp": parse_dp("footfall", METRICS[1]["dp"], 300)}}
    m = build_manifest(d, daily_epsilon=(12, 1))
    assert m["metrics"][0]["name"] == "footfall" and m["metrics"][0]["epsilon"] == "1/2"
    assert m["privacy"]["daily_epsilon"] == "12"
    assert "dev" not in m
    e = raises(ConfigError, build_manifest, d)
    assert "privacy.daily_epsilon: missing" in str(e)


def test_manifest_rejects_bad_metrics():
    cases = (
        ({"name": "x", "unit": "u", "window": 60, "class": "secret"}, "metric 'x': class must be"),
        ({"name": "x", "unit": "u", "window": 0, "class": "environmental"}, "metric 'x': window must be"),
        ({"name": "x", "unit": "u", "window": 1.5, "class": "environmental"}, "metric 'x': window must be"),
        ({"name": "x", "unit": "u", "window": 60, "class": "personal"}, "metric 'x': a personal metric needs a dp block"),
        ({"name": "x", "unit": "u", "window": 60, "class": "environmental",
          "dp": {"mechanism": "count"}}, "metric 'x': dp is only for personal metrics"),
        ({"unit": "u", "window": 60, "class": "environmental"}, "a metric has no name"),
    )
    for metric, msg in cases:
        e = raises(ConfigError, build_manifest, [metric])
        assert msg in str(e), (msg, str(e))
    e = raises(ConfigError, build_manifest, [METRICS[0], METRICS[0]])
    assert "declared twice" in str(e)


def test_metric_words():
    # the words the host's renderer (provisioning/language/manifest_words.py) falls back on
    assert metric_words("pm2_5") == "PM2.5"
    assert metric_words("co2") == "CO2"
    assert metric_words("wait_time") == "wait time"


def test_board_window_is_the_default_window():
    m = build_manifest({"footfall": {"unit": "events", "class": "personal", "sensor": "pir",
                                     "dp": METRICS[1]["dp"]}}, window_s=600, daily_epsilon="24")
    assert m["metrics"][0]["window"] == 600
    assert "sensor" not in m["metrics"][0]


def test_payload_is_the_same_bytes_on_every_runtime():
    m = build_manifest(METRICS, device_id="cmabcdefghijklmnop", board="sim", daily_epsilon=DAILY)
    v = load_vectors("privacy_manifest.json")
    assert tohex(hashlib.sha256(payload(m)).digest()) == v["sha256_of_payload"]
    assert tohex(manifest_hash(m)) == v["mh"]
    assert cbor.loads(payload(m)) == m


class FakeKey:
    """Signs with a keyed hash, padded to 64 bytes: enough to check the COSE plumbing."""

    def sign(self, message):
        d = hashlib.sha256(b"k" + message).digest()
        return d + d

    def verify(self, signature, message):
        if signature != self.sign(message):
            raise ValueError("bad signature")


def test_signed_manifest_carries_the_payload_and_kid():
    m = build_manifest(METRICS, device_id="cmabcdefghijklmnop", daily_epsilon=DAILY)
    msg = cose.verify1(sign_manifest(m, FakeKey(), "cmabcdefghijklmnop"), FakeKey())
    assert msg.payload == payload(m)
    assert msg.kid_text() == "cmabcdefghijklmnop"
