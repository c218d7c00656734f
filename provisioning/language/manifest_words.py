"""The one renderer of a signed privacy manifest into sentences for residents (CPython only).

Every privacy sentence civicmote shows anyone comes from here: `civicmote manifest show`, the
device's public page and `make demo` all call it with the signed manifest (format v2, see
docs/privacy.md) and a language catalogue (provisioning/language/catalogue/*.json, keys
`manifest.*`). Every number is the manifest's own (epsilon per window, the one daily cap
per person in the `privacy` block, k, the window, the per-person bound and its assumptions)
or follows from them by the arithmetic the manifest states (a phone rotating three times as
fast shows so many addresses: as so many people). Nothing here is written in English:
the words are the catalogue's, the numbers are written with its decimal separator.

    describe(manifest, cat)        the whole text: a head line, one paragraph on people, one per metric
    people(manifest, cat)          the paragraph on the unit of privacy and the daily cap (or "")
    metric(entry, cat)             (title, sentence) of one metric entry
    suppression(entry, cat)        the manifest's suppression rule for that metric (or "")
    suppressed_note(entry, cat)    what a suppressed window's value cell says
    withheld_note(cat)             what a window withheld by the daily budget says
    counts_explained(manifest, cat) one line on what a noisy or suppressed count means
"""
import math

from agent.core import rational
from agent.privacy.policy import addresses_per_window


def describe(manifest, cat):
    """The manifest in the catalogue's language: head, people, then one paragraph per metric."""
    n = len(manifest.get("metrics") or [])
    if manifest.get("dev"):
        head = _n(cat, "manifest.head_dev", n, dev=manifest["dev"])
    else:
        head = _n(cat, "manifest.head", n)
    paras = [head]
    text = people(manifest, cat)
    if text:
        paras.append(text)
    for e in manifest.get("metrics") or []:
        title, body = metric(e, cat)
        paras.append("%s: %s" % (title, body))
    return "\n\n".join(paras)


def people(manifest, cat):
    """The paragraph on the unit of privacy and the device's one budget per person per day."""
    p = manifest.get("privacy")
    if not p:
        return ""
    cap = p["daily_epsilon"]
    text = cat("manifest.people", cap=decimal(cap, cat), times=_times(cap, cat))
    spend = p.get("every_window_per_day")
    if spend is not None:
        over = rational.cmp(rational.parse(spend), rational.parse(cap)) > 0
        text += " " + cat("manifest.every_over" if over else "manifest.every_within", every=decimal(spend, cat))
    return text


def metric(e, cat):
    """(title, sentence) of one metric entry: what it measures and, for people, how they are
    protected. An entry without the fields a promise needs (an older manifest format) gets a
    sentence saying so: nothing is filled in that the device did not sign."""
    title = cat.metric_title(e["name"], e)
    try:
        return title, _sentence(e, cat)
    except (KeyError, TypeError, ValueError, ZeroDivisionError):
        return title, cat("manifest.incomplete")


def _sentence(e, cat):
    what = cat.what(e["name"], e)
    unit = (" " + e["unit"]) if e.get("unit") else ""
    if e["class"] == "environmental":
        stats = [cat("stat." + s) for s in e.get("stats") or ()] or [cat("stat.value")]
        return cat("manifest.env", what=what, stats=_and(stats, cat), every=every(e["window"], cat),
                   resolution=_resolution(e, cat, unit))
    mech = e["mechanism"]
    if mech in ("sum", "mean"):
        body = cat("manifest." + mech, what=what, lo=cat.number(e["lo"]), hi=cat.number(e["hi"]), unit=unit)
    elif mech == "histogram":
        body = cat("manifest.histogram", what=what, ranges=_ranges(e["buckets"], cat), unit=unit)
    else:
        body = cat("manifest." + mech, what=what)
    text = cat("manifest.personal", body=body, epsilon=decimal(e["epsilon"], cat), window=cat.window(e["window"]))
    text += " " + _promise(e, cat)
    rule = suppression(e, cat)
    return text + (" " + rule if rule else "")


def suppression(e, cat):
    """The suppression rule exactly as the manifest states it: on the noisy count, not the true one."""
    if "k" not in e:
        return ""
    key = "manifest.k_histogram" if e.get("mechanism") == "histogram" else "manifest.k"
    return cat(key, k=cat.number(e["k"]))


def suppressed_note(e, cat):
    """What the value cell of a suppressed window says (the noisy count fell under k)."""
    if "k" in (e or {}):
        return cat("manifest.suppressed_note", k=cat.number(e["k"]))
    return cat("manifest.suppressed_note_nok")


def withheld_note(cat):
    """What the value cell of a window withheld by the daily budget says."""
    return cat("manifest.withheld_note")


def counts_explained(manifest, cat):
    """One line: why counts of people are noisy, and what "suppressed" means, in the manifest's words."""
    rules = []
    for e in manifest.get("metrics") or []:
        rule = suppression(e, cat)
        if rule and rule not in rules:
            rules.append(rule)
    return " ".join([cat("manifest.noisy")] + rules)


# -- the promise and its assumptions ------------------------------------------------------

def _promise(e, cat):
    mech = e["mechanism"]
    eps = rational.parse(e["epsilon"])
    if mech == "distinct":
        rot, dev = e["rotation_s"], e.get("devices", 1)
        text = _n(cat, "manifest.promise.distinct", dev, devices=cat.number(dev), rotation=every(rot, cat),
                  bound=cat.number(e["sensitivity"]))
        fast = rot // 3
        more = dev * addresses_per_window(e["window"], fast) if fast >= 1 else 0
        if more > e["sensitivity"]:
            text += " " + cat("manifest.promise.distinct_fast", fast=every(fast, cat), more=cat.number(more),
                              ratio=_ratio(more, e["sensitivity"], cat))
        return text
    n = e["per_person"]
    if mech != "count":
        return _n(cat, "manifest.promise.readings", n)
    text = _n(cat, "manifest.promise.count", n)
    worst = e.get("worst_case")
    if worst is not None and worst > n:
        limits = []
        if e.get("refractory_s"):
            limits.append(cat("manifest.limit.refractory", every=every(e["refractory_s"], cat)))
        if e.get("max_events"):
            limits.append(cat("manifest.limit.max_events", n=cat.number(e["max_events"])))
        group = rational.text(rational.mul(eps, rational.make(worst, n)))
        text += " " + cat("manifest.promise.count_worst", limits=_and(limits, cat), worst=cat.number(worst),
                          ratio=_ratio(worst, n, cat), group=decimal(group, cat))
    return text


# -- numbers and words ---------------------------------------------------------------------

def decimal(text, cat):
    """An exact rational string in the catalogue's notation: "66/25" -> "2.64" (en), "2,64" (de);
    one without a short decimal stays a fraction ("1000/17")."""
    r = rational.parse(text)
    for places in range(7):
        scaled = r[0] * 10 ** places
        if scaled % r[1] == 0:
            q = scaled // r[1]
            sign, q = ("-", -q) if q < 0 else ("", q)
            digits = "%0*d" % (places + 1, q)
            whole = cat.number(int(digits[:len(digits) - places]))
            return sign + whole + ((cat.texts["_decimal"] + digits[-places:]) if places else "")
    return rational.text(r)


def _ratio(a, b, cat):
    # a / b to one decimal, rounded down: 13 addresses against 5 -> "2.6" people
    if a % b == 0:
        return cat.number(a // b)
    return "%s%s%d" % (cat.number(a // b), cat.texts["_decimal"], (a * 10 // b) % 10)


def _times(eps_text, cat):
    # e^epsilon, said plainly: "14 times", "1.1 times"
    r = rational.parse(eps_text)
    x = math.exp(r[0] / r[1])
    return cat.number(x, 0 if x >= 10 else 1)


def _n(cat, key, count, **kw):
    # the singular form ("key.1") when the catalogue has one and count is 1; {n} is the count
    if count == 1 and cat.has(key + ".1"):
        return cat(key + ".1", n=cat.number(count), **kw)
    return cat(key, n=cat.number(count), **kw)


def _and(words, cat):
    if len(words) == 1:
        return words[0]
    return "%s %s %s" % (", ".join(words[:-1]), cat("and"), words[-1])


def every(seconds, cat):
    """A period as the catalogue says it: "every 15 minutes", "every hour"; "alle 15 Minuten", "jede Stunde"."""
    for size, unit in ((86400, "d"), (3600, "h"), (60, "m"), (1, "s")):
        if seconds == size and cat.has("every.%s1" % unit):
            return cat("every.%s1" % unit)
    return cat("unit.window", window=cat.window(seconds))


def _resolution(e, cat, unit):
    res = e.get("resolution")
    if not res:
        return ""
    return cat("manifest.resolution", step=decimal(res, cat), unit=unit)


def _ranges(edges, cat):
    parts = [cat("manifest.range.below", a=cat.number(edges[0]))]
    for i in range(1, len(edges)):
        parts.append(cat("manifest.range.between", a=cat.number(edges[i - 1]), b=cat.number(edges[i])))
    parts.append(cat("manifest.range.above", a=cat.number(edges[-1])))
    return ", ".join(parts)
