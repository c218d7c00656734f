"""dp blocks: parsed to exact rationals and scales, or rejected naming the metric and field."""
from support import load_vectors, raises

from agent.errors import ConfigError
from agent.core import rational
from agent.privacy.policy import parse_dp


def test_valid_blocks_parse_to_exact_values():
    for v in load_vectors("privacy_policy.json")["valid"]:
        p = parse_dp(v["metric"], v["dp"])
        assert p.metric == v["metric"]
        assert p.mechanism == v["dp"]["mechanism"]
        assert rational.text(p.epsilon) == v["epsilon"], v["metric"]
        assert rational.text(p.daily_epsilon) == v["daily_epsilon"], v["metric"]
        assert p.sensitivity() == v["sensitivity"], v["metric"]
        assert p.windows_per_day() == v["windows_per_day"], v["metric"]
        for key in ("k", "lo", "hi", "bits", "buckets"):
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
        e = raises(ConfigError, parse_dp, v["metric"], v["dp"])
        msg = str(e)
        assert msg.startswith("metric '%s': " % v["metric"]), msg
        assert v["error"] in msg, (v["error"], msg)


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
