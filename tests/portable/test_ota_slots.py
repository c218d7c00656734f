"""A board's two code slots (agent/ota/board_slots.py, portable): staged, swapped at boot, on
trial, confirmed or rolled back; every step journalled so a cut anywhere leaves a runnable version."""
import hashlib

from agent.ota import board_slots as bs
from agent.ota import bundle
from agent.ota.state import OtaState
from support import tmpdir

FILES = [("agent/__init__.py", b""), ("agent/marker.py", b"RELEASE = 7\n")]


class _Restarted(Exception):
    pass


def _restart():
    raise _Restarted()


def _device():
    d = tmpdir()
    bs.mkdirs(d + "/ota")
    part = d + "/ota/part"
    with open(part, "wb") as f:
        f.write(bundle.pack(FILES))
    return d, part


def _stage(d, part, seq=7):
    with open(part, "wb") as f:  # the verified download (the boot into the trial removes it)
        f.write(bundle.pack(FILES))
    inst = bs.Installer(d, _restart)
    try:
        inst.install({"seq": seq, "comp": "agent"}, b"release-%d" % seq, part)
    except _Restarted:
        return inst
    raise AssertionError("install did not restart the board")


def _read(path):
    with open(path, "rb") as f:
        return f.read()


def test_staged_swapped_on_trial_then_confirmed():
    d, part = _device()
    inst = _stage(d, part)
    assert _read(d + "/ota/slot0/agent/marker.py") == b"RELEASE = 7\n"
    assert bs.Journal(d).step == "staged" and inst.trial() is None
    b = bs.boot(d, activate=False)
    assert b.trial and b.slot == 0 and b.path == d + "/ota/slot0"
    s = OtaState(d)
    assert s.st[0] == "trial" and s.st[2] == 7 and s.dl is None
    h = hashlib.sha256(b"release-7").digest()
    assert inst.trial() == (7, h) and bs.running_sw(d) == (7, h[:4])
    inst.confirm()
    b = bs.boot(d, activate=False)
    assert not b.trial and b.slot == 0 and bs.Journal(d).act == 0
    assert bs.running_sw(d) == (7, h[:4])
    assert OtaState(d).sw == 7  # the state learns a confirm the fetcher could not write (a cut)
    # The next release goes to the other slot; the confirmed one stays whole.
    _stage(d, part, seq=9)
    b = bs.boot(d, activate=False)
    assert b.slot == 1 and b.trial and _read(d + "/ota/slot0/agent/marker.py") == b"RELEASE = 7\n"


def test_a_version_that_never_confirms_is_rolled_back_at_its_fourth_start():
    d, part = _device()
    _stage(d, part)
    starts = [bs.boot(d, activate=False) for _ in range(3)]
    assert all(b.trial and b.slot == 0 for b in starts) and bs.Journal(d).boots == 3
    b = bs.boot(d, activate=False)
    assert not b.trial and b.slot == -1 and b.path is None  # the factory agent runs again
    s = OtaState(d)
    assert s.st[:3] == ["rolled_back", "crash_loop", 7] and s.bad == 7 and s.sw == 0
    assert bs.running_sw(d) == (0, b"\x00\x00\x00\x00")


def test_a_trial_past_its_deadline_is_rolled_back_by_the_guard():
    d, part = _device()
    _stage(d, part)
    b = bs.boot(d, activate=False)

    class A:
        window_s = 10

    assert not b.guard(A(), 0)
    deadline = bs.START_GRACE_S + bs.HEALTH_WINDOWS * 10
    assert not b.guard(A(), deadline - 1)
    assert b.guard(A(), deadline + 5)
    assert OtaState(d).st[:2] == ["rolled_back", "health_timeout"] and bs.Journal(d).step == ""
    assert bs.boot(d, activate=False).slot == -1


def test_a_cut_while_staging_leaves_the_running_version():
    d, part = _device()
    j = bs.Journal(d)
    j.step, j.x = "staging", 0
    j.save()
    bs.mkdirs(d + "/ota/slot0/agent")
    b = bs.boot(d, activate=False)
    assert b.slot == -1 and not b.trial and bs.Journal(d).step == ""
    # A bundle that does not unpack leaves the journal as it was, and the slot empty.
    with open(part, "wb") as f:
        f.write(bundle.pack(FILES)[:-5])
    try:
        bs.Installer(d, _restart).install({"seq": 7, "comp": "agent"}, b"r", part)
        raise AssertionError("a truncated bundle was installed")
    except _Restarted:
        raise AssertionError("restarted into a truncated bundle")
    except Exception as e:  # noqa: BLE001
        assert "truncated" in str(e), e
    assert bs.Journal(d).step == "" and bs.boot(d, activate=False).slot == -1
