"""Per-window state of every metric of a board, and what each releases when the window closes.

Each metric is released at the end of its own window (its profile's "window", a multiple of
the board's window_s; by default the board's window), so a summary carries only the metrics
whose window closed with it. Environmental metrics keep exact integer statistics
(agent.core.window) in the resolution their profile declares; personal metrics keep only a clamped aggregate or a salted distinct
counter (agent.privacy), and leave the device only through release_window, which charges the
privacy ledger the window's combined cost for one person (every personal metric closing now,
since one person can be in all of them) and adds exact noise. Nothing here keeps a raw reading.
"""
from agent.core.window import Window, quantize
from agent.privacy.contributions import open_window
from agent.privacy.release import release_window


class MetricSet:
    def __init__(self, board, rng):
        self.rng = rng
        self.env = {}  # name -> (Window, resolution, stats)
        self.policies = board.dp  # name -> DPPolicy
        self.daily_epsilon = board.daily_epsilon  # one budget per person per day, all metrics
        self.windows = {}  # name -> release period in seconds
        for name in board.metrics:
            self.windows[name] = board.metric_window(name)
        for name in board.environmental_metrics():
            res, stats = board.env_spec(name)
            self.env[name] = (Window(leq="leq" in stats), res, stats)
        self.personal = {}
        for name in self.policies:
            self._open_personal(name)
        self.rejected = 0  # readings of a metric the board does not declare, or of a bad type
        # Readings cut to what one reading may contribute (a driver fault), since the start:
        # added when their window closes, so the health counter shows at most which window.
        self.clamped = 0

    def _open_personal(self, name):
        # A fresh accumulator, and for distinct counts a fresh salt, for every window.
        self.personal[name] = (self.policies[name], open_window(self.policies[name], self.rng))

    def feed(self, metric, value):
        """One reading of a metric (in its unit)."""
        e = self.env.get(metric)
        if e is not None:
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                e[0].add(quantize(value, e[1]))
            else:
                self.rejected += 1
            return
        p = self.personal.get(metric)
        if p is not None and not isinstance(value, (bytes, bytearray)):
            p[1].add(value)
        else:
            self.rejected += 1

    def identifier(self, metric, ident):
        """One identifier (e.g. a BLE address) for a distinct-count metric; it is hashed at once."""
        p = self.personal.get(metric)
        if p is not None and p[0].mechanism == "distinct":
            p[1].add(ident)
        else:
            self.rejected += 1

    def due(self, t1):
        """Names of the metrics whose window ends at t1 (Unix seconds)."""
        return [name for name in self.windows if t1 % self.windows[name] == 0]

    def discard(self):
        """Forget every reading so far (a window opens: nothing from before may be in it)."""
        for name in self.env:
            self.env[name][0].reset()
        for name in self.personal:
            self.personal[name][1].wipe()
            self._open_personal(name)

    def close(self, ledger, now_s, t1, every=False):
        """Release the metrics whose window ends at t1 (every metric if `every`: a window cut
        short by a clock step), and start their next window.

        Returns {metric: released statistics}: environmental as the listed statistics in order
        (null for an empty window), personal as the privacy engine released them.
        """
        out = {}
        due = list(self.windows) if every else self.due(t1)
        closing = {}
        for name in due:
            if name in self.env:
                w, res, stats = self.env[name]
                out[name] = w.stats(stats)
                w.reset()
            elif name in self.personal:
                closing[name] = self.personal[name]
                self.clamped += getattr(self.personal[name][1], "clamped", 0)
        if closing:
            released = release_window(closing, ledger, now_s, self.rng, self.daily_epsilon)
            for name in released:
                out[name] = released[name]
            for name in closing:
                self._open_personal(name)
        return out
