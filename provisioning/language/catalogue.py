"""The city's language: a catalogue of the words, numbers and times residents read (CPython only).

A catalogue is a JSON object of message id -> text with `{name}` placeholders, plus `_language`
(its own name), `_decimal` and `_thousands` (number separators). English and German ship in
catalogue/; a city adds its language by copying en.json, translating the texts and passing
`civicmote web --lang FILE` (and `civicmote manifest show --lang FILE`). A missing id falls
back to English, so a partial catalogue still gives a whole page. The `manifest.*` ids are the
privacy sentences: provisioning.language.manifest_words, the one renderer of a signed manifest,
fills them with the manifest's own numbers.
"""
import json
from datetime import datetime, timezone
from pathlib import Path

from agent.privacy.manifest import metric_words
from provisioning.errors import UsageError

HERE = Path(__file__).resolve().parent / "catalogue"
SHIPPED = ("en", "de")


def load(lang_or_path):
    """The Catalogue of a shipped language code ("en", "de") or of a JSON file."""
    path = HERE / ("%s.json" % lang_or_path) if lang_or_path in SHIPPED else Path(lang_or_path)
    code = lang_or_path if lang_or_path in SHIPPED else path.stem
    try:
        texts = json.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise UsageError("%s: cannot read the catalogue (%s); shipped languages: %s"
                         % (path, e.strerror, ", ".join(SHIPPED)))
    except ValueError as e:
        raise UsageError("%s: not a JSON catalogue (%s)" % (path, e))
    if not isinstance(texts, dict) or not all(isinstance(v, str) for v in texts.values()):
        raise UsageError("%s: a catalogue is one JSON object of id -> text" % path)
    english = json.loads((HERE / "en.json").read_text(encoding="utf-8"))
    return Catalogue(code, dict(english, **texts))


class Catalogue:
    def __init__(self, code, texts):
        self.code = code
        self.texts = texts
        self.name = texts.get("_language", code)

    def __call__(self, key, **kw):
        text = self.texts.get(key, key)
        try:
            return text.format(**kw)
        except (KeyError, IndexError, ValueError):
            return text

    def has(self, key):
        return key in self.texts

    # -- numbers and times -----------------------------------------------------------------
    def number(self, value, places=0):
        """A Fraction (or int) as text with the catalogue's separators, rounded to `places`."""
        if value is None:
            return ""
        text = "%.*f" % (places, float(value))
        if text.startswith("-") and float(text) == 0:
            text = text[1:]
        whole, _, frac = text.partition(".")
        sign = "-" if whole.startswith("-") else ""
        whole = whole.lstrip("-")
        groups = []
        while len(whole) > 3:
            groups.insert(0, whole[-3:])
            whole = whole[:-3]
        whole = self.texts["_thousands"].join([whole] + groups) if len(whole + "".join(groups)) > 4 else \
            whole + "".join(groups)
        return sign + whole + (self.texts["_decimal"] + frac if frac else "")

    @staticmethod
    def time(ts, tz, with_date=False):
        dt = datetime.fromtimestamp(ts, timezone.utc).astimezone(tz)
        return dt.strftime("%Y-%m-%d %H:%M" if with_date else "%H:%M")

    def ago(self, seconds):
        seconds = max(0, int(seconds))
        if seconds < 60:
            return self("time.ago_s")
        if seconds < 3600:
            return self("time.ago_m", n=seconds // 60)
        if seconds < 86400 * 2:
            return self("time.ago_h", n=seconds // 3600)
        return self("time.ago_d", n=seconds // 86400)

    def window(self, seconds):
        for size, unit in ((86400, "d"), (3600, "h"), (60, "m")):
            if seconds % size == 0:
                n = seconds // size
                return self("window.%s1" % unit) if n == 1 else self("window.%s" % unit, n=n)
        return self("window.s", n=seconds)

    # -- the manifest in plain words -------------------------------------------------------
    def metric_title(self, name, entry=None):
        key = "metric." + name
        if self.has(key):
            return self(key)
        words = (entry or {}).get("description") or metric_words(name)
        return words[:1].upper() + words[1:]

    def what(self, name, entry=None):
        """What a metric is about, as the object of "measures"/"counts": catalogue, else the manifest's words."""
        key = "what." + name
        return self(key) if self.has(key) else ((entry or {}).get("description") or metric_words(name))
