"""What the public page of one device shows, assembled from the store and the registry (CPython only).

Nothing here is invented: every value is one the device signed and the collector accepted,
scaled by the manifest it signed; the latest message's signature is checked again on each
page load against the key in the registry. The page's states:

    unknown    neither the registry nor the store knows the id            -> 404
    revoked    the registry revoked it: banner, what it published before   -> 410
    disabled   paused by the city: banner, data as usual                   -> 200
    no_data    known, nothing accepted yet: what it was set up to measure  -> 200
    active     the whole page                                              -> 200
"""
from datetime import datetime, timedelta, timezone

from provisioning.city.verifier import KeyRing, verify_message
from provisioning.language import manifest_words
from provisioning.web import charts
from provisioning.web.values import decimals, entries, headline, summary_values

DAY = 86400
STATUS_CODES = {"unknown": 404, "revoked": 410, "disabled": 200, "no_data": 200, "active": 200}


def ticks(t_from, t_to, tz, every_h=6):
    """[(t, "HH:MM")] at local hours divisible by every_h within [t_from, t_to]."""
    dt = datetime.fromtimestamp(t_from, timezone.utc).astimezone(tz).replace(minute=0, second=0, microsecond=0)
    out = []
    while dt.timestamp() <= t_to:
        if dt.timestamp() >= t_from and dt.hour % every_h == 0:
            out.append((int(dt.timestamp()), dt.strftime("%H:%M")))
        dt = (dt + timedelta(hours=1)).astimezone(tz)
    return out


def verdict(message, public_key_hex):
    """(ok, seq, reason) of a stored signed message checked against a public key (hex)."""
    if message is None:
        return None
    ring = KeyRing()
    try:
        ring.add_public_key(bytes.fromhex(public_key_hex or ""))
    except Exception as e:  # a registry row with a damaged key: say so, do not fail the page
        return False, message[0], "the registry's key is not usable (%s)" % e
    v = verify_message(message[1], ring)
    return v.ok, message[0], v.reason


def device_page(data, dev, cat, tz, now):
    """(state, context dict for templates/device.html)."""
    rec = data.registry_record(dev)
    row = data.device(dev)
    if rec is None and row is None:
        return "unknown", {"device_id": dev}
    latest = data.latest_summary(dev)
    state = (rec or {}).get("status", "active")
    if state not in ("revoked", "disabled"):
        state = "active" if latest else "no_data"
    m = data.manifest(dev)
    manifest = m[0] if m else None
    known = entries(manifest)
    end = max(int(now), latest["t1"] if latest else 0)
    start = end - DAY
    series = data.summaries([dev], start, end)
    manifests = data.manifests(dev)
    values = [v for s in series for v in summary_values(s, manifests.get(s["mh"]))]
    if not values and latest:
        values = summary_values(latest, manifests.get(latest["mh"]))
    status = data.status(dev)
    public_key = (rec or {}).get("public_key")
    ctx = {
        "device_id": dev, "state": state, "rec": rec or {}, "district": (rec or {}).get("district") or
        (row or {}).get("district"), "contact": (rec or {}).get("contact"), "reason": (rec or {}).get("reason") or "",
        "online": status[0] if status else None, "since": cat.time(status[1], tz, True) if status else None,
        "last_seen": cat.ago(now - row["last_seen"]) if row and row.get("last_seen") else None,
        "measures": [manifest_words.metric(e, cat) for e in sorted(
            (manifest or {}).get("metrics", []), key=lambda e: (e.get("class") == "personal", cat.metric_title(
                e.get("name", ""), e)))],
        "people": manifest_words.people(manifest, cat) if manifest else "",
        "declared": [_declared(cat, x) for x in (rec or {}).get("measures") or []] if not manifest else [],
        "latest": _latest(cat, values, known, tz), "latest_at": cat.time(latest["t1"], tz, True) if latest else None,
        "charts": _charts(cat, [v for v in values if v.end > start], known, start, end, tz),
        "verify": verdict(data.latest_message(dev), public_key) if public_key else None,
        "public_key": public_key, "has_manifest": m is not None,
        "accepted": (row or {}).get("accepted", 0), "rejected": (row or {}).get("rejected", 0),
        "missing": sum(data.gaps_by_cause(dev).values()), "zone": str(tz),
    }
    return state, ctx


def _declared(cat, measure):
    name = measure.get("metric") or measure.get("name") or "?"
    unit = measure.get("unit")
    return "%s%s" % (cat.metric_title(name, measure), " (%s)" % unit if unit else "")


def _latest(cat, values, known, tz):
    """[{title, value, unit, range, note, at}] of each metric's most recent released window."""
    last = {}
    for v in values:
        if v.metric not in last or v.end >= last[v.metric][0].end:
            if v.metric in last and v.end > last[v.metric][0].end:
                last[v.metric] = []
            last.setdefault(v.metric, []).append(v)
    out = []
    for name in sorted(last, key=lambda n: cat.metric_title(n, known.get(n))):
        group = last[name]
        e = known.get(name, {})
        head = headline(group)[name]
        by_stat = {v.stat: v for v in group}
        item = {"title": cat.metric_title(name, e), "unit": head.unit, "value": "", "range": "", "note": "",
                "at": cat.time(head.end, tz)}
        if head.value is not None:
            item["value"] = _value(cat, head.value, e) if head.cls == "environmental" else cat.number(head.value)
            lo, hi = by_stat.get("min"), by_stat.get("max")
            if lo and hi and lo.value is not None and hi.value is not None:
                item["range"] = cat("page.range", lo=_value(cat, lo.value, e), hi=_value(cat, hi.value, e))
        else:
            item["note"] = _note(cat, head.note, e)
        out.append(item)
    return out


def _value(cat, value, entry):
    """A metric's value with the decimals its resolution deserves."""
    return cat.number(value, decimals(entry or {}))


def _note(cat, note, entry):
    if note == "suppressed":
        return manifest_words.suppressed_note(entry, cat)
    if note.startswith("withheld"):
        return manifest_words.withheld_note(cat)
    return cat("page.no_reading")


def _charts(cat, values, known, start, end, tz):
    by_metric = {}
    for v in values:
        by_metric.setdefault(v.metric, {}).setdefault(v.end, {})[v.stat] = v
    out = []
    axis = ticks(start, end, tz)
    for name in sorted(by_metric, key=lambda n: cat.metric_title(n, known.get(n))):
        e = known.get(name, {})
        title = cat.metric_title(name, e)
        first = next(iter(next(iter(by_metric[name].values())).values()))
        unit, personal = first.unit, first.cls == "personal"
        points = []
        for t_end in sorted(by_metric[name]):
            stats = by_metric[name][t_end]
            head = headline(stats.values())[name]
            lo, hi = stats.get("min"), stats.get("max")
            points.append(charts.Point(head.start, head.end, head.value, lo.value if lo else None,
                                       hi.value if hi else None, _note(cat, head.note, e) if head.value is None else ""))
        shown = [p.value for p in points if p.value is not None]
        fmt = (lambda x: cat.number(x)) if personal else (lambda x, e=e: _value(cat, x, e))
        if shown:
            alt = cat("page.chart_alt", metric=title, lo=fmt(min(shown)), hi=fmt(max(shown)), last=fmt(shown[-1]),
                      unit=unit)
        else:
            alt = cat("page.chart_alt_empty", metric=title)
        draw = charts.bar_chart if personal else charts.line_chart
        out.append({"title": title, "unit": unit, "alt": alt, "svg": draw(points, start, end, fmt, axis, alt),
                    "legend": cat("page.chart_bars") if personal else (
                        cat("page.chart_band") if any(p.lo is not None for p in points) else "")})
    return out
