"""The operator's view of the fleet and its Prometheus exposition (CPython only).

One row per device the registry or the store knows: registry status, online/offline from the
retained status topic, last seen, the collector's counters, the health the device reported in
its latest summary (outbox depth, sensor and network errors, degraded sensors, uptime), gaps by
cause; the rejected messages the store keeps, grouped by reason; and the messages held for
signers the registry does not know yet. `metrics_text` writes the same numbers in the
Prometheus text format 0.0.4 (escaping label values as the format requires).
"""
HEALTH = (("q", "outbox"), ("err", "errors"), ("deg", "degraded"), ("net", "net"), ("up", "uptime"))
COUNTERS = ("received", "accepted", "duplicates", "rejected", "manifests", "bytes")


def fleet_rows(data):
    regs = {r["device_id"]: r for r in data.registry_records()}
    rows = {r["device_id"]: r for r in data.devices()}
    gaps = data.gaps_by_cause()
    out = []
    for dev in sorted(set(regs) | set(rows), key=lambda d: ((regs.get(d) or rows.get(d) or {}).get("district") or "",
                                                             d)):
        reg, row = regs.get(dev) or {}, rows.get(dev) or {}
        latest = data.latest_summary(dev) if row.get("accepted") else None
        health = (latest or {}).get("health") or {}
        status = data.status(dev)
        item = {"device_id": dev, "district": reg.get("district") or row.get("district") or "",
                "registry": reg.get("status") or "not in registry", "status": status[0] if status else None,
                "status_at": status[1] if status else None, "last_seen": row.get("last_seen"),
                "last_seq": row.get("last_seq"), "gaps": gaps.get(dev, {})}
        for k in COUNTERS:
            item[k] = row.get(k) or 0
        for key, name in HEALTH:
            v = health.get(key)
            item[name] = v if isinstance(v, int) and not isinstance(v, bool) else None
        out.append(item)
    return out


def _label(v):
    return str(v).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(**kw):
    return "{%s}" % ",".join('%s="%s"' % (k, _label(v)) for k, v in kw.items())


METRICS = (
    # name, type, help
    ("civicmote_device_online", "gauge", "1 if the device's retained status says online, 0 if offline"),
    ("civicmote_device_last_seen_timestamp_seconds", "gauge", "Unix time of the device's last message"),
    ("civicmote_device_messages_total", "counter", "messages the collector received from the device, by outcome"),
    ("civicmote_device_received_bytes_total", "counter", "bytes of the device's messages received"),
    ("civicmote_device_last_seq", "gauge", "highest summary seq accepted from the device"),
    ("civicmote_device_outbox_depth", "gauge", "summaries waiting in the device's outbox (latest report)"),
    ("civicmote_device_sensor_errors", "gauge", "sensor faults since the device booted (latest report)"),
    ("civicmote_device_degraded_sensors", "gauge", "sensors currently degraded (latest report)"),
    ("civicmote_device_network_errors", "gauge", "transport errors since the device booted (latest report)"),
    ("civicmote_device_uptime_seconds", "gauge", "seconds since the device's agent started (latest report)"),
    ("civicmote_device_gap_summaries_total", "counter", "summaries missing from the device's sequence, by cause"),
    ("civicmote_devices", "gauge", "devices by registry status"),
    ("civicmote_held_messages", "gauge", "messages held for a signer the registry does not know yet"),
)


def metrics_text(data):
    rows = fleet_rows(data)
    samples = {name: [] for name, _, _ in METRICS}
    registry = {}
    for r in rows:
        who = {"device_id": r["device_id"], "district": r["district"]}
        registry[r["registry"]] = registry.get(r["registry"], 0) + 1
        if r["status"] is not None:
            samples["civicmote_device_online"].append((_labels(**who), 1 if r["status"] == "online" else 0))
        if r["last_seen"] is not None:
            samples["civicmote_device_last_seen_timestamp_seconds"].append((_labels(**who), r["last_seen"]))
        for outcome in ("accepted", "duplicates", "rejected", "manifests"):
            samples["civicmote_device_messages_total"].append((_labels(outcome=outcome, **who), r[outcome]))
        samples["civicmote_device_received_bytes_total"].append((_labels(**who), r["bytes"]))
        if r["last_seq"] is not None:
            samples["civicmote_device_last_seq"].append((_labels(**who), r["last_seq"]))
        for name, key in (("outbox_depth", "outbox"), ("sensor_errors", "errors"), ("degraded_sensors", "degraded"),
                          ("network_errors", "net"), ("uptime_seconds", "uptime")):
            if r[key] is not None:
                samples["civicmote_device_" + name].append((_labels(**who), r[key]))
        for cause, n in sorted(r["gaps"].items()):
            samples["civicmote_device_gap_summaries_total"].append((_labels(cause=cause, **who), n))
    for status, n in sorted(registry.items()):
        samples["civicmote_devices"].append((_labels(status=status), n))
    for dev, n in sorted(data.held().items()):
        samples["civicmote_held_messages"].append((_labels(device_id=dev), n))
    lines = []
    for name, kind, text in METRICS:
        lines.append("# HELP %s %s" % (name, text))
        lines.append("# TYPE %s %s" % (name, kind))
        for labels, value in samples[name]:
            lines.append("%s%s %s" % (name, labels, _number(value)))
    return "\n".join(lines) + "\n"


def _number(v):
    if isinstance(v, float):
        return repr(v)
    return str(int(v))
