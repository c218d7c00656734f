"""What the device last attested, kept in place (a two-slot file, agent/store/slots.py).

    last_seq    the seq of the last summary queued: a floor for numbering should `seq` be lost
    last_t1     the end of the last summary's window: no later summary starts before it, even
                across restarts with a clock that went back
    ledger_gen  the privacy ledger's generation after that window's charge: a ledger found
                older than this was restored from an old copy, and fails closed

Written once per closed window, after the summary is in the outbox.
"""
import struct

from agent.store.slots import SlotFile

_FMT = ">QQQ"


class Progress:
    def __init__(self, path):
        self._file = SlotFile(path, 64)
        raw = self._file.read()
        self.found = raw is not None and len(raw) == 24  # False: missing or unreadable
        self.last_seq, self.last_t1, self.ledger_gen = struct.unpack(_FMT, raw) if self.found else (0, 0, 0)
        self.write_errors = 0

    def save(self, last_seq, last_t1, ledger_gen):
        """Record a closed window; False (and counted) if the write failed."""
        self.last_seq, self.last_t1, self.ledger_gen = last_seq, last_t1, ledger_gen
        try:
            self._file.write(struct.pack(_FMT, last_seq, last_t1, ledger_gen))
            return True
        except OSError:
            self.write_errors += 1
            return False
