"""The privacy ledger: durable, restored after reboots, fail-closed when missing or corrupt."""
import hashlib
import os

from support import tmpdir

from agent.privacy.ledger import PrivacyLedger, utc_day

DAY0 = 1767225600  # 2026-01-01T00:00Z, a UTC day boundary
HALF = (1, 2)
CAP = (12, 1)


def ledger_path():
    return tmpdir() + "/privacy.ledger"


def read(p):
    with open(p, "rb") as f:
        return f.read()


def write(p, data):
    with open(p, "wb") as f:
        f.write(data)


def exists(p):
    try:
        os.stat(p)
        return True
    except OSError:
        return False


def test_utc_day():
    assert utc_day(DAY0) == 20454
    assert utc_day(DAY0 + 86399) == 20454
    assert utc_day(DAY0 + 86400) == 20455


def test_charges_until_the_cap_then_refuses():
    led = PrivacyLedger.create(ledger_path(), DAY0)
    for i in range(24):
        assert led.charge([("footfall", HALF, CAP)], DAY0 + i * 300) == {}
    assert led.spent("footfall", DAY0) == (12, 1)
    assert led.charge([("footfall", HALF, CAP)], DAY0 + 24 * 300) == {"footfall": "budget"}
    assert led.spent("footfall", DAY0) == (12, 1)


def test_one_window_charges_several_metrics_independently():
    led = PrivacyLedger.create(ledger_path(), DAY0)
    assert led.charge([("a", (1, 1), (1, 1)), ("b", (1, 3), (1, 1))], DAY0) == {}
    assert led.charge([("a", (1, 1), (1, 1)), ("b", (1, 3), (1, 1))], DAY0 + 60) == {"a": "budget"}
    assert led.spent("b", DAY0) == (2, 3)


def test_spend_survives_reboot_and_resets_next_day():
    p = ledger_path()
    led = PrivacyLedger.create(p, DAY0)
    for i in range(5):
        led.charge([("footfall", HALF, CAP), ("phones", (1, 3), CAP)], DAY0 + i)
    again = PrivacyLedger.open(p, DAY0 + 100)
    assert again.spent("footfall", DAY0 + 100) == (5, 2)
    assert again.spent("phones", DAY0 + 100) == (5, 3)
    assert again.spent("footfall", DAY0 + 86400) == (0, 1)
    assert again.charge([("footfall", HALF, CAP)], DAY0 + 86400) == {}
    assert PrivacyLedger.open(p, DAY0 + 86401).spent("footfall", DAY0 + 86401) == HALF


def test_create_never_resets_an_existing_ledger():
    p = ledger_path()
    led = PrivacyLedger.create(p, DAY0)
    led.charge([("footfall", (12, 1), CAP)], DAY0)
    led = PrivacyLedger.create(p, DAY0 + 10)
    assert led.spent("footfall", DAY0 + 10) == (12, 1)
    write(p, b"garbage")
    led = PrivacyLedger.create(p, DAY0 + 20)  # corrupt: still not a fresh budget
    assert led.charge([("footfall", HALF, CAP)], DAY0 + 20) == {"footfall": "ledger"}


def test_missing_ledger_fails_closed_for_the_day():
    p = ledger_path()
    led = PrivacyLedger.open(p, DAY0 + 50)
    assert led.closed
    assert led.spent("footfall", DAY0 + 50) is None
    assert led.charge([("footfall", HALF, CAP)], DAY0 + 60) == {"footfall": "ledger"}
    # a reboot later the same day is still closed (the closed day was written down) ...
    led = PrivacyLedger.open(p, DAY0 + 70)
    assert led.charge([("footfall", HALF, CAP)], DAY0 + 80) == {"footfall": "ledger"}
    # ... and the next UTC day starts a normal budget
    assert led.charge([("footfall", HALF, CAP)], DAY0 + 86400) == {}


KEY = b"k" * 32


def _slots(p):
    from agent.store.slots import SlotFile

    return SlotFile(p, 2048)


def test_missing_ledger_on_a_device_that_ran_stays_closed_until_the_next_day_by_every_clock():
    p = ledger_path()
    PrivacyLedger.create(p, DAY0, KEY)
    os.remove(p)
    # booted with yesterday's clock: the device's last window ended today, so today is closed
    led = PrivacyLedger.open(p, DAY0 - 3600, KEY, trusted_s=DAY0 + 7200, mono_s=0)
    assert led.closed and led.reason == "missing" and led.day == utc_day(DAY0)
    assert led.charge([("f", HALF, CAP)], DAY0 + 7300, mono_s=10) == {"f": "ledger"}
    # the wall clock jumps to tomorrow at once: monotonic time has not seen the day pass
    assert led.charge([("f", HALF, CAP)], DAY0 + 86400, mono_s=20) == {"f": "ledger"}
    # ... once it has, tomorrow opens
    assert led.charge([("f", HALF, CAP)], DAY0 + 86400 + 300, mono_s=86400 + 3600) == {}
    # and a reboot (monotonic time restarts) the same day with the clock set back still finds today closed
    os.remove(p)
    led = PrivacyLedger.open(p, DAY0 - 10, KEY, trusted_s=DAY0 + 86400 + 300)
    assert led.charge([("f", HALF, CAP)], DAY0 + 86400 + 400) == {"f": "ledger"}


def test_an_edited_ledger_is_refused_and_kept_as_evidence():
    p = ledger_path()
    led = PrivacyLedger.create(p, DAY0, KEY)
    led.charge([("f", (12, 1), CAP)], DAY0)
    f = _slots(p)
    raw = f.read()
    forged = raw.replace(b'"12"', b'"0"')
    assert forged != raw
    f.write(forged)  # well framed, but its MAC is over the old body
    led = PrivacyLedger.open(p, DAY0 + 60, KEY)
    assert led.closed and led.reason == "invalid"
    assert led.charge([("f", HALF, CAP)], DAY0 + 60) == {"f": "ledger"}
    assert exists(p + ".bad")
    # a ledger written under another key (say, by hand with the unkeyed format) is refused too
    other = ledger_path()
    PrivacyLedger.create(other, DAY0, b"another device")
    assert PrivacyLedger.open(other, DAY0, KEY).closed


def test_an_older_copy_is_refused():
    p = ledger_path()
    led = PrivacyLedger.create(p, DAY0, KEY)
    led.charge([("f", HALF, CAP)], DAY0)
    old = read(p)
    for i in range(23):
        led.charge([("f", HALF, CAP)], DAY0 + 300 * (i + 1))
    gen = led.gen  # what the device recorded in its progress file
    write(p, old)
    led = PrivacyLedger.open(p, DAY0 + 9000, KEY, min_gen=gen)
    assert led.closed and led.reason == "rolled back"
    assert led.charge([("f", HALF, CAP)], DAY0 + 9100) == {"f": "ledger"}
    # its next write is above the copy, so the next boot sees a current ledger (still closed today)
    led = PrivacyLedger.open(p, DAY0 + 9200, KEY, min_gen=gen)
    assert led.reason is None and led.closed


def test_clock_stepping_forward_day_by_day_mints_no_budget():
    p = ledger_path()
    led = PrivacyLedger.create(p, DAY0, KEY)
    led.bound(300, 0)
    granted = 0
    for i in range(75):  # one window per 300 s of monotonic time, the wall clock a day ahead each time
        if led.charge([("f", HALF, CAP)], DAY0 + i * 86400, mono_s=i * 300) == {}:
            granted += 1
    assert granted == 24  # 12 / (1/2): one day's cap, as monotonic time allows
    # and no more windows than monotonic time has room for
    led = PrivacyLedger.create(ledger_path(), DAY0, KEY)
    led.bound(300, 1000)
    assert led.charge([("f", HALF, CAP)], DAY0, mono_s=1000) == {}
    assert led.charge([("f", HALF, CAP)], DAY0 + 86400, mono_s=1001) == {"f": "budget"}
    assert led.charge([("f", HALF, CAP)], DAY0 + 86400, mono_s=1300) == {}


def test_clock_set_back_gets_no_budget():
    p = ledger_path()
    led = PrivacyLedger.create(p, DAY0 + 86400)
    led.charge([("footfall", HALF, CAP)], DAY0 + 86400)
    led = PrivacyLedger.open(p, DAY0)
    assert led.charge([("footfall", HALF, CAP)], DAY0) == {"footfall": "ledger"}
    assert led.spent("footfall", DAY0) is None


def test_a_torn_slot_fails_closed_for_the_day():
    p = ledger_path()
    led = PrivacyLedger.create(p, DAY0)
    led.charge([("footfall", HALF, CAP)], DAY0)
    led.charge([("footfall", HALF, CAP)], DAY0 + 1)
    f = _slots(p)
    f.read()
    with open(p, "r+b") as fh:  # a power cut mid-write of the newest slot
        fh.seek(f.newest * 2048 + 30)
        fh.write(b"\x00" * 40)
    # the older slot is intact, but the torn one may have held a granted charge: closed for the day
    led = PrivacyLedger.open(p, DAY0 + 2)
    assert led.closed and led.charge([("footfall", HALF, CAP)], DAY0 + 3) == {"footfall": "ledger"}
    led = PrivacyLedger.open(p, DAY0 + 4)  # rewritten whole: still closed today, open tomorrow
    assert led.reason is None and led.closed
    assert led.charge([("footfall", HALF, CAP)], DAY0 + 86400) == {}


def test_failed_write_grants_nothing():
    d = tmpdir()
    p = d + "/sub/privacy.ledger"  # its folder does not exist: every write fails
    led = PrivacyLedger(p, utc_day(DAY0), {}, False, 0)
    assert led.charge([("footfall", HALF, CAP)], DAY0) == {"footfall": "ledger"}
    assert led.spent("footfall", DAY0) is None


def _reboot_day(p, crash_kinds):
    # 1000 reboots in one UTC day; every boot asks to release one window of two metrics and
    # then "crashes" in one of the ways a power cut can leave the flash.
    PrivacyLedger.create(p, DAY0)
    granted = {"footfall": 0, "phones": 0}
    for i in range(1000):
        now = DAY0 + 60 + i * 80
        led = PrivacyLedger.open(p, now)
        refused = led.charge([("footfall", HALF, CAP), ("phones", (1, 5), (3, 1))], now)
        for m in granted:
            if m not in refused:
                granted[m] += 1
        kind = crash_kinds[hashlib.sha256(str(i).encode()).digest()[0] % len(crash_kinds)]
        if kind == "torn" and exists(p):
            f = _slots(p)
            f.read()
            with open(p, "r+b") as fh:  # the newest slot torn part-way
                fh.seek(f.newest * 2048 + 20 + i % 60)
                fh.write(b"\xff" * 8)
        elif kind == "bitflip":
            raw = bytearray(read(p))
            raw[30 + i % 20] ^= 0x04
            write(p, bytes(raw))
        elif kind == "deleted":
            os.remove(p)
    return granted


def test_a_thousand_reboots_never_overspend():
    granted = _reboot_day(ledger_path(), ("clean",))
    # epsilon 1/2 against a cap of 12, and 1/5 against 3: exactly the cap, never more
    assert granted == {"footfall": 24, "phones": 15}, granted
    granted = _reboot_day(ledger_path(), ("clean", "clean", "torn", "bitflip", "deleted"))
    assert granted["footfall"] <= 24 and granted["phones"] <= 15, granted


def test_release_window_charges_one_budget_per_person_and_withholds_when_spent():
    from agent.privacy.contributions import open_window
    from agent.privacy.policy import parse_dp
    from agent.privacy.release import PERSON, release_window

    p = ledger_path()
    led = PrivacyLedger.create(p, DAY0)
    # huge epsilons: the noise is 0 here, so the data path is exact
    foot = parse_dp("footfall", {"mechanism": "count", "epsilon": "1000", "per_person": 1, "k": 1}, 300, 1)
    wait = parse_dp("wait", {"mechanism": "sum", "epsilon": "1500", "per_person": 1, "lo": 0, "hi": 9}, 300)
    cap = (5000, 1)  # two windows of both (2 x 2500), not three
    outs = []
    for i in range(3):
        a = open_window(foot, os.urandom)
        b = open_window(wait, os.urandom)
        for _ in range(7):
            a.add()
            b.add(3)
        outs.append(release_window({"footfall": (foot, a), "wait": (wait, b)}, led, DAY0 + i * 300, os.urandom, cap))
        assert a.n == 0 and b.total == 0  # wiped, released or not
    assert outs[0] == outs[1] == {"footfall": {"n": 7}, "wait": {"sum": 21}}
    # one person can be in both metrics: the third window would cost 7500 > 5000, so both wait
    assert outs[2] == {"footfall": {"withheld": "budget"}, "wait": {"withheld": "budget"}}
    assert led.spent(PERSON, DAY0 + 1000) == cap  # one key for the person, the combined cost
    assert led.spent("footfall", DAY0 + 1000) == (0, 1) and led.spent("wait", DAY0 + 1000) == (0, 1)
    # after a reboot the spend is still there
    led = PrivacyLedger.open(p, DAY0 + 1000)
    a = open_window(foot, os.urandom)
    assert release_window({"footfall": (foot, a)}, led, DAY0 + 1000, os.urandom, cap) == {"footfall": {"withheld": "budget"}}
    # the next UTC day brings a fresh budget
    a = open_window(foot, os.urandom)
    a.add()
    assert release_window({"footfall": (foot, a)}, led, DAY0 + 86400, os.urandom, cap) == {"footfall": {"n": 1}}
    # a ledger that failed closed withholds with its own reason
    write(p, b"tampered")
    led = PrivacyLedger.open(p, DAY0 + 86400 + 2000)
    b = open_window(wait, os.urandom)
    assert release_window({"wait": (wait, b)}, led, DAY0 + 86400 + 2000, os.urandom, cap) == {"wait": {"withheld": "ledger"}}
