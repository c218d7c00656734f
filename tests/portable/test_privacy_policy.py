"""dp blocks: parsed to exact rationals and scales, or rejected naming the metric and field."""
from support import load_vectors, raises

from agent.errors import ConfigError
from agent.core import rational
from agent.privacy.policy import addresses_per_window, parse_budget, parse_dp, spend_per_day


def test_valid_blocks_parse_to_exact_per_person_bounds():
    for v in load_vectors("privacy_policy.json")["valid"]:
        p = parse_dp(v["metric"], v["dp"], v["window"], v.get("refractory_s"))
        assert p.metric == v["metric"]
        assert p.mechanism == v["dp"]["mechanism"]
        assert rational.text(p.epsilon) == v["epsilon"], v["metric"]
        assert p.per_person == v["per_person"], v["metric"]
        assert p.sensitivity() == v["sensitivity"], v["metric"]
        assert p.worst_case() == v.get("worst_case"), v["metric"]
        assert rational.text(p.per_day()) == v["per_day"], v["metric"]
        for key in ("k", "lo", "hi", "bits", "buckets", "max_events", "rotation_s", "devices"):
            if key in v:
                assert getattr(p, key) == v[key], (v["metric"], key)
        if "mean_split" in v:
            assert rational.text(p.mean_split) == v["mean_split"]
        scales = p.scales()
        assert sorted(scales) == sorted(v["scales"]), v["metric"]
        for key in scales:
            assert rational.text(scales[key]) == v["scales"][key], (v["metric"], key)


def test_invalid_blocks_are_rejected_naming_metric_and_field():
    for v in load_vectors("privacy_policy.json")["invalid"]:
        e = raises(ConfigError, parse_dp, v["metric"], v["dp"], v["window"], v["refractory_s"])
        msg = str(e)
        assert msg.startswith("metric '%s': " % v["metric"]), msg
        assert v["error"] in msg, (v["error"], msg)


def test_addresses_per_window():
    # A phone whose addresses each last >= rotation_s: a window that starts just before a
    # rotation sees one more address than whole rotations fit.
    assert addresses_per_window(3600, 900) == 5
    assert addresses_per_window(3600, 300) == 13
    assert addresses_per_window(3600, 1000) == 5
    assert addresses_per_window(600, 3600) == 2


def test_budget_is_one_per_person_per_day():
    foot = parse_dp("footfall", {"mechanism": "count", "epsilon": "3/100", "per_person": 2, "k": 5}, 3600, 2)
    pres = parse_dp("presence", {"mechanism": "distinct", "epsilon": "2/25", "rotation_s": 900, "k": 5}, 3600)
    both = {"footfall": foot, "presence": pres}
    assert spend_per_day(both) == (66, 25)  # 24 windows x (3/100 + 2/25) = 2.64
    assert parse_budget({"daily_epsilon": "2.64"}, both) == (66, 25)
    assert parse_budget(None, {}) is None
    for obj, msg in ((None, "privacy: missing"), ({"daily_epsilon": "0"}, "privacy.daily_epsilon: must be > 0"),
                     ({"daily_epsilon": "x"}, "privacy.daily_epsilon: must be a number"),
                     ({"daily_epsilon": "1/10"}, "less than one window of every personal metric (11/100)"),
                     ({}, "privacy.daily_epsilon: missing"), ({"daily_epsilon": "2", "cap": 1}, "privacy.cap: unknown")):
        e = raises(ConfigError, parse_budget, obj, both)
        assert msg in str(e), (msg, str(e))


def test_rational_parsing():
    for raw, want in (("0.5", "1/2"), ("1/2", "1/2"), ("2/4", "1/2"), (0.1, "1/10"), (3, "3"),
                      ("12", "12"), (".25", "1/4"), ("1.5e1", "15"), ("2e-3", "1/500"),
                      (" 7 ", "7"), ("-3/6", "-1/2")):
        assert rational.text(rational.parse(raw)) == want, (raw, want)
    for bad in ("", "1/", "/2", "a", "1.2.3", "1/0", None, True, [1], "1e", "--1", float("inf"), float("nan")):
        raises(ValueError, rational.parse, bad)


def test_rational_arithmetic():
    half = (1, 2)
    third = (1, 3)
    assert rational.add(half, third) == (5, 6)
    assert rational.sub(half, third) == (1, 6)
    assert rational.mul(half, third) == (1, 6)
    assert rational.cmp(half, third) == 1 and rational.cmp(third, half) == -1
    assert rational.cmp((2, 4), half) == 0
    assert rational.floor_div((12, 1), half) == 24
    assert rational.floor_div((7, 1), (2, 1)) == 3
