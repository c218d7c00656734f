"""What the outbox dropped and the city has not yet been told: up to MAX_RUNS seq runs.

A run is [first seq, last seq, count]. When more than MAX_RUNS accumulate, the oldest two are
merged: the count stays exact, the range widens. Stored in the outbox index beside the head
seq, as `head(8) | (first(8) last(8) count(4))*`, big-endian.
"""
import struct

from agent.errors import DecodeError

MAX_RUNS = 8
_RUN = ">QQI"
_RUN_SIZE = 20


class DropRuns:
    def __init__(self, runs=None):
        self.runs = runs or []  # [[first, last, count]] ascending by first

    def add(self, first, last, count):
        """Record a run; False if it was recorded before (a drop found again after a restart)."""
        for r in self.runs:
            if r[0] <= first and last <= r[1]:
                return False
        self.runs.append([first, last, count])
        self.runs.sort()
        while len(self.runs) > MAX_RUNS:
            a = self.runs.pop(0)
            b = self.runs[0]
            self.runs[0] = [a[0], max(a[1], b[1]), a[2] + b[2]]
        return True

    def report(self):
        """(count, first_seq, last_seq) of every pending drop, or None."""
        if not self.runs:
            return None
        count, last = 0, 0
        for r in self.runs:
            count += r[2]
            last = max(last, r[1])
        return (count, self.runs[0][0], last)

    def clear(self, upto):
        """Forget the runs that end at or below seq `upto` (announced and delivered); True if any."""
        keep = [r for r in self.runs if r[1] > upto]
        changed = len(keep) != len(self.runs)
        self.runs = keep
        return changed

    def encode(self, head_seq):
        buf = bytearray(struct.pack(">Q", head_seq))
        for r in self.runs:
            buf += struct.pack(_RUN, r[0], r[1], r[2])
        return bytes(buf)


def decode(raw):
    """(head_seq, DropRuns) of an index payload; DecodeError if it is malformed."""
    if len(raw) < 8 or (len(raw) - 8) % _RUN_SIZE:
        raise DecodeError("outbox index: %d bytes is not 8 + a whole number of runs" % len(raw))
    return struct.unpack(">Q", raw[:8])[0], DropRuns(legacy_runs(raw))


def legacy_runs(raw):
    """The runs after an 8-byte head in an index, or in the `dropped` file of the old outbox."""
    runs = []
    for i in range(8, len(raw) - _RUN_SIZE + 1, _RUN_SIZE):
        runs.append(list(struct.unpack(_RUN, raw[i:i + _RUN_SIZE])))
    runs.sort()
    return runs
