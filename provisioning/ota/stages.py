"""A rollout's stages, and when to advance or halt: pure decisions over what devices reported (CPython only).

A rollout of one release in one district runs its plan stage by stage:
    canaries (named devices; skipped when none), then pct 5, 25, 100 (the default stages)
Stage k targets the canaries plus every active device of the district whose membership
(agent.ota.docs.member: SHA-256(device_id || salt) mod 100) is below its pct, so each stage holds
the last one's devices. What each targeted device's latest signed status says about this release:
    confirmed   it runs the release (status `confirmed` for it, or `sw` at or above its seq)
    failed      `rolled_back` or `refused` for it (any reason but `stopped`: a member was meant to take it)
    pending     anything else: queued, downloading, verifying, trial, a download a stop order
                (pause, halt) abandoned, or nothing heard yet
Devices whose failure the operator accepted by resuming a halted rollout (`forgiven`) count as
finished, not as failed. The rollout
    halts       when a canary failed, or when at least `min_done` targeted devices finished
                (confirmed or failed) and more than `threshold` % of those finished failed;
    advances    when every targeted device finished, to the next stage, or is done after the last.
A stage waits for devices that say nothing (`rollout status` lists them) for `stage_timeout`
seconds after it began, if set: then the ones still pending are passed over (neither confirmed
nor failed; the order still includes them, so they update when they come back).
"""
FINISHED = ("confirmed", "failed")
DEFAULT_STAGES = (5, 25, 100)


def plan(rollout):
    """The pct of each stage: 0 for the canaries' stage (when there are canaries), then the stages."""
    return ([0] if rollout["canaries"] else []) + list(rollout["stages"])


def targeted(rollout, devices, member, stage=None):
    """The device ids stage `stage` (default: the current one) targets, of the district's active devices."""
    pcts = plan(rollout)
    pct = pcts[min(rollout["stage"] if stage is None else stage, len(pcts) - 1)]
    out = set(d for d in rollout["canaries"])
    out.update(d for d in devices if member(d, rollout["salt"]) < pct)
    return out


def outcome(st, release, rseq):
    """confirmed / failed / pending, for one device's latest status (None: nothing heard)."""
    if st is None:
        return "pending"
    if st["sw"] >= rseq:
        return "confirmed"
    if st["release"] != release:
        return "pending"
    if st["state"] == "confirmed":
        return "confirmed"
    if st["state"] in ("rolled_back", "refused") and st["reason"] != "stopped":
        return "failed"
    return "pending"


class Decision:
    """action: "wait" | "advance" | "done" | "halt"; reason (halt); counts: per state of the
    targeted devices (the spec's states, plus "none" for nothing heard); pending, failed: ids."""

    def __init__(self, action, counts, pending, failed, targeted, reason=None):
        self.action, self.counts, self.pending, self.failed = action, counts, pending, failed
        self.targeted, self.reason = targeted, reason


def evaluate(rollout, release, devices, statuses, member, now=None):
    """Decide for one running rollout. release: its row (hash, seq); devices: the district's active
    device ids; statuses: {dev: latest status dict}; now: Unix s (for stage_timeout; None: no timeout)."""
    target = targeted(rollout, devices, member)
    counts, pending, failed, confirmed = {}, [], [], 0
    forgiven = set(rollout.get("forgiven") or ())
    for dev in sorted(target):
        st = statuses.get(dev)
        state = st["state"] if st is not None and (st["release"] == release["hash"] or st["sw"] >= release["seq"]) \
            else "none"
        counts[state] = counts.get(state, 0) + 1
        o = outcome(st, release["hash"], release["seq"])
        if o == "failed" and dev in forgiven:  # failed before the operator resumed: finished, not counted
            continue
        if o == "failed":
            failed.append(dev)
        elif o == "pending":
            pending.append(dev)
        else:
            confirmed += 1
    finished = confirmed + len(failed)
    bad_canary = [d for d in failed if d in rollout["canaries"]]
    if bad_canary:
        st = statuses[bad_canary[0]]
        why = ("canary %s: %s %s" % (bad_canary[0], st["state"], st["reason"])).strip()
        return Decision("halt", counts, pending, failed, target, why)
    if finished >= rollout["min_done"] and len(failed) * 100 > rollout["threshold"] * finished:
        return Decision("halt", counts, pending, failed, target, "failure threshold: %d of %d finished failed "
                        "(more than %d%%)" % (len(failed), finished, rollout["threshold"]))
    timeout = rollout.get("stage_timeout") or 0
    if pending and timeout and now is not None and now - rollout.get("stage_at", now) >= timeout:
        pending = []  # waited long enough: the stage goes on without them
    if pending or not target:
        if not target and rollout["stage"] < len(plan(rollout)) - 1:
            return Decision("advance", counts, pending, failed, target)
        return Decision("wait" if pending else "done", counts, pending, failed, target)
    if rollout["stage"] >= len(plan(rollout)) - 1:
        return Decision("done", counts, pending, failed, target)
    return Decision("advance", counts, pending, failed, target)


def parse_stages(text):
    """"5,25,100" -> [5, 25, 100]: increasing percentages, the last 100."""
    try:
        stages = [int(x) for x in str(text).split(",") if x.strip()]
    except ValueError:
        stages = []
    if not stages or stages[-1] != 100 or any(not 0 < s <= 100 for s in stages) or \
            any(b <= a for a, b in zip(stages, stages[1:])):
        from provisioning.errors import UsageError

        raise UsageError("--stages %r: increasing percentages ending at 100, e.g. 5,25,100" % text)
    return stages
