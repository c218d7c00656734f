"""Small charts as inline SVG, drawn on the server: no script, no font, nothing fetched (CPython only).

A line chart for an environmental metric (its headline statistic as a line, the lowest to
highest of each window as a shaded band, broken where windows are missing) and a bar chart for
a personal metric (one bar per released window; a suppressed or withheld window is a short grey
mark, so the absence is visible rather than drawn as zero). Each chart carries a <title> that
says in words what it shows, for screen readers and for anyone who cannot read a chart.
"""
import math
from xml.sax.saxutils import escape, quoteattr

W, H = 320, 132
LEFT, RIGHT, TOP, BOTTOM = 44, 8, 10, 22
LINE, BAND, BAR, MUTED, GRID = "#0b5cad", "#cfe0f5", "#2f7d32", "#9e9e9e", "#e3e3e3"


class Point:
    """One window: start, end (Unix s), value (number or None), lo/hi (numbers or None), note."""

    __slots__ = ("start", "end", "value", "lo", "hi", "note")

    def __init__(self, start, end, value, lo=None, hi=None, note=""):
        self.start, self.end, self.value, self.lo, self.hi, self.note = start, end, value, lo, hi, note


def _x(t, t_from, t_to):
    return LEFT + (W - LEFT - RIGHT) * (t - t_from) / max(1, t_to - t_from)


def _scale(values, zero=False):
    """(lo, hi) of the y axis: round numbers around the values, so the three labels read easily."""
    nums = [float(v) for v in values if v is not None]
    if not nums:
        return 0.0, 1.0
    lo, hi = min(nums), max(nums)
    if zero:
        lo = min(0.0, lo)
    if hi - lo < 1e-9:
        lo, hi = lo - 1, hi + 1
    step = _nice((hi - lo) / 2)
    return math.floor(lo / step) * step, math.ceil(hi / step) * step


def _nice(x):
    """The smallest of 1, 2, 2.5, 5 times a power of ten that is >= x."""
    power = 10 ** math.floor(math.log10(x))
    for m in (1, 2, 2.5, 5, 10):
        if m * power >= x - 1e-12:
            return m * power
    return 10 * power


def _y(v, lo, hi):
    return TOP + (H - TOP - BOTTOM) * (1 - (float(v) - lo) / (hi - lo))


def _frame(parts, t_from, t_to, lo, hi, fmt, ticks):
    for frac in (0.0, 0.5, 1.0):
        v = lo + (hi - lo) * frac
        y = _y(v, lo, hi)
        parts.append('<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="%s"/>' % (LEFT, y, W - RIGHT, y, GRID))
        parts.append('<text x="%d" y="%.1f" text-anchor="end" font-size="10">%s</text>' % (LEFT - 4, y + 3.5,
                                                                                          escape(fmt(v))))
    for t, label in ticks:
        if t_from <= t <= t_to:
            x = _x(t, t_from, t_to)
            parts.append('<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="%s"/>' % (x, TOP, x, H - BOTTOM, GRID))
            parts.append('<text x="%.1f" y="%d" text-anchor="middle" font-size="10">%s</text>'
                         % (x, H - BOTTOM + 14, escape(label)))


def _svg(parts, title, css_class):
    return ('<svg class=%s viewBox="0 0 %d %d" role="img" xmlns="http://www.w3.org/2000/svg"><title>%s</title>%s</svg>'
            % (quoteattr(css_class), W, H, escape(title), "".join(parts)))


def line_chart(points, t_from, t_to, fmt, ticks, title):
    """SVG text. points: [Point] ascending; fmt(number) -> label; ticks: [(t, label)] on the time axis."""
    lo, hi = _scale([v for p in points for v in (p.value, p.lo, p.hi)])
    parts = []
    _frame(parts, t_from, t_to, lo, hi, fmt, ticks)
    for run in _runs(points):
        banded = [p for p in run if p.lo is not None and p.hi is not None]
        if len(banded) == len(run) and run:
            top = ["%.1f,%.1f" % (_x((p.start + p.end) / 2, t_from, t_to), _y(p.hi, lo, hi)) for p in run]
            bottom = ["%.1f,%.1f" % (_x((p.start + p.end) / 2, t_from, t_to), _y(p.lo, lo, hi)) for p in run]
            if len(run) == 1:
                x = _x((run[0].start + run[0].end) / 2, t_from, t_to)
                parts.append('<rect x="%.1f" y="%.1f" width="3" height="%.1f" fill="%s"/>' % (
                    x - 1.5, _y(run[0].hi, lo, hi), _y(run[0].lo, lo, hi) - _y(run[0].hi, lo, hi), BAND))
            else:
                parts.append('<polygon class="band" points="%s" fill="%s"/>' % (" ".join(top + bottom[::-1]), BAND))
        pts = ["%.1f,%.1f" % (_x((p.start + p.end) / 2, t_from, t_to), _y(p.value, lo, hi)) for p in run]
        parts.append('<polyline class="line" points="%s" fill="none" stroke="%s" stroke-width="2" '
                     'stroke-linejoin="round"/>' % (" ".join(pts), LINE))
    last = [p for p in points if p.value is not None]
    if last:
        p = last[-1]
        parts.append('<circle class="last" cx="%.1f" cy="%.1f" r="3.5" fill="%s"/>' % (
            _x((p.start + p.end) / 2, t_from, t_to), _y(p.value, lo, hi), LINE))
    return _svg(parts, title, "chart line-chart")


def bar_chart(points, t_from, t_to, fmt, ticks, title):
    """SVG text of one bar per window; a point with value None is drawn as a grey mark (its note)."""
    lo, hi = _scale([p.value for p in points] + [0], zero=True)
    parts = []
    _frame(parts, t_from, t_to, lo, hi, fmt, ticks)
    base = _y(0, lo, hi)
    for p in points:
        x0, x1 = _x(max(p.start, t_from), t_from, t_to), _x(min(p.end, t_to), t_from, t_to)
        width = max(1.5, x1 - x0 - 1)
        if p.value is None:
            parts.append('<rect class="missing" x="%.1f" y="%.1f" width="%.1f" height="3" fill="%s"><title>%s</title>'
                         '</rect>' % (x0 + 0.5, base - 3, width, MUTED, escape(p.note)))
        else:
            y = _y(p.value, lo, hi)
            parts.append('<rect class="bar" x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"/>' % (
                x0 + 0.5, y, width, max(0.5, base - y), BAR))
    return _svg(parts, title, "chart bar-chart")


def _runs(points):
    """Consecutive points with values, split where a value is missing or windows do not touch."""
    runs, cur, prev = [], [], None
    for p in points:
        if p.value is None or (prev is not None and p.start - prev.end > (prev.end - prev.start) // 2):
            if cur:
                runs.append(cur)
            cur = []
        if p.value is not None:
            cur.append(p)
        prev = p
    if cur:
        runs.append(cur)
    return runs
