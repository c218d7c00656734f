"""One budget per person per day across all personal metrics, charged through MetricSet.close
and the real ledger on flash: the shipped defaults fit a day exactly, and the cap binds when
windows would spend more (issue 11)."""
import os

from agent.privacy.ledger import PrivacyLedger
from agent.privacy.release import PERSON
from street_hour import T0, people_board, replay

DAY0 = T0 - T0 % 86400
FED = [("footfall", 1)] * 40 + [("presence", bytes((i, 1, 2, 3, 4, 5))) for i in range(30)]


def _day(board, led, day_start, closes):
    outs = []
    for h in range(1, closes + 1):
        t1 = day_start + 3600 * min(h, 24)
        outs.append(replay(board, FED, os.urandom).close(led, t1, t1))
    return outs


def test_shipped_defaults_publish_every_hour_and_not_one_window_more(tmp_path):
    board = people_board()
    led = PrivacyLedger.create(str(tmp_path / "privacy.ledger"), DAY0)
    outs = _day(board, led, DAY0, 23)  # the 24th closes at midnight, in the next UTC day
    assert all("withheld" not in o[name] for o in outs for name in o)
    assert led.spent(PERSON, DAY0 + 1) == (253, 100)  # 23 x 0.11
    # a 24th charge in the same day (a restart closing a window twice, a clock stepped back)
    out = replay(board, FED, os.urandom).close(led, DAY0 + 86399, DAY0 + 82800)
    assert "withheld" not in out["footfall"] and "withheld" not in out["presence"]
    assert led.spent(PERSON, DAY0 + 1) == (66, 25)  # exactly 2.64: the budget is now spent
    out = replay(board, FED, os.urandom).close(led, DAY0 + 86399, DAY0 + 82800)
    assert out == {"footfall": {"withheld": "budget"}, "presence": {"withheld": "budget"}}


def test_the_cap_binds_when_windows_would_exceed_it(tmp_path):
    # epsilon 1/2 per metric: a window costs one person 1, a day of windows 24 > 2.64
    board = people_board(footfall={"epsilon": "1/2"}, presence={"epsilon": "1/2"})
    led = PrivacyLedger.create(str(tmp_path / "privacy.ledger"), DAY0)
    outs = _day(board, led, DAY0, 23)
    released = [o for o in outs if "withheld" not in o["footfall"]]
    assert len(released) == 2  # 1 + 1 <= 2.64 < 3
    assert all(o == {"footfall": {"withheld": "budget"}, "presence": {"withheld": "budget"}} for o in outs[2:])
    assert led.spent(PERSON, DAY0 + 1) == (2, 1)
    # a reboot gets no fresh budget; the next UTC day does
    led = PrivacyLedger.open(str(tmp_path / "privacy.ledger"), DAY0 + 50000)
    out = replay(board, FED, os.urandom).close(led, DAY0 + 50400, DAY0 + 50400)
    assert out["footfall"] == {"withheld": "budget"}
    out = replay(board, FED, os.urandom).close(led, DAY0 + 86400 + 3600, DAY0 + 86400 + 3600)
    assert "withheld" not in out["footfall"] and "withheld" not in out["presence"]
