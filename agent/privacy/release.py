"""The only way a personal metric leaves the device: charge the ledger, add exact noise to the
window's clamped aggregate, suppress small counts, and wipe the window state.

Released statistics (the value of `m[metric]` in a summary; ints, strings, lists, null):
    count      {"n": 37}
    sum        {"sum": 412}
    mean       {"n": 37, "sum": 412, "mean": "11.14"}   mean = noisy sum / noisy count,
                                                          clamped to [lo, hi], two decimals
    histogram  {"h": [12, null, 7]}                      null: that bucket fell below k
    distinct   {"n": 120} (+ "saturated": true when the bitmap was full: n is a lower bound)
    any        {"suppressed": true}                       the noisy count fell below k
    any        {"withheld": "budget"}                     the day's budget per person is spent
               {"withheld": "ledger"}                     the ledger failed closed
Suppression looks only at the noisy count (post-processing), never at the true one, which
would leak whether the true count crossed k.
"""
from agent.core import rational
from agent.privacy import distinct
from agent.privacy.sampler import RandomBits, discrete_laplace


def release(policy, acc, rng):
    """Noise `acc` (from contributions.open_window(policy, ...)) under `policy`; wipe it.

    Pure: no budget check here, see release_window. rng(n) -> n random bytes.
    """
    try:
        return _release(policy, acc, RandomBits(rng))
    finally:
        acc.wipe()


PERSON = "person"  # the ledger's one budget: epsilon spent on any one person today


def window_cost(policies):
    """Epsilon one person can cost a window that releases these policies: the sum of their
    epsilons (a person seen by the motion sensor and the Bluetooth scanner is one person)."""
    total = (0, 1)
    for p in policies:
        total = rational.add(total, p.epsilon)
    return total


def release_window(metrics, ledger, now, rng, daily_epsilon):
    """Release every personal metric of a closed window, charging the ledger first.

    metrics: dict name -> (policy, acc). One person may be in every metric at once, so the
    ledger is charged the window's combined cost against the device's one budget per person
    per day (daily_epsilon, a rational), in one durable write before any noise is drawn. If the
    charge is refused, every metric of the window is withheld with the ledger's reason. Returns
    a dict name -> released statistics. Every accumulator is wiped, released or not.
    """
    try:
        names = sorted(metrics)
        cost = window_cost([metrics[name][0] for name in names])
        refused = ledger.charge([(PERSON, cost, daily_epsilon)], now) if names else {}
        out = {}
        bits = RandomBits(rng)
        for name in names:
            policy, acc = metrics[name]
            if PERSON in refused:
                out[name] = {"withheld": refused[PERSON]}
            else:
                out[name] = _release(policy, acc, bits)
        return out
    finally:
        for name in metrics:
            metrics[name][1].wipe()


def _release(policy, acc, bits):
    scales = policy.scales()
    mech = policy.mechanism
    if mech == "count":
        n = acc.n + _noise(bits, scales["n"])
        return _count_or_suppressed(n, policy.k)
    if mech == "sum":
        return {"sum": acc.total + _noise(bits, scales["sum"])}
    if mech == "mean":
        s = acc.total + _noise(bits, scales["sum"])
        n = acc.n + _noise(bits, scales["n"])
        if n < policy.k:
            return {"suppressed": True}
        return {"n": n, "sum": s, "mean": mean_text(s, n, policy.lo, policy.hi)}
    if mech == "histogram":
        h = []
        for c in acc.counts:
            c += _noise(bits, scales["n"])
            h.append(c if c >= policy.k else None)
        return {"h": h}
    if mech == "distinct":
        occupied = acc.occupied() + _noise(bits, scales["n"])
        est, saturated = distinct.estimate(occupied, acc.bits)
        if est < policy.k:
            return {"suppressed": True}
        if saturated:
            return {"n": est, "saturated": True}
        return {"n": est}
    raise ValueError("unknown mechanism %r" % mech)


def _noise(bits, scale):
    return discrete_laplace(bits, scale[1], scale[0])


def _count_or_suppressed(n, k):
    if n < k:
        return {"suppressed": True}
    return {"n": n}


def mean_text(s, n, lo, hi, places=2):
    """s / n (n > 0) rounded half up to `places` decimals, clamped to [lo, hi], as a string."""
    scale = 10 ** places
    num = s * scale
    q = (2 * num + n) // (2 * n)
    q = max(lo * scale, min(hi * scale, q))
    sign = "-" if q < 0 else ""
    q = -q if q < 0 else q
    frac = "%d" % (q % scale)
    return "%s%d.%s" % (sign, q // scale, "0" * (places - len(frac)) + frac)
