"""A board's two code slots (portable, MicroPython boards and their tests): stage, swap at boot,
trial, confirm, roll back.

    /civicmote/ota/slot0/, slot1/   a release's agent (the board bundle's .mpy set), unpacked
    /civicmote/ota/journal          two-slot file (agent/store/slots.py), CBOR map:
        act    the slot of the confirmed version, -1: the factory agent (/lib/agent or frozen)
        sl     [[seq, release hash] or None] * 2: what each slot holds
        step   "" | "staging" | "staged" | "trial"      x: the slot the step is about
        boots  starts of the trial version so far

Steps, each journalled before it is taken, so a power cut anywhere leaves a board that runs
the old version or the new one, never neither:
    stage (running version)   journal staging x; empty slot x; unpack the bundle into it; journal
                              staged x; restart. A cut while staging: the next boot forgets slot
                              x and the fetcher installs again from the verified `ota/part`.
    boot (factory code)       staged -> trial (the download's files are dropped); trial: count
                              the start (journalled before the new code runs); the fourth start of
                              a version that never confirmed rolls back (`crash_loop`). The chosen
                              slot goes first in sys.path, ahead of /lib and the frozen modules,
                              and every loaded agent module is dropped so the slot's are imported.
    guard (factory code)      a trial not confirmed within N windows (`ota_health_windows`,
                              default 3, plus START_GRACE_S) rolls back (`health_timeout`)
    confirm (new version)     the health gate passed (agent/ota/fetch.py): act = x
    roll back                 OTA state first (bad release seq, status rolled_back + reason),
                              then the journal (step ""): the board restarts into act.
The start, the guard and the roll back are agent/ota/board_boot.py. Device state (ledger, seq,
progress, outbox, receipts) is never read or written by either.
"""
import os

from agent.core import cbor
from agent.store.slots import SlotFile

JOURNAL = "journal"
SLOT_SIZE = 256
SLOT_LIMIT = 512 * 1024  # the largest board bundle taken (bytes)


class Journal:
    def __init__(self, device_dir):
        self.dir = device_dir + "/ota"
        self._file = SlotFile(self.dir + "/" + JOURNAL, SLOT_SIZE)
        self.act, self.sl, self.step, self.x, self.boots = -1, [None, None], "", 0, 0
        try:
            raw = self._file.read()
            m = cbor.loads(raw, max_depth=4) if raw is not None else None
        except Exception:  # noqa: BLE001 - a damaged journal: the factory agent runs
            m = None
        if isinstance(m, dict):
            self.act, self.sl, self.step = m.get("act", -1), m.get("sl", [None, None]), m.get("step", "")
            self.x, self.boots = m.get("x", 0), m.get("boots", 0)

    def save(self):
        self._file.write(cbor.dumps({"act": self.act, "sl": self.sl, "step": self.step, "x": self.x,
                                     "boots": self.boots}))

    def slot_dir(self, i):
        return "%s/slot%d" % (self.dir, i)

    def running(self):
        """(slot, [seq, hash]) of the version this boot runs: the trial slot, else act (-1, None)."""
        i = self.x if self.step == "trial" else self.act
        return i, (self.sl[i] if i >= 0 else None)


def running_sw(device_dir):
    """(seq, 4 bytes of the release hash) of the code running now, for the manifest's `sw`."""
    i, held = Journal(device_dir).running()
    if held is None:
        return 0, b"\x00\x00\x00\x00"
    return held[0], bytes(held[1][:4])


# -- staging (the running version's fetcher calls it) -----------------------------------------

class Installer:
    """The board's installer for agent/ota/fetch.py. restart(): reset the board (machine.reset)."""

    limit = SLOT_LIMIT

    def __init__(self, device_dir, restart, log=None):
        self.device_dir = device_dir
        self.restart = restart
        self.log = log or (lambda text: None)

    def install(self, doc, release_cose, part_path):
        from agent.ota.part import Refused

        if doc.get("comp") != "agent":
            raise Refused("wrong_class", "a board takes agent bundles, not %r" % doc.get("comp"))
        j = Journal(self.device_dir)
        x = 1 - j.act if j.act >= 0 else 0
        j.step, j.x, j.sl[x] = "staging", x, None
        j.save()
        rmtree(j.slot_dir(x))
        try:
            unpack_into(part_path, j.slot_dir(x), doc.get("size"))
        except Exception:
            rmtree(j.slot_dir(x))
            j.step = ""
            j.save()
            raise
        j.step, j.sl[x], j.boots = "staged", [doc["seq"], bytes(_digest(release_cose))], 0
        j.save()
        self.log("update %d staged in slot %d: restarting into it" % (doc["seq"], x))
        self.restart()

    def trial(self):
        j = Journal(self.device_dir)
        if j.step != "trial" or j.sl[j.x] is None:
            return None
        return j.sl[j.x][0], bytes(j.sl[j.x][1])

    def confirm(self):
        j = Journal(self.device_dir)
        if j.step == "trial":
            j.act, j.step, j.boots = j.x, "", 0
            j.save()


def _digest(data):
    import hashlib

    return hashlib.sha256(bytes(data)).digest()


UNPACK_CHUNK = 512  # bytes per read while unpacking: a running board's heap has no 4 KB in one piece


def unpack_into(part_path, dest, limit=None):
    """Unpack the bundle in part_path under dest (agent/ota/bundle.py: one small buffer at a time)."""
    from agent.ota import bundle

    mkdirs(dest)

    def open_file(path):
        full = dest + "/" + path
        mkdirs(full[:full.rfind("/")])
        return open(full, "wb")

    with open(part_path, "rb") as f:
        return bundle.unpack(f.read, open_file, limit, UNPACK_CHUNK)


# -- the fetcher of a board ----------------------------------------------------------------------

def open_fetcher(device_dir, ca_der, config, key, restart, log=None):
    """agent/ota/fetch.py's Fetcher for this board: trust from its CA (DER) and release_keys,
    this Installer, the running version from the journal."""
    from agent.ota.fetch import Fetcher
    from agent.ota.trust import open_trust

    j = Journal(device_dir)
    i, held = j.running()
    running = (held[0], bytes(held[1])) if held is not None else (0, b"")
    return Fetcher(device_dir, config["device_id"], config["district"], key, open_trust(device_dir, ca_der),
                   Installer(device_dir, restart, log), running=running,
                   prefix=config.get("topic_prefix", "civicmote/v1"), log=log,
                   retry_s=config.get("ota_retry_s", 10))


# -- files ----------------------------------------------------------------------------------------

def mkdirs(path):
    part = ""
    for piece in path.split("/"):
        if not piece:
            part = "/" if not part else part
            continue
        part = part + piece if part.endswith("/") else (part + "/" + piece if part else piece)
        try:
            os.mkdir(part)
        except OSError:
            pass


def rmtree(path):
    try:
        entries = list(os.ilistdir(path)) if hasattr(os, "ilistdir") else [(n, 0) for n in os.listdir(path)]
    except OSError:
        return
    for e in entries:
        full = path + "/" + e[0]
        if _isdir(full, e):
            rmtree(full)
        else:
            try:
                os.remove(full)
            except OSError:
                pass
    try:
        os.rmdir(path)
    except OSError:
        pass


def _isdir(full, entry):
    if len(entry) > 1 and entry[1]:
        return entry[1] == 0x4000
    try:
        return os.stat(full)[0] & 0x4000 != 0
    except OSError:
        return False
