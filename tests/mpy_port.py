"""Run code on the official MicroPython WebAssembly port (host side of the harness).

The port is the pinned npm package in tools/mpy-node; tools/mpy-node/run.mjs loads it
under Node.js, copies folders into its filesystem, supplies os.urandom from the host's
CSPRNG and runs scripts. Layout inside the interpreter:

    /lib/agent   <- agent/           (importable as `agent`)
    /tests       <- tests/portable/  (the portable suite)
    /vectors     <- tests/vectors/
    /boards      <- boards/
    /flash       working directory (a scratch "flash" for files the code writes)

From the shell:  .venv/bin/python tests/mpy_port.py [test_module ...]
"""
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NODE_DIR = ROOT / "tools" / "mpy-node"
RUNNER = ROOT / "tests" / "portable" / "mprunner.py"
DEFAULT_MAPS = (
    (ROOT / "agent", "/lib/agent"),
    (ROOT / "tests" / "portable", "/tests"),
    (ROOT / "tests" / "vectors", "/vectors"),
    (ROOT / "boards", "/boards"),
)
PORT_PACKAGE = NODE_DIR / "node_modules" / "@micropython" / "micropython-webassembly-pyscript"

_LINE = re.compile(r"^MPYTEST (PASS|FAIL|DONE|\|) ?(.*)$")


class PortUnavailable(RuntimeError):
    pass


def ensure_port():
    """Install the pinned port with npm if it is not there yet (the Makefile normally does)."""
    if PORT_PACKAGE.exists():
        return
    if shutil.which("node") is None or shutil.which("npm") is None:
        raise PortUnavailable("Node.js and npm are needed for the MicroPython port; install nodejs and npm")
    subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=NODE_DIR, check=True)


def run(scripts, maps=DEFAULT_MAPS, cwd="/flash", heap=None, timeout=600):
    """Run each script (a path or a source string) in one interpreter; return CompletedProcess."""
    ensure_port()
    tmp = tempfile.mkdtemp(prefix="mpy-")
    try:
        paths = []
        for i, s in enumerate(scripts):
            if isinstance(s, Path) or (isinstance(s, str) and "\n" not in s and s.endswith(".py") and os.path.exists(s)):
                paths.append(str(s))
            else:
                p = os.path.join(tmp, "script%d.py" % i)
                with open(p, "w") as f:
                    f.write(s)
                paths.append(p)
        cmd = ["node", str(NODE_DIR / "run.mjs")]
        if heap:
            cmd += ["--heap", str(heap)]
        for host, target in maps:
            cmd += ["--map", "%s=%s" % (host, target)]
        if cwd:
            cmd += ["--cwd", cwd]
        cmd += ["--"] + paths
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=NODE_DIR)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


class SuiteResult:
    def __init__(self, proc):
        self.proc = proc
        self.passed = []
        self.failed = {}  # label -> traceback text
        self.done = None
        current = None
        for line in proc.stdout.splitlines():
            m = _LINE.match(line)
            if not m:
                continue
            kind, rest = m.groups()
            if kind == "PASS":
                self.passed.append(rest.split(" ")[0])
            elif kind == "FAIL":
                current = rest
                self.failed[current] = ""
            elif kind == "|" and current is not None:
                self.failed[current] += rest + "\n"
            elif kind == "DONE":
                self.done = rest

    def report(self):
        parts = []
        for label, tb in self.failed.items():
            parts.append("MicroPython FAIL %s\n%s" % (label, tb))
        if self.done is None:
            parts.append("the MicroPython suite did not finish (exit %s)\nstdout tail:\n%s\nstderr:\n%s"
                         % (self.proc.returncode, self.proc.stdout[-3000:], self.proc.stderr[-3000:]))
        return "\n".join(parts)


def run_suite(only=None, timeout=900):
    pre = "ONLY = %r\n" % (list(only),) if only else "ONLY = None\n"
    return SuiteResult(run([pre, RUNNER], timeout=timeout))


if __name__ == "__main__":
    res = run_suite(sys.argv[1:] or None)
    for name in res.passed:
        print("PASS", name)
    print(res.report())
    print("passed=%d failed=%d" % (len(res.passed), len(res.failed)))
    sys.exit(0 if res.done and not res.failed else 1)
