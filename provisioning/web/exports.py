"""Data out: CSV and JSON per device or district for a time range, and signed messages as a zip (CPython only).

Rows are tidy, one released value each, so devices with different manifests share one table:

    device_id, district, seq, window_start, window_end, metric, statistic, value, unit, class, note

`value` is the released integer times the manifest's resolution, written as an exact decimal
(11.6, not 11.600000000000001); `metric`, `statistic` and `unit` are the manifest's own names;
`window_start`/`window_end` are the metric's own window (an hourly count covers the hour before
the summary that carries it), in UTC ISO 8601; `note` says why a value is empty (suppressed,
withheld: budget, no readings in this window). Summaries are selected by the end of their window.
"""
import csv
import io
import json
import zipfile
from datetime import datetime, timedelta, timezone

from provisioning.errors import UsageError
from provisioning.web.values import decimal_text, json_number, summary_values

COLUMNS = ("device_id", "district", "seq", "window_start", "window_end", "metric", "statistic", "value", "unit",
           "class", "note")
MAX_RANGE_S = 366 * 86400


def iso(ts):
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _instant(text, tz, name):
    text = text.strip()
    if text.lstrip("-").isdigit():
        return int(text)
    try:
        # A "+01:00" offset arrives as " 01:00" when the query string was not URL-encoded.
        dt = datetime.fromisoformat(text.replace(" ", "+") if "T" in text else text)
    except ValueError:
        raise UsageError("%s=%s: use a date (2026-11-30), a time (2026-11-30T07:00, or with Z or +01:00) or Unix "
                         "seconds" % (name, text))
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=tz)
    return int(dt.timestamp())


def parse_range(args, tz, now):
    """(t_from, t_to) from query args day= | from= and to= (naive times are the city's), default the last 24 h."""
    day = args.get("day")
    if day:
        try:
            d = datetime.strptime(day.strip(), "%Y-%m-%d").replace(tzinfo=tz)
        except ValueError:
            raise UsageError("day=%s: use YYYY-MM-DD" % day)
        return int(d.timestamp()), int((d + timedelta(days=1)).timestamp())
    t_to = _instant(args["to"], tz, "to") if args.get("to") else int(now)
    t_from = _instant(args["from"], tz, "from") if args.get("from") else t_to - 86400
    if t_to <= t_from:
        raise UsageError("from must be before to")
    if t_to - t_from > MAX_RANGE_S:
        raise UsageError("at most 366 days per export; split the range")
    return t_from, t_to


def value_rows(data, devices, t_from, t_to, districts):
    """Dicts with COLUMNS (value a Fraction or None) for the devices' summaries in (t_from, t_to]."""
    manifests = {}
    for s in data.summaries(devices, t_from, t_to):
        dev = s["device_id"]
        if dev not in manifests:
            manifests[dev] = data.manifests(dev)
        manifest = manifests[dev].get(s["mh"])
        for v in summary_values(s, manifest):
            yield {"device_id": dev, "district": districts.get(dev, ""), "seq": s["seq"], "window_start": iso(v.start),
                   "window_end": iso(v.end), "metric": v.metric, "statistic": v.stat, "value": v.value,
                   "unit": v.unit, "class": v.cls, "note": v.note, "places": v.places}


def csv_lines(rows):
    """The CSV (header first), one line at a time, for streaming."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\r\n")
    w.writerow(COLUMNS)
    yield buf.getvalue()
    for r in rows:
        buf.seek(0)
        buf.truncate()
        w.writerow([decimal_text(r[c], r["places"]) if c == "value" else r[c] for c in COLUMNS])
        yield buf.getvalue()


def json_text(scope, name, t_from, t_to, rows):
    doc = {"scope": scope, "id": name, "from": iso(t_from), "to": iso(t_to), "columns": list(COLUMNS),
           "rows": [{c: json_number(r[c]) if c == "value" else r[c] for c in COLUMNS} for r in rows]}
    return json.dumps(doc, ensure_ascii=False, sort_keys=True, indent=1) + "\n"


def messages_zip(data, dev, public_key, t_from, t_to):
    """A zip of the device's signed summaries in the range ({seq}.cose), its manifest, its key and how to check."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for seq, message in data.messages(dev, t_from, t_to):
            z.writestr("%s/%d.cose" % (dev, seq), message)
        m = data.manifest(dev)
        if m is not None:
            z.writestr("%s/manifest.cose" % dev, m[1])
        if public_key:
            z.writestr("%s/public-key.hex" % dev, public_key + "\n")
        z.writestr("%s/README.txt" % dev, README % {"dev": dev, "from": iso(t_from), "to": iso(t_to)})
    return buf.getvalue()


README = """Signed messages of city sensor %(dev)s, windows ending %(from)s to %(to)s.

Each .cose file is a COSE_Sign1 message (RFC 9052) signed by the device's own key, which never
leaves the device. Check every one with the civicmote tool (pip install civicmote, or from its
source):

    civicmote verify --public-key "$(cat public-key.hex)" *.cose

It prints one JSON line per message ("ok": true when the signature holds) and re-derives the
device id from the key, so it also checks that the key belongs to the id on the label.
"""
