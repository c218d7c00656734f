"""What the device last attested, kept in place (a two-slot file, agent/store/slots.py).

    last_seq    the seq of the last summary queued: a floor for numbering should `seq` be lost
    last_t1     the end of the last summary's window: no later summary starts before it, even
                across restarts with a clock that went back
    ledger_gen  the privacy ledger's generation after that window's charge: a ledger found
                older than this was restored from an old copy, and fails closed
    avoid       (lo, hi): time labelled on a wall clock later found wrong, that no later window
                may cover (agent.runtime.agent), or None. Files from before it hold 24 bytes.

Written once per closed window, after the summary is in the outbox.
"""
import struct

from agent.store.slots import SlotFile

SLOT = 64  # bytes per slot of the file
_FMT = ">QQQ"
_AVOID = ">QQ"


class Progress:
    def __init__(self, path):
        self._file = SlotFile(path, SLOT)
        raw = self._file.read()
        self.found = raw is not None and len(raw) in (24, 40)  # False: missing or unreadable
        self.last_seq, self.last_t1, self.ledger_gen = struct.unpack(_FMT, raw[:24]) if self.found else (0, 0, 0)
        lo, hi = struct.unpack(_AVOID, raw[24:]) if self.found and len(raw) == 40 else (0, 0)
        self.avoid = (lo, hi) if hi > lo else None
        self.write_errors = 0

    def save(self, last_seq, last_t1, ledger_gen, avoid=None):
        """Record a closed window; False (and counted) if the write failed."""
        self.last_seq, self.last_t1, self.ledger_gen, self.avoid = last_seq, last_t1, ledger_gen, avoid
        try:
            self._file.write(struct.pack(_FMT, last_seq, last_t1, ledger_gen) + struct.pack(
                _AVOID, *(avoid or (0, 0))))
            return True
        except OSError:
            self.write_errors += 1
            return False
