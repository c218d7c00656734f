"""The pole label, in the spirit of the DTPR transparency signs (CPython only).

What a passer-by needs: a QR code to the device's public page (`civicmote web`'s /d/{device_id},
given with --url-base; without one, the manifest's MQTT topic), the device id, what it measures
in plain words, what it never collects, and who to contact. SVG is the label; PNG is
the QR code alone (segno's own PNG writer), for printers that want an image to place.
"""
from xml.sax.saxutils import escape

from agent.privacy.manifest import metric_words

from provisioning.errors import UsageError

WIDTH = 420
MARGIN = 24
LINE = 20
WRAP = 44  # characters per line at the body font size
DEFAULT_URL = "civicmote/v1/{district}/{device_id}/manifest"  # the retained MQTT topic of the manifest
NEVER = ("images or video", "sound recordings (only a sound level)",
         "names, faces or phone, Wi-Fi or Bluetooth addresses",
         "raw readings: only signed summaries leave the device")


def manifest_url(template, rec):
    try:
        return template.format(device_id=rec["device_id"], district=rec["district"])
    except (KeyError, IndexError, ValueError) as e:
        raise UsageError("--manifest-url %r: bad template (%s); use {device_id} and {district}" % (template, e))


def page_url(base, rec):
    """URL/d/{device_id}: the device's page under the city's published `civicmote web`."""
    base = base.strip()
    scheme, sep, rest = base.partition("://")
    if not sep or scheme not in ("http", "https") or not rest.strip("/") or any(c.isspace() for c in base):
        raise UsageError("--url-base %r: use the address where the city publishes civicmote web, e.g. "
                         "https://sensors.city.example" % base)
    return "%s/d/%s" % (base.rstrip("/"), rec["device_id"])


def plain_measures(measures):
    """One line per metric, in plain words; personal metrics say how they are protected."""
    out = []
    for m in measures:
        what = m.get("description") or metric_words(m["metric"])
        line = "%s (%s)" % (what, m["unit"]) if m.get("unit") else what
        if m.get("class") == "personal":
            line += ": a noisy total only, no one is identified"
        out.append(line)
    return out or ["nothing yet (no metrics in its board profile)"]


def _wrap(text, width=WRAP):
    words, lines, cur = text.split(), [], ""
    for w in words:
        if cur and len(cur) + 1 + len(w) > width:
            lines.append(cur)
            cur = w
        else:
            cur = (cur + " " + w).strip()
    return lines + [cur] if cur else lines


def svg(rec, url, contact):
    """The label as SVG text."""
    import segno

    qr = segno.make(url, error="m")
    scale = max(2, 180 // qr.symbol_size(scale=1, border=0)[0])
    qsize = qr.symbol_size(scale=scale, border=0)[0]
    body = []  # (y, text, style)
    y = MARGIN + 24
    body.append((y, "City sensor", "title"))
    y += LINE
    body.append((y, "Part of the city's privacy-first sensor network", "small"))
    y += 12
    qr_y = y
    y += qsize + LINE + 22  # room for the URL caption under the code
    body.append((y, rec["device_id"], "mono"))
    y += LINE
    where = "district %s" % rec["district"] + (", %s" % rec["location"] if rec.get("location") else "")
    for ln in _wrap(where):
        body.append((y, ln, "small"))
        y += LINE
    for title, items in (("It measures", plain_measures(rec.get("measures") or [])), ("It never collects", NEVER)):
        y += 8
        body.append((y, title, "head"))
        y += LINE
        for item in items:
            for i, ln in enumerate(_wrap(item, WRAP - 2)):
                body.append((y, ("• " if i == 0 else "") + ln, "body" if i == 0 else "more"))
                y += LINE
    y += 8
    body.append((y, "Questions?", "head"))
    y += LINE
    for ln in _wrap(contact):
        body.append((y, ln, "body"))
        y += LINE
    height = y + MARGIN - LINE + 8
    qr_svg = qr.svg_inline(scale=scale, border=0, dark="#000")
    qr_svg = qr_svg.replace("<svg ", '<svg x="%d" y="%d" ' % ((WIDTH - qsize) // 2, qr_y), 1)
    styles = {"title": 'font-size="22" font-weight="bold"', "head": 'font-size="15" font-weight="bold"',
              "body": 'font-size="14"', "more": 'font-size="14" dx="12"', "small": 'font-size="12"', "mono": 'font-size="15" font-family="monospace"'}
    parts = ['<?xml version="1.0" encoding="UTF-8"?>',
             '<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" '
             'font-family="sans-serif">' % (WIDTH, height, WIDTH, height),
             '<rect x="1" y="1" width="%d" height="%d" fill="#fff" stroke="#000" stroke-width="2" rx="10"/>'
             % (WIDTH - 2, height - 2), qr_svg,
             '<text x="%d" y="%d" font-size="11" text-anchor="middle">%s</text>'
             % (WIDTH // 2, qr_y + qsize + 14, escape(url))]
    for ty, text, style in body:
        parts.append('<text x="%d" y="%d" %s>%s</text>' % (MARGIN, ty, styles[style], escape(text)))
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def png(url, path):
    """The QR code alone as PNG (no text: use the SVG for the full label)."""
    import segno

    segno.make(url, error="m").save(str(path), kind="png", scale=8, border=4)
