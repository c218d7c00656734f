"""The simulated board's manifest reads correctly in plain language (issue 3, "done when"),
and every personal metric it declares goes through the privacy engine. Host only: it reads
boards/sim.json, which the board profiles own."""
import os
from pathlib import Path

from agent.board import load_profile
from agent.privacy.contributions import open_window
from agent.privacy.ledger import PrivacyLedger
from agent.privacy.manifest import _title, build_manifest, describe, window_text
from agent.privacy.release import release_window

SIM = Path(__file__).resolve().parent.parent / "boards" / "sim.json"
NOW = 1767225600


def test_sim_manifest_in_plain_language():
    board = load_profile(str(SIM))
    m = build_manifest(board.metrics, device_id="cmabcdefghijklmnop", board=board.name,
                       window_s=board.window_s)
    text = describe(m)
    personal = [e for e in m["metrics"] if e["class"] == "personal"]
    assert sorted(e["name"] for e in personal) == board.personal_metrics()
    for e in personal:
        p = board.dp[e["name"]]
        line = [ln for ln in text.split("\n") if ln.startswith(e["name"][:1].upper() + e["name"][1:] + ":")]
        assert len(line) == 1, e["name"]
        assert "with noise added so no single person can be detected" in line[0]
        assert "(ε = %s per %s window, at most %s per day" % (
            e["epsilon"], window_text(board.metric_window(e["name"])), e["daily_epsilon"]) in line[0]
        assert "Counts under %d are never published." % p.k in line[0]
    for e in m["metrics"]:
        if e["class"] == "environmental":
            line = [ln for ln in text.split("\n") if ln.startswith(_title(e["name"]) + ":")]
            assert len(line) == 1 and line[0].endswith("No personal data."), e["name"]
            assert "over each %s window" % window_text(e["window"]) in line[0]


def test_every_sim_personal_metric_releases_through_the_engine(tmp_path):
    board = load_profile(str(SIM))
    led = PrivacyLedger.create(str(tmp_path / "privacy.ledger"), NOW)
    windows = {}
    for name in board.personal_metrics():
        p = board.dp[name]
        acc = open_window(p, os.urandom)
        for i in range(300):
            acc.add(os.urandom(6) if p.mechanism == "distinct" else 1)
        windows[name] = (p, acc)
    out = release_window(windows, led, NOW, os.urandom)
    assert sorted(out) == board.personal_metrics()
    for name in out:
        assert set(out[name]) <= {"n", "sum", "mean", "h", "saturated", "suppressed"}, out[name]
        if "n" in out[name]:
            assert abs(out[name]["n"] - 300) < 100
