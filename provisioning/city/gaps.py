"""A device's outstanding gaps, computed from what the store holds, whatever the arrival order (CPython only).

The collector reports gaps as events when a summary reveals them (provisional: a summary still on
its way, or given to another collector of a shared subscription, is accepted later, `late`).
This is the settled view, the same for one collector or N, in any order and across restarts:

    outstanding([(seq, boot, gap), ...]) -> [{"first", "last", "count", "cause"}] ascending

from every stored summary of one device: its seq, its `h.boot` (or None) and its `gap`
announcement [count, first, last] (or None). A seq not stored is
- dropped-on-device when a stored summary announced a range holding it;
- skipped-at-reboot when a stored summary with boot b > seq exists and nothing between seq and b
  is stored (the numbers reserved before that reboot were never used);
- missing when it lies between the lowest and highest stored seqs and is neither.
Seqs before the first stored one are not reported unless the device announced them. `count` is
the number of seqs in the range (a device merging drop runs may have announced a wider range).
"""
import bisect

DROPPED = "dropped-on-device"
SKIPPED = "skipped-at-reboot"
MISSING = "missing"


def outstanding(marks):
    """Ranges, not seq by seq: a hostile announcement of 2**60 seqs costs what one of 2 does."""
    seqs = sorted(set(m[0] for m in marks))
    if not seqs:
        return []
    held = _merge([(s, s) for s in seqs])
    announced = [(g[1], g[2]) for _, _, g in marks if g and g[1] <= g[2]]
    dropped = _minus(_merge(announced), held)
    reboots = []
    for seq, boot, _ in marks:
        if boot is None or boot > seq:
            continue  # no reboot said (a boot after its own seq is not one: the schema refuses it)
        j = bisect.bisect_left(seqs, boot)
        if j:  # the highest seq held below this boot, then the numbers never used up to it
            reboots.append((seqs[j - 1] + 1, boot - 1))
    skipped = _minus(_minus(_merge([r for r in reboots if r[0] <= r[1]]), held), dropped)
    missing = _minus(_minus(_minus([(seqs[0], seqs[-1])], held), dropped), skipped)
    out = [{"first": a, "last": b, "count": b - a + 1, "cause": cause}
           for cause, segs in ((DROPPED, dropped), (SKIPPED, skipped), (MISSING, missing)) for a, b in segs]
    return sorted(out, key=lambda g: g["first"])


def _merge(segs):
    """Sorted, disjoint, non-adjacent segments covering the same seqs."""
    out = []
    for a, b in sorted(segs):
        if out and a <= out[-1][1] + 1:
            out[-1] = (out[-1][0], max(out[-1][1], b))
        else:
            out.append((a, b))
    return out


def _minus(segs, cuts):
    """segs less cuts (both sorted and disjoint)."""
    out = []
    j = 0
    for a, b in segs:
        while j < len(cuts) and cuts[j][1] < a:
            j += 1
        k = j
        while a <= b and k < len(cuts) and cuts[k][0] <= b:
            if cuts[k][0] > a:
                out.append((a, cuts[k][0] - 1))
            a = max(a, cuts[k][1] + 1)
            k += 1
        if a <= b:
            out.append((a, b))
    return out


def uncovered(announced, lo, hi):
    """[(first, last)] of [lo, hi] that no announced drop (first, last, count) covers, ascending."""
    segments = [(lo, hi)]
    for a, b, _ in announced:
        cut = []
        for x, y in segments:
            if b < x or a > y:
                cut.append((x, y))
                continue
            if x < a:
                cut.append((x, a - 1))
            if b < y:
                cut.append((b + 1, y))
        segments = cut
    return sorted(segments)


def holes(announced, lo, hi, boot):
    """[(first, last, cause)] of [lo, hi] not covered by an announced drop, split at boot: below it
    skipped-at-reboot, from it on missing (the collector's provisional gap events)."""
    out = []
    for x, y in uncovered(announced, lo, hi):
        if boot is not None and x < boot:
            out.append((x, min(y, boot - 1), SKIPPED))
            x = boot
        if x <= y:
            out.append((x, y, MISSING))
    return out
