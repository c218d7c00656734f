"""How commands speak: JSON on stdout for scripts, plain lines for people (CPython only)."""
import json
import sys


class Output:
    """--json: one JSON object (or JSON lines for streams) on stdout and nothing else there.
    Otherwise: human text on stdout. Errors always go to stderr as one line."""

    def __init__(self, as_json, stdout=None, stderr=None):
        self.json = as_json
        self.stdout = stdout or sys.stdout
        self.stderr = stderr or sys.stderr

    def record(self, obj, human=None):
        """Emit one result: obj as a JSON line with --json, else human (a str or a callable) or key: value lines."""
        if self.json:
            self.stdout.write(json.dumps(obj, sort_keys=True, default=_jsonable) + "\n")
            self.stdout.flush()
            return
        if callable(human):
            human = human(obj)
        if human is None:
            width = max((len(k) for k in obj), default=0)
            human = "\n".join("%-*s  %s" % (width, k, _plain(v)) for k, v in obj.items())
        self.stdout.write(human + "\n")
        self.stdout.flush()

    def say(self, text):
        """Human-only progress or context; never on stdout in --json mode."""
        if self.json:
            return
        self.stdout.write(text + "\n")
        self.stdout.flush()

    def note(self, text):
        """A line for people on stderr (also in --json mode, where stdout is for data only)."""
        self.stderr.write(text + "\n")
        self.stderr.flush()

    def error(self, text):
        self.stderr.write("civicmote: error: " + text + "\n")
        self.stderr.flush()


def _plain(v):
    if isinstance(v, bool):
        return "yes" if v else "no"
    if v is None:
        return "-"
    if isinstance(v, (list, tuple)):
        return ", ".join(_plain(x) for x in v)
    return str(v)


def _jsonable(v):
    if isinstance(v, (bytes, bytearray)):
        return v.hex()
    raise TypeError("not JSON serialisable: %r" % type(v))
