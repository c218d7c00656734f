"""The board's start (portable): which version runs, its trial's guard, and the roll back.

Runs in the factory agent (/lib/agent or frozen), which an update never replaces, before any other
agent module is imported (board_main.start). The slots and the journal: agent/ota/board_slots.py.

    chosen = boot(device_dir, log)      staged -> trial; count the start; a fourth start of a version
                                        that never confirmed rolls back (crash_loop); the chosen slot
                                        first in sys.path, every loaded agent module dropped
    chosen.guard(agent, mono_s)         True (restart now) once a trial missed its deadline and was
                                        rolled back (health_timeout)
    rollback(device_dir, reason, log)   OTA state first (bad seq, status rolled_back), then the journal
"""
import sys

from agent.compat import file_exists
from agent.ota.board_slots import Journal

MAX_STARTS = 3  # a trial version started this often without confirming is rolled back at the next start
HEALTH_WINDOWS = 3
START_GRACE_S = 60  # Wi-Fi, NTP and the first connection, before the windows are counted


class Boot:
    """What boot() decided: `slot` (-1 factory), `trial` (bool), `path` (put first in sys.path)."""

    def __init__(self, device_dir, slot, trial, path, log):
        self.device_dir, self.slot, self.trial, self.path, self.log = device_dir, slot, trial, path, log
        self.deadline = None
        self._next_check = 0

    def guard(self, agent, mono_s):
        """Called by the run loop each step: a trial not confirmed by its deadline rolls back.
        Returns True when the board must restart."""
        if not self.trial or mono_s < self._next_check:
            return False
        self._next_check = mono_s + 5
        if self.deadline is None:
            windows, grace = trial_limits(self.device_dir)
            self.deadline = mono_s + grace + windows * agent.window_s
        if Journal(self.device_dir).step != "trial":
            self.trial = False  # confirmed
            return False
        if mono_s < self.deadline:
            return False
        rollback(self.device_dir, "health_timeout", self.log)
        return True


def trial_limits(device_dir):
    """(windows, grace s) a trial has to confirm: config.json `ota_health_windows` (default 3) and
    `ota_start_grace_s` (default START_GRACE_S)."""
    import json

    try:
        with open(device_dir + "/config.json") as f:
            c = json.load(f)
        return int(c.get("ota_health_windows", HEALTH_WINDOWS)), int(c.get("ota_start_grace_s", START_GRACE_S))
    except (OSError, ValueError, TypeError):
        return HEALTH_WINDOWS, START_GRACE_S


def boot(device_dir, log=None, activate=True):
    """Decide which version runs now (see the module docstring) and, if activate, put it first in
    sys.path and drop every loaded agent module (so that the chosen version's are imported)."""
    log = log or (lambda text: None)
    try:
        j = Journal(device_dir)
    except OSError:
        return Boot(device_dir, -1, False, None, log)
    if j.step == "staging":
        j.step = ""  # cut while unpacking: that slot is forgotten; the fetcher installs again
        j.sl[j.x] = None
        j.save()
    if j.step == "staged":
        _start_trial(device_dir, j, log)
    if j.step == "trial":
        if j.boots >= MAX_STARTS:
            rollback(device_dir, "crash_loop", log, j)
        else:
            j.boots += 1
            j.save()
            log("update %d on trial: start %d of %d" % (j.sl[j.x][0], j.boots, MAX_STARTS))
    _reconcile(device_dir, j)
    i, held = j.running()
    if i < 0 or held is None:
        return Boot(device_dir, -1, False, None, log)
    path = j.slot_dir(i)
    if not file_exists(path + "/agent"):
        path += "/lib"  # a bundle of /lib/agent/... paths
    if activate:
        sys.path.insert(0, path)
        drop_agent_modules()
    return Boot(device_dir, i, j.step == "trial", path, log)


def _start_trial(device_dir, j, log):
    from agent.ota.part import remove
    from agent.ota.state import PART, RELEASE, OtaState

    s = OtaState(device_dir)
    seq, h = j.sl[j.x]
    s.dl = None
    s.report("trial", "", seq, bytes(h))
    s.save()
    j.step, j.boots = "trial", 0
    j.save()
    remove(s.dir + "/" + PART)
    remove(s.dir + "/" + RELEASE)
    log("update %d: swapped into slot %d, on trial" % (seq, j.x))


def _reconcile(device_dir, j):
    """A cut between the journal's confirm and the state's: the state learns the confirmed seq."""
    if j.step or j.act < 0 or j.sl[j.act] is None:
        return
    from agent.ota.state import OtaState

    s = OtaState(device_dir)
    if s.sw < j.sl[j.act][0]:
        s.sw, s.d = j.sl[j.act][0], bytes(j.sl[j.act][1])
        s.report("confirmed", "", s.sw, s.d)
        s.save()


def rollback(device_dir, reason, log, j=None):
    """Back to the confirmed version: the OTA state first (never retried: bad = seq; status), then
    the journal."""
    from agent.ota.state import OtaState

    j = j or Journal(device_dir)
    if j.step != "trial":
        return
    seq, h = j.sl[j.x]
    s = OtaState(device_dir)
    if seq > s.bad:
        s.bad = seq
    held = j.sl[j.act] if j.act >= 0 else None  # the installed version is the journal's, whatever the trial said
    s.sw, s.d = (held[0], bytes(held[1])) if held is not None else (0, b"")
    s.report("rolled_back", reason, seq, bytes(h))
    s.save()
    j.step, j.boots = "", 0
    j.save()
    log("update %d rolled back (%s): running %s" % (seq, reason, "slot %d" % j.act if j.act >= 0 else "the factory agent"))


def drop_agent_modules():
    for name in list(sys.modules):
        if name == "agent" or name.startswith("agent."):
            del sys.modules[name]
