"""The cap on concurrent downloads: which devices the block server answers now (CPython only).

    cap = DownloadCap(limit=20, idle_s=60)
    if cap.admit(dev, now): answer its block request      # else stay silent: it asks again in 10 s
    cap.finished(dev)                                      # it reported verifying, trial, refused...

A device holds a download slot from its first block request answered until it reports that its
download ended (a status other than queued/downloading) or it has asked for nothing for `idle_s`
seconds (powered off, or gave up). A device over the cap gets no answer: by the delivery rules
it re-requests after 10 s, so it waits its turn without any new message (after 32 unanswered
requests it reports `stalled` and backs off; the cap should keep that rare: size it to the
district). `peak` is the most slots ever held at once.
"""
DOWNLOADING = ("queued", "downloading")


class DownloadCap:
    def __init__(self, limit, idle_s=60.0):
        self.limit = int(limit)
        self.idle_s = float(idle_s)
        self.active = {}  # dev -> monotonic s of its last block request answered
        self.peak = 0
        self.refused = 0  # block requests left unanswered because of the cap

    def admit(self, dev, now):
        """True if dev may be answered now (it holds, or just got, a slot)."""
        for d, last in list(self.active.items()):
            if now - last > self.idle_s:
                del self.active[d]
        if dev in self.active or len(self.active) < self.limit:
            self.active[dev] = now
            self.peak = max(self.peak, len(self.active))
            return True
        self.refused += 1
        return False

    def status(self, dev, state):
        """A device's status arrived: a download that ended frees its slot."""
        if state not in DOWNLOADING:
            self.active.pop(dev, None)
