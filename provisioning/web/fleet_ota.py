"""The fleet view's update columns and rollouts, from the rollout state (CPython only).

Per device: the release it runs (its last signed status's `sw`, with the version when the
release is known), its last update attempt (release, state, reason code, when the city heard it).
Per rollout: district, release, state, stage and its share, counts of the targeted devices per
state, why it halted. Read only; `civicmote web --rollout FILE` names the state
(provisioning/ota/rollout_store.py). A missing file shows no update data, never an error.
"""
import os


def read(path):
    """({device_id: update dict}, [rollout dict]) from the rollout state, or ({}, []) without one."""
    if not path or not os.path.isfile(path):
        return {}, []
    from provisioning.ota import rollout_store, stages

    store = rollout_store.RolloutStore(path, readonly=True)
    try:
        rels = {r["hash"]: r for r in store.releases()}
        by_seq = {r["seq"]: r["ver"] for r in rels.values()}
        devices = {}
        for dev, st in store.device_states().items():
            rel = rels.get(st["release"])
            installed = by_seq.get(st["sw"], "factory" if not st["sw"] else "seq %d" % st["sw"])
            devices[dev] = {"district": st["district"], "installed_seq": st["sw"], "installed": installed,
                            "attempt_seq": st["rseq"] or None, "attempt": rel["ver"] if rel else None,
                            "result": st["state"], "reason": st["reason"] or None, "at": st["received"]}
        rollouts = []
        for r in reversed(store.rollouts()):
            rel = rels.get(r["release"]) or {}
            plan = stages.plan(r)
            rollouts.append({"rollout": r["id"], "district": r["district"], "release": rel.get("ver"),
                             "seq": rel.get("seq"), "state": r["state"], "halt": r["reason"],
                             "stage": r["stage"], "pct": plan[min(r["stage"], len(plan) - 1)],
                             "canary_stage": bool(r["canaries"]) and r["stage"] == 0, "counts": r["counts"],
                             "targeted": r["targeted"], "started": r["started"], "done_at": r["done_at"]})
        return devices, rollouts
    finally:
        store.close()


def add_to_rows(rows, devices):
    """Each fleet row gains `ota` (the dict above, or None); a device only the rollout state
    knows (a status arrived, the store has nothing yet) gets a row of its own."""
    from provisioning.web import fleet

    known = set()
    for row in rows:
        row["ota"] = devices.get(row["device_id"])
        known.add(row["device_id"])
    for dev in sorted(set(devices) - known):
        row = {"device_id": dev, "district": devices[dev]["district"], "registry": "not in registry",
               "status": None, "status_at": None, "last_seen": None, "last_seq": None, "gaps": {},
               "ota": devices[dev]}
        row.update({k: 0 for k in fleet.COUNTERS})
        row.update({name: None for _, name in fleet.HEALTH})
        rows.append(row)
    return rows


OTA_METRICS = (
    ("civicmote_device_installed_release", "gauge", "release seq the device runs (its last signed update status)"),
    ("civicmote_rollout_devices", "gauge", "devices a rollout targets now, by their update state"),
    ("civicmote_rollout_stage_percent", "gauge", "share of the district the rollout's current stage targets"),
    ("civicmote_rollout_running", "gauge", "1 while the rollout runs, 0 when paused, halted, aborted or done"),
)


def metrics_text(devices, rollouts):
    """The same numbers in the Prometheus text format (appended to /metrics when --rollout is given)."""
    from provisioning.web.fleet import _labels

    lines = []
    for name, kind, text in OTA_METRICS:
        lines += ["# HELP %s %s" % (name, text), "# TYPE %s %s" % (name, kind)]
        if name == "civicmote_device_installed_release":
            lines += ["%s%s %d" % (name, _labels(device_id=dev, district=u["district"]), u["installed_seq"])
                      for dev, u in sorted(devices.items())]
        for r in rollouts:
            who = {"rollout": r["rollout"], "district": r["district"]}
            if name == "civicmote_rollout_devices":
                lines += ["%s%s %d" % (name, _labels(**dict(who, state=s)), n) for s, n in sorted(r["counts"].items())]
            elif name == "civicmote_rollout_stage_percent":
                lines.append("%s%s %d" % (name, _labels(**who), r["pct"]))
            elif name == "civicmote_rollout_running":
                lines.append("%s%s %d" % (name, _labels(**who), r["state"] == "running"))
    return "\n".join(lines) + "\n"
