"""Run the civicmote CLI in-process (fast) or as the installed console script (end to end)."""
import json
import subprocess
import sys
from pathlib import Path

from provisioning.cli import main

CIVICMOTE = str(Path(sys.executable).parent / "civicmote")


def cli(capsys, *argv):
    """(exit code, stdout, stderr) of `civicmote argv...` run in this process."""
    try:
        code = main([str(a) for a in argv])
    except SystemExit as e:  # argparse usage errors and --help
        code = e.code
    out = capsys.readouterr()
    return code, out.out, out.err


def json_lines(text):
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def run_cli(*argv, **kw):
    return subprocess.run([CIVICMOTE] + [str(a) for a in argv], capture_output=True, text=True, **kw)


def json_failure(out, code):
    """The one failure object a command prints on stdout with --json (docs/json.md), checked for shape."""
    lines = json_lines(out)
    assert len(lines) == 1, out
    f = lines[0]
    assert f["ok"] is False and f["exit_code"] == code and f["error"], f
    return f
