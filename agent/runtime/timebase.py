"""The time a device labels its windows with: the wall clock, judged against the monotonic clock.

Pure: the caller passes both clocks (wall Unix seconds, monotonic seconds), nothing here reads
one. The rule (docs/wire-format.md, "Time"):

- The first valid wall-clock reading is trusted (a board without an RTC that boots at
  2000-01-01 and then syncs: the synced time is its first valid reading).
- While the wall clock agrees with the last trusted time plus the monotonic time since
  (within TOLERANCE_S), it is trusted again at every reading, so slewing and drift follow it.
- A reading that disagrees is a *suspect step*: windows stay labelled on the extrapolated
  time (last trusted time + monotonic time since), and are flagged SUSPECT. The wall clock is
  believed once it has kept the same offset for STABLE_S of monotonic time, or at once when a
  second source confirms it (`confirm`), or at once when it comes back to the timebase it left
  at the last believed step (monotonic time since that step confirms the return).
- A step believed by stability alone flags the windows labelled on it STEPPED for FLAG_S of
  monotonic time, or until a second source confirms the clock.

So a glitch shorter than STABLE_S changes no label at all, and one that outlasts it and then
returns is undone the moment it returns.
"""

TOLERANCE_S = 5  # wall and extrapolated time disagreeing by more than this: a step
STABLE_S = 1800  # a stepped wall clock is believed after it kept its offset this long (monotonic s)
FLAG_S = 86400  # windows on a clock believed by stability alone are flagged this long
KEEP_S = 86400  # the timebase left at a believed step is remembered this long, to recognise a return

SUSPECT = 1  # labelled on extrapolated time: the wall clock disagreed and was not believed
STEPPED = 2  # labelled on a wall clock believed after a step, because it stayed stable (no second source)


class Timebase:
    """judge(wall_s, mono_s) -> (label_s, jump_s); confirm(true_s, mono_s); take_flags().

    jump_s is 0, or the seconds the label time moved because a step was believed at this
    reading (the caller cuts its open window there). `returned` is True when the step believed
    last undid the step before it (the wall clock came back). `steps` counts suspect steps."""

    def __init__(self, stable_s=STABLE_S, tolerance_s=TOLERANCE_S, flag_s=FLAG_S, keep_s=KEEP_S):
        self.stable_s = stable_s
        self.tol = tolerance_s
        self.flag_s = flag_s
        self.keep_s = keep_s
        self.base = None  # (wall s, mono s) of the last trusted reading
        self.prev = None  # (wall s, mono s) of the timebase left at the last believed step, and when
        self.prev_mono = None
        self.suspect = None  # (offset s, mono s since) of a wall clock that disagrees, not yet believed
        self.stepped_mono = None  # mono s when a step was believed by stability alone
        self.returned = False
        self.steps = 0
        self._flags = 0
        self._offset = 0  # the largest disagreement (wall - label) seen since take_flags()
        self._cur = (0, 0)  # flags and offset of the last reading, until commit()

    def _extrapolate(self, base, mono):
        return base[0] + (mono - base[1])

    def judge(self, wall, mono):
        """The label time for this instant, and the jump (see the class docstring). The flags of
        this reading count from commit() on: a window that closes at this instant ends before it."""
        self._cur = (0, 0)
        if self.base is None:
            self.base = (wall, mono)
            return wall, 0
        exp = self._extrapolate(self.base, mono)
        off = wall - exp
        if -self.tol <= off <= self.tol:
            self.base = (wall, mono)
            self.suspect = None
            self._note_stepped(mono)
            return wall, 0
        prev = self.prev
        if prev is not None and mono - self.prev_mono <= self.keep_s:
            back = wall - self._extrapolate(prev, mono)
            if -self.tol <= back <= self.tol:  # the wall clock came back to the timebase it left
                self._believe(wall, mono, exp, returned=True)
                self.stepped_mono = None
                return wall, off
        s = self.suspect
        if s is None or off - s[0] > self.tol or s[0] - off > self.tol:
            self.suspect = (off, mono)
            self.steps += 1
        elif mono - s[1] >= self.stable_s:
            self._believe(wall, mono, exp, returned=False)
            self.stepped_mono = mono  # flagged from the next reading: the window cut now was labelled before
            return wall, off
        self._cur = (SUSPECT, off)
        self._note_stepped(mono)
        return exp, 0

    def _believe(self, wall, mono, exp, returned):
        self.prev = (exp, mono)
        self.prev_mono = mono
        self.base = (wall, mono)
        self.suspect = None
        self.returned = returned

    def _note_stepped(self, mono):
        if self.stepped_mono is not None:
            if mono - self.stepped_mono < self.flag_s:
                self._cur = (self._cur[0] | STEPPED, self._cur[1])
            else:
                self.stepped_mono = None

    def confirm(self, true_s, mono):
        """A second source (e.g. the city's signed time in a receipt) says the time at monotonic
        `mono` is `true_s`: it becomes the trusted time at once, and a step it agrees with is no
        longer flagged. Returns the jump of the label time (0 when it agrees with the label)."""
        old = self._extrapolate(self.base, mono) if self.base is not None else true_s
        self.base = (true_s, mono)
        self.suspect = self.stepped_mono = None
        self.prev = self.prev_mono = None  # a return to a time base the second source contradicts is no return
        return true_s - old

    def label(self, mono):
        """The trusted time extrapolated to monotonic `mono`, or None before the first reading."""
        return None if self.base is None else self._extrapolate(self.base, mono)

    def reset(self):
        """The wall clock became invalid (reads before 2024): the next valid reading is trusted."""
        self.base = self.prev = self.prev_mono = self.suspect = self.stepped_mono = None

    def commit(self):
        """Count the last reading's flags in the window open now."""
        self._flags |= self._cur[0]
        if abs(self._cur[1]) > abs(self._offset):
            self._offset = self._cur[1]
        self._cur = (0, 0)

    def take_flags(self):
        """{health key: value} for the window that closes now, and start afresh for the next.
        clk: SUSPECT | STEPPED bits; clk_ahead / clk_behind: how far the wall clock read from
        the label time while it was suspect (seconds)."""
        out = {}
        if self._flags:
            out["clk"] = self._flags
        if self._offset > 0:
            out["clk_ahead"] = self._offset
        elif self._offset < 0:
            out["clk_behind"] = -self._offset
        self._flags = 0
        self._offset = 0
        return out
