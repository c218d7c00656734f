"""Person-level privacy audit through the agent's own path (issue 11).

Neighbouring datasets differ by one whole person: an hour of the emulated street with and
without them. Both hours run once through the real sensor path (emulated PIR and Bluetooth
radio, the real drivers with the board's refractory time, a real MetricSet); then the closed
window is released many times (fresh salts, fresh noise: MetricSet.close -> release_window).
An output is the pair (footfall, presence) as published, "suppressed" included.

The audit, in the style of StatDP (Ding et al. 2018): on a search sample, pick the output event
E (a corner {footfall >= a, presence >= b} or {footfall <= a, presence <= b}, in either order
of the neighbours) that looks most distinguishing; on a fresh sample, bound P(M(D) in E) from
below and P(M(D') in E) from above (Chernoff-Hoeffding, level ALPHA each), so

    eps_low = ln(P_low / P_high)

is a lower confidence bound on the mechanism's true privacy loss. It must stay within the
declared per-person epsilon of the window (footfall's plus presence's: one person is in both)
for the person within the declared assumptions (repeated passes, lingering the whole hour,
a phone rotating its address every 15 minutes), and must exceed it for a mechanism whose
noise is halved, and for a phone that rotates faster than the manifest assumes.

The board is the sim board with the shipped per-person bounds (2 events; rotation 15 min,
so 5 addresses an hour) and epsilon 1/2 per metric instead of the shipped 3/100 and 2/25:
the bounds and the code path are what is audited, and at epsilon 1 per window the test needs
thousands of releases rather than millions. A correct mechanism fails this file with
probability below 1e-6 (ALPHA per bound, 2 bounds per check, 3 checks that must pass). The
two checks that must flag have wide margins: measured bounds 1.48 to 1.69 (half the noise, true
loss 2) and 1.83 to 2.03 (the fast phone, true loss 2.6) against the declared 1, while the
correct mechanism measured 0.64 to 0.77.
"""
import bisect
import math
import os

from agent.emulators.people import Person
from agent.emulators.street import Street
from agent.privacy.release import PERSON
from street_hour import T0, HOUR, MemoryLedger, people_board, replay, run_hour

ALPHA = 1e-7
N_SEARCH = 2000
N_TEST = 5000
EPS = {"footfall": "1/2", "presence": "1/2"}
DECLARED = 1.0  # per window for one person: 1/2 + 1/2


def board():
    return people_board(footfall={"epsilon": EPS["footfall"]}, presence={"epsilon": EPS["presence"]})


# -- the neighbouring hours -------------------------------------------------------------------

def hours(b, person, seed=21):
    """(fed window without the person, fed window with them): the same street otherwise."""
    base = Street(seed, rate_per_h=30)
    plus = Street(seed, rate_per_h=30)
    plus.people.add(person)
    return run_hour(b, base, os.urandom).fed, run_hour(b, plus, os.urandom).fed


def repeated_passes():
    # walks past twice in the hour, phone heard on each pass (2 events, 2 addresses)
    return Person(900001, passes=[T0 + 700, T0 + 2500], phone=(900001, 900, 311))


def lingering():
    # stands still all hour (arrives and leaves in view: 2 events); phone rotating every
    # 15 minutes, out of step with the window: 5 addresses, the most the manifest allows
    return Person(900002, stay=(T0 + 30, T0 + HOUR - 30), phone=(900002, 900, 450))


def rotating_phone():
    # passes once, comes back and sits nearby past the end of the hour (2 events in the
    # window), with a phone rotating every 15 minutes
    return Person(900003, passes=[T0 + 100], stay=(T0 + 1200, T0 + HOUR + 600), phone=(900003, 900, 700))


def fast_phone():
    # outside the assumption: the phone changes its address every 3 minutes (21 addresses)
    return Person(900004, stay=(T0 + 30, T0 + HOUR - 30), phone=(900004, 180, 90))


# -- releases and the audit -------------------------------------------------------------------

def sampler(b, fed):
    def run():
        out = replay(b, fed, os.urandom).close(MemoryLedger(), T0 + HOUR, T0 + HOUR)
        return out["footfall"].get("n", -1), out["presence"].get("n", -1)  # -1: suppressed
    return run


def kl(q, p):
    def term(a, b):
        return 0.0 if a == 0 else a * math.log(a / b)
    return term(q, p) + term(1 - q, 1 - p)


def lower(c, n, alpha=ALPHA):
    """Chernoff-Hoeffding lower confidence bound on a binomial p from c successes in n."""
    q = c / n
    if q == 0:
        return 0.0
    lo, hi = 0.0, q
    for _ in range(60):
        mid = (lo + hi) / 2
        if n * kl(q, mid) > math.log(1 / alpha):
            lo = mid
        else:
            hi = mid
    return hi


def upper(c, n, alpha=ALPHA):
    return 1.0 - lower(n - c, n, alpha)


def corner_counts(xs, fa, pc):
    """counts[i][j] of samples with f >= fa[i] and p >= pc[j] ("ge"), and with f <= fa[i] and
    p <= pc[j] ("le"), by 2-D cumulative sums over the grid (fa, pc sorted)."""
    na, nc = len(fa), len(pc)

    def cum(pick_a, pick_c, rev):
        cell = [[0] * (nc + 1) for _ in range(na + 1)]
        for x in xs:
            i, j = pick_a(x[0]), pick_c(x[1])
            cell[i][j] += 1
        rng_a = range(na - 1, -1, -1) if rev else range(na)
        rng_c = range(nc - 1, -1, -1) if rev else range(nc)
        out = [[0] * nc for _ in range(na)]
        step = 1 if rev else -1
        for i in rng_a:
            for j in rng_c:
                v = cell[i][j]
                if 0 <= i + step < na:
                    v += out[i + step][j]
                if 0 <= j + step < nc:
                    v += out[i][j + step]
                if 0 <= i + step < na and 0 <= j + step < nc:
                    v -= out[i + step][j + step]
                out[i][j] = v
        return out

    def ge_index(v, grid):
        # the largest i with grid[i] <= v, or len(grid) (no cell) when v < grid[0]
        i = bisect.bisect_right(grid, v) - 1
        return i if i >= 0 else len(grid)

    def le_index(v, grid):
        # the smallest i with grid[i] >= v, or len(grid) when v > grid[-1]
        return bisect.bisect_left(grid, v)

    ge = cum(lambda v: ge_index(v, fa), lambda v: ge_index(v, pc), True)
    le = cum(lambda v: le_index(v, fa), lambda v: le_index(v, pc), False)
    return ge, le


def eps_bound(c1, n1, c0, n0):
    p1, p0 = lower(c1, n1), upper(c0, n0)
    return math.log(p1 / p0) if p1 > 0 else float("-inf")


def best_event(s0, s1):
    """The corner event and order that give the largest bound on the search samples."""
    def grid(v):
        v = sorted(set(v))
        step = max(1, len(v) // 40)
        return v[::step]
    fa = grid([x[0] for x in s0 + s1])
    pc = grid([x[1] for x in s0 + s1])
    ge0, le0 = corner_counts(s0, fa, pc)
    ge1, le1 = corner_counts(s1, fa, pc)
    best = None
    for kind, c0s, c1s in (("ge", ge0, ge1), ("le", le0, le1)):
        for i in range(len(fa)):
            for j in range(len(pc)):
                for first in (True, False):
                    c1, c0 = (c1s[i][j], c0s[i][j]) if first else (c0s[i][j], c1s[i][j])
                    score = eps_bound(c1, len(s1), c0, len(s0))
                    if best is None or score > best[0]:
                        best = (score, (kind, fa[i], pc[j]), first)
    return best[1], best[2]


def hit(x, ev):
    if ev[0] == "ge":
        return x[0] >= ev[1] and x[1] >= ev[2]
    return x[0] <= ev[1] and x[1] <= ev[2]


def audit(b, fed_without, fed_with):
    """Lower confidence bound on the privacy loss between the two hours, and its event."""
    run0, run1 = sampler(b, fed_without), sampler(b, fed_with)
    s0 = [run0() for _ in range(N_SEARCH)]
    s1 = [run1() for _ in range(N_SEARCH)]
    ev, first = best_event(s0, s1)
    c0 = sum(1 for _ in range(N_TEST) if hit(run0(), ev))
    c1 = sum(1 for _ in range(N_TEST) if hit(run1(), ev))
    if first:
        return eps_bound(c1, N_TEST, c0, N_TEST), ev
    return eps_bound(c0, N_TEST, c1, N_TEST), ev


class HalfNoise:
    """A broken policy: claims its epsilon but its noise scales are half what that needs."""

    def __init__(self, policy):
        self._p = policy

    def __getattr__(self, name):
        return getattr(self._p, name)

    def scales(self):
        good = self._p.scales()
        return {k: (good[k][0], good[k][1] * 2) for k in good}


# -- the tests --------------------------------------------------------------------------------

def test_neighbours_differ_by_at_most_the_declared_bounds():
    # Deterministic: what the one person adds to the window state, through the real path.
    b = board()
    for person, foot, addrs in ((repeated_passes(), 2, 2), (lingering(), 2, 5), (rotating_phone(), 2, 4),
                                (fast_phone(), 2, 21)):
        without, with_ = hours(b, person)
        d_foot = sum(v for m, v in with_ if m == "footfall") - sum(v for m, v in without if m == "footfall")
        d_addr = len([1 for m, v in with_ if m == "presence"]) - len([1 for m, v in without if m == "presence"])
        assert (d_foot, d_addr) == (foot, addrs), (person.pid, d_foot, d_addr)
        assert d_foot <= b.dp["footfall"].sensitivity()
    assert b.dp["presence"].sensitivity() == 5


def test_one_person_within_the_assumptions_costs_at_most_the_declared_epsilon():
    b = board()
    for make in (repeated_passes, lingering, rotating_phone):
        eps, ev = audit(b, *hours(b, make()))
        assert eps <= DECLARED, "%s: empirical epsilon >= %.3f > declared %.2f (event %s)" % (
            make.__name__, eps, DECLARED, ev)


def test_the_audit_flags_half_the_noise():
    b = board()
    fed = hours(b, lingering())
    for name in b.dp:
        b.dp[name] = HalfNoise(b.dp[name])
    eps, ev = audit(b, *fed)
    assert eps > DECLARED, "half-noise mechanism not flagged: empirical epsilon >= %.3f (event %s)" % (eps, ev)


def test_a_phone_rotating_faster_than_assumed_is_not_covered():
    # What the manifest does not promise: 21 addresses instead of 5 cost more than declared.
    b = board()
    eps, ev = audit(b, *hours(b, fast_phone()))
    assert eps > DECLARED, "faster rotation not visible: empirical epsilon >= %.3f (event %s)" % (eps, ev)


def test_the_real_ledger_charges_the_window_once_for_one_person(tmp_path):
    from agent.privacy.ledger import PrivacyLedger

    b = board()
    without, _ = hours(b, repeated_passes())
    led = PrivacyLedger.create(str(tmp_path / "privacy.ledger"), T0)
    spy = MemoryLedger()

    class Both:
        def charge(self, requests, now):
            spy.charge(requests, now)
            return led.charge(requests, now)

    out = replay(b, without, os.urandom).close(Both(), T0 + HOUR, T0 + HOUR)
    assert sorted(out) == ["footfall", "presence"]
    assert spy.requests == [[(PERSON, (1, 1), b.daily_epsilon)]]  # 1/2 + 1/2, one key, the board's cap
    assert led.spent(PERSON, T0 + HOUR) == (1, 1)
