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
    any        {"withheld": "budget"}                     the day's epsilon is spent
               {"withheld": "ledger"}                     the ledger failed closed
Suppression looks only at the noisy count (post-processing), never at the true one, which
would leak whether the true count crossed k.
"""
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


def release_window(metrics, ledger, now, rng):
    """Release every personal metric of a closed window, charging the ledger first.

    metrics: dict name -> (policy, acc). The ledger is charged for all metrics in one durable
    write before any noise is drawn; a metric whose charge is refused is withheld. Returns a
    dict name -> released statistics. Every accumulator is wiped, released or not.
    """
    try:
        requests = [(name, metrics[name][0].epsilon, metrics[name][0].daily_epsilon)
                    for name in sorted(metrics)]
        refused = ledger.charge(requests, now)
        out = {}
        bits = RandomBits(rng)
        for name in sorted(metrics):
            policy, acc = metrics[name]
            if name in refused:
                out[name] = {"withheld": refused[name]}
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
