"""The simulated board's manifest reads correctly in plain language (issue 3, "done when"),
every personal metric it declares goes through the privacy engine, and the shipped boards'
one budget per person per day stands beside published deployments (issue 11). Host only: it
reads boards/*.json, which the board profiles own."""
import os
from pathlib import Path

from agent.board import load_profile
from agent.core import rational
from agent.privacy.contributions import open_window
from agent.privacy.ledger import PrivacyLedger
from agent.privacy.manifest import board_manifest
from agent.privacy.policy import spend_per_day
from agent.privacy.release import release_window
from provisioning.language import catalogue, manifest_words

BOARDS = Path(__file__).resolve().parent.parent / "boards"
SIM = BOARDS / "sim.json"
NOW = 1767225600


def test_sim_manifest_in_plain_language():
    board = load_profile(str(SIM))
    m = board_manifest(board, "cmabcdefghijklmnop")
    cat = catalogue.load("en")
    text = manifest_words.describe(m, cat)
    assert "This device spends at most 2.64 per day on any one person" in text
    personal = [e for e in m["metrics"] if e["class"] == "personal"]
    assert sorted(e["name"] for e in personal) == board.personal_metrics()
    for e in personal:
        p = board.dp[e["name"]]
        line = [ln for ln in text.split("\n") if ln.startswith(cat.metric_title(e["name"], e) + ":")]
        assert len(line) == 1, e["name"]
        assert "with noise added (ε = %s per %s for one person)" % (
            manifest_words.decimal(e["epsilon"], cat), cat.window(board.metric_window(e["name"]))) in line[0]
        assert "When the noisy count (after the noise is added) is under %d, only \"suppressed\"" % p.k in line[0]
    assert "changes its address no more often than every 15 minutes" in text
    assert "sets the sensor off at most 2 times in a window" in text
    for e in m["metrics"]:
        if e["class"] == "environmental":
            line = [ln for ln in text.split("\n") if ln.startswith(cat.metric_title(e["name"], e) + ":")]
            assert len(line) == 1 and line[0].endswith("No personal data."), e["name"]
            assert "every %s" % cat.window(e["window"]) in line[0]


def test_shipped_boards_spend_at_most_2_64_per_person_per_day():
    for path in sorted(BOARDS.glob("*.json")):
        board = load_profile(str(path))
        if not board.dp:
            continue
        assert rational.cmp(board.daily_epsilon, (264, 100)) <= 0, path.name
        assert rational.cmp(spend_per_day(board.dp), board.daily_epsilon) <= 0, path.name
        for name in board.dp:
            assert board.dp[name].sensitivity() >= 1 and board.dp[name].per_person is not None


def test_every_sim_personal_metric_releases_through_the_engine(tmp_path):
    board = load_profile(str(SIM))
    led = PrivacyLedger.create(str(tmp_path / "privacy.ledger"), NOW)
    windows = {}
    for name in board.personal_metrics():
        p = board.dp[name]
        acc = open_window(p, os.urandom)
        for i in range(3000):
            acc.add(os.urandom(6) if p.mechanism == "distinct" else 1)
        windows[name] = (p, acc)
    out = release_window(windows, led, NOW, os.urandom, board.daily_epsilon)
    assert sorted(out) == board.personal_metrics()
    for name in out:
        assert set(out[name]) <= {"n", "sum", "mean", "h", "saturated", "suppressed"}, out[name]
        assert "n" in out[name] and abs(out[name]["n"] - 3000) < 1500  # scale <= 67: |noise| < 1500 w.p. 1 - 1e-9
