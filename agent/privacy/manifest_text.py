"""The privacy manifest in plain language for residents (agent.privacy.manifest builds it).

One paragraph about people (the unit of privacy, the budget per person per day and what
epsilon means), then one per metric: what it measures, and for a measurement of people the
epsilon it spends, the assumptions its promise rests on, what happens to someone outside them,
and exactly what "suppressed" means.
"""
import math

from agent.core import rational
from agent.privacy.policy import addresses_per_window


def window_text(seconds):
    """300 -> "5-minute", 3600 -> "1-hour", 90 -> "90-second"."""
    if seconds % 86400 == 0:
        return "%d-day" % (seconds // 86400)
    if seconds % 3600 == 0:
        return "%d-hour" % (seconds // 3600)
    if seconds % 60 == 0:
        return "%d-minute" % (seconds // 60)
    return "%d-second" % seconds


def describe(manifest):
    """The manifest in plain language: who is protected how, then one paragraph per metric."""
    n = len(manifest["metrics"])
    plural = "" if n == 1 else "s"
    if manifest.get("dev"):
        head = "Device %s publishes %d measurement%s." % (manifest["dev"], n, plural)
    else:
        head = "This sensor publishes %d measurement%s." % (n, plural)
    lines = [head]
    if manifest.get("privacy"):
        lines.append("")
        lines.append(_people_text(manifest["privacy"]))
    for e in manifest["metrics"]:
        lines.append("")
        lines.append(_describe_metric(e))
    return "\n".join(lines)


def decimal_text(text):
    """An exact rational string as a decimal when it has one: "66/25" -> "2.64", "1000/17" stays."""
    r = rational.parse(text)
    for places in range(7):
        scaled = r[0] * 10 ** places
        if scaled % r[1] == 0:
            q = "%d" % (scaled // r[1])
            if not places:
                return q
            q = "0" * (places + 1 - len(q)) + q
            return q[:-places] + "." + q[-places:]
    return rational.text(r)


def _times(eps_text):
    # e^epsilon, said plainly: "14 times", "1.1 times"
    r = rational.parse(eps_text)
    x = math.exp(r[0] / r[1])
    return ("%.0f" % x) if x >= 10 else ("%.1f" % x)


def _people_text(p):
    cap = decimal_text(p["daily_epsilon"])
    every = p.get("every_window_per_day")
    text = ("About people: the unit of privacy is one person. This device spends at most %s per day "
            "on any one person, across all its measurements of people together (ε, epsilon, says how much "
            "one person can change what is published: whatever anyone reads from a day of these summaries "
            "was at most %s times more, or less, likely with you there than without you)." % (cap, _times(p["daily_epsilon"])))
    if every is not None:
        if rational.cmp(rational.parse(every), rational.parse(p["daily_epsilon"])) > 0:
            text += (" Publishing every window would spend %s a day, so once the day's budget is spent the "
                     "measurements of people are withheld until the next day (UTC)." % decimal_text(every))
        else:
            text += (" Publishing every window spends %s a day; beyond the budget, measurements of people "
                     "would be withheld until the next day (UTC)." % decimal_text(every))
    return text


_ACRONYMS = ("co2", "no2", "o3", "voc", "pm1", "pm2.5", "pm4", "pm10", "ble")


def metric_words(name):
    """A metric name in plain words: "pm2_5" -> "PM2.5", "co2" -> "CO2", "wait_time" -> "wait time"."""
    return _words(name)


def _words(name):
    # "pm2_5" -> "pm2.5", "wait_time" -> "wait time": an underscore between digits is a point.
    out = ""
    for i, c in enumerate(name):
        if c in "_-":
            digits = 0 < i < len(name) - 1 and name[i - 1] in "0123456789" and name[i + 1] in "0123456789"
            c = "." if digits else " "
        out += c
    return " ".join(w.upper() if w in _ACRONYMS else w for w in out.split(" "))


def _title(name):
    words = _words(name)
    return words[:1].upper() + words[1:]


def _unit(e):
    return " " + e["unit"] if e["unit"] else ""


def _describe_metric(e):
    title = _title(e["name"])
    what = e.get("description")
    win = window_text(e["window"])
    if e["class"] == "environmental":
        return "%s: measures %s and publishes its %s over each %s window%s. No personal data." % (
            title, what or _words(e["name"]), _stats_text(e.get("stats", ())), win, _resolution_text(e))
    mech = e["mechanism"]
    if mech == "count":
        body = "counts %s" % (what or e["unit"] or "events")
    elif mech == "sum":
        body = "adds up %s, each reading capped between %d and %d%s" % (
            what or "readings", e["lo"], e["hi"], _unit(e))
    elif mech == "mean":
        body = "averages %s, each reading capped between %d and %d%s" % (
            what or "readings", e["lo"], e["hi"], _unit(e))
    elif mech == "histogram":
        body = "counts %s in ranges (%s%s)" % (what or "readings", _ranges(e["buckets"]), _unit(e))
    else:
        body = ("counts how many distinct %s are nearby; their radio addresses are scrambled with "
                "a key that is thrown away after every window, and never stored or sent"
                % (what or "phones and other Bluetooth devices"))
    text = "%s: %s, with noise added (ε = %s per %s window for one person)." % (
        title, body, decimal_text(e["epsilon"]), win)
    text += " " + _promise_text(e)
    text += _k_text(e)
    return text


def _promise_text(e):
    mech = e["mechanism"]
    eps = rational.parse(e["epsilon"])
    if mech == "distinct":
        rot = e["rotation_s"]
        dev = e.get("devices", 1)
        text = ("The promise assumes a person carries at most %d Bluetooth device%s and that %s changes its "
                "address no more often than every %s, so one person shows at most %d addresses in a window."
                % (dev, "" if dev == 1 else "s", "it" if dev == 1 else "each", _duration(rot), e["sensitivity"]))
        fast = rot // 3
        more = dev * addresses_per_window(e["window"], fast) if fast >= 1 else 0
        if more > e["sensitivity"]:
            text += (" A device that changes its address faster shows more addresses and its owner is protected "
                     "less: every %s, %d addresses, as %s people are." % (_duration(fast), more, _ratio(more, e["sensitivity"])))
        return text
    if mech == "count":
        n = e["per_person"]
        text = ("The promise holds for anyone who sets the sensor off at most %d time%s in a window "
                "(walking past, or arriving and leaving)." % (n, "" if n == 1 else "s"))
        worst = e.get("worst_case")
        if worst is not None and worst > n:
            why = []
            if e.get("refractory_s"):
                why.append("one event every %s" % _duration(e["refractory_s"]))
            if e.get("max_events"):
                why.append("%d events in a window" % e["max_events"])
            group = rational.mul(eps, rational.make(worst, n))
            text += (" The sensor counts at most %s, so someone who stays and keeps setting it off is counted at most %d times "
                     "in a window: they are protected only as %s people together are (ε up to %s for that window)."
                     % (" and ".join(why), worst, _ratio(worst, n), decimal_text(rational.text(group))))
        return text
    return ("The promise holds for anyone who affects at most %d reading%s in a window."
            % (e["per_person"], "" if e["per_person"] == 1 else "s"))


def _k_text(e):
    if "k" not in e:
        return ""
    k = e["k"]
    if e["mechanism"] == "histogram":
        return (" A range whose noisy count (after the noise is added) is under %d is published as empty (null); "
                "its true count may be a little above or below %d." % (k, k))
    return (" When the noisy count (after the noise is added) is under %d, only \"suppressed\" is published; "
            "the true count may be a little above or below %d." % (k, k))


def _ratio(a, b):
    if a % b == 0:
        return "%d" % (a // b)
    return "%d.%d" % (a // b, (a * 10 // b) % 10)


def _duration(seconds):
    if seconds % 3600 == 0:
        h = seconds // 3600
        return "hour" if h == 1 else "%d hours" % h
    if seconds % 60 == 0:
        m = seconds // 60
        return "minute" if m == 1 else "%d minutes" % m
    return "second" if seconds == 1 else "%d seconds" % seconds


_STAT_WORDS = {"n": "number of readings", "mean": "average", "min": "lowest value", "max": "highest value",
               "sd": "spread (standard deviation)", "leq": "energy-average level (LAeq)"}


def _stats_text(stats):
    words = [_STAT_WORDS.get(s, s) for s in stats] or ["value"]
    if len(words) == 1:
        return words[0]
    return ", ".join(words[:-1]) + " and " + words[-1]


def _resolution_text(e):
    res = e.get("resolution")
    if not res:
        return ""
    r = rational.parse(res)
    if r[1] == 1:
        step = "%d" % r[0]
    elif r[0] == 1 and r[1] in (10, 100, 1000):
        step = "0." + "0" * (len(str(r[1])) - 2) + "1"
    else:
        step = rational.text(r)
    return ", to the nearest %s%s" % (step, _unit(e))


def _ranges(edges):
    parts = ["below %d" % edges[0]]
    for i in range(1, len(edges)):
        parts.append("%d to %d" % (edges[i - 1], edges[i]))
    parts.append("%d and above" % edges[-1])
    return ", ".join(parts)
