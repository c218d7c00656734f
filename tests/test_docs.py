"""Docs that work as written: every `civicmote` command shown in README.md and docs/*.md.

- Every documented command line (fenced ```sh blocks and indented blocks) parses with the real
  command line: the command exists, every option exists and takes what the docs give it.
- The commands that need no hardware, network or secrets run here as written, in a sandbox
  folder: the README's technician and device lines on the simulated board, and the whole
  walkthrough of docs/provisioning.md ("From nothing to verified summaries") through a real
  Mosquitto, on a free port instead of 8883.
- The documented ways to get a board and a Pi without hardware start: the virtual board
  command (docs/boards.md) and the local ssh test target (docs/provisioning.md).
Commands for real boards (/dev/ttyUSB0), a Pi at pole-17 or the city's CA stay parse-checked;
tests/test_board_commands.py and tests/test_provision_ssh.py run the same commands against the
virtual board and a local sshd.
"""
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from provision_support import free_port

from provisioning.cli import build_parser

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md"] + sorted((ROOT / "docs").glob("*.md"))
BIN = Path(sys.executable).parent


def documented_commands():
    """[(file:line, command text)] of every civicmote command in a shell block of the docs."""
    found = []
    for doc in DOCS:
        lines = doc.read_text().splitlines()
        in_fence = False
        i = 0
        while i < len(lines):
            ln = lines[i]
            if ln.startswith("```"):
                in_fence = not in_fence and ln.strip() in ("```sh", "```bash", "```console")
                i += 1
                continue
            text = ln.strip() if in_fence else (ln[4:] if ln.startswith("    ") else "")
            start = i
            while text.endswith("\\") and i + 1 < len(lines):
                i += 1
                text = text[:-1] + " " + lines[i].strip()
            text = re.sub(r"^\.venv/bin/", "", text)
            if text.startswith("civicmote ") or text == "civicmote":
                found.append(("%s:%d" % (doc.relative_to(ROOT), start + 1), text))
            i += 1
    return found


def argv_of(text):
    """The argv of a documented command: comments, redirections and '&' dropped."""
    words = shlex.split(text, comments=True)
    out = []
    skip = False
    for w in words[1:]:
        if skip:
            skip = False
            continue
        if w in (">", ">>", "<", "2>"):
            skip = True
            continue
        if w == "&":
            continue
        out.append(w)
    return out


COMMANDS = documented_commands()


def test_the_docs_show_commands():
    assert len(COMMANDS) >= 40, COMMANDS
    shown = {argv_of(t)[0] for _, t in COMMANDS if argv_of(t)}
    assert {"provision", "batch", "status", "logs", "sensors", "run", "verify", "registry"} <= shown


@pytest.mark.parametrize("where,text", COMMANDS, ids=[w for w, _ in COMMANDS])
def test_every_documented_command_parses(where, text):
    argv = argv_of(text)
    if argv in ([], ["--help"]):
        return
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:
        pytest.fail("%s: %r does not parse (exit %s)" % (where, text, e.code))
    assert getattr(args, "handler", None) is not None, "%s: %r names a group, not a command" % (where, text)


def _env(tmp):
    e = dict(os.environ)
    e["PATH"] = "%s:%s" % (BIN, e.get("PATH", ""))
    e.pop("CIVICMOTE_REGISTRY", None)
    e.pop("CIVICMOTE_CA", None)
    return e


def _sandbox(tmp_path):
    (tmp_path / "boards").symlink_to(ROOT / "boards")
    return tmp_path


def test_readme_commands_that_need_no_hardware_run_as_written(tmp_path):
    """The README's lines for the simulated board, a device folder and the city's first steps."""
    d = _sandbox(tmp_path)
    runnable = [t for w, t in COMMANDS if w.startswith("README.md") and (
        "boards/sim.json" in t or t.startswith(("civicmote ca init", "civicmote --help")))]
    assert len(runnable) >= 3, runnable
    env = dict(_env(d), CIVICMOTE_CA_PASSPHRASE="a long passphrase for the docs test")
    for text in runnable:
        p = subprocess.run(["bash", "-c", "set -e; " + text.replace(".venv/bin/", "")], cwd=d, env=env,
                           capture_output=True, text=True, timeout=120)
        assert p.returncode == 0, "%s\n%s" % (text, p.stderr)
    # The device lines, on a folder instead of /var/lib/civicmote.
    dev = str(d / "var-lib-civicmote")
    for w, text in COMMANDS:
        if w.startswith("README.md") and "--device-dir /var/lib/civicmote" in text and " check " not in text:
            text = text.replace("/var/lib/civicmote", dev).replace("boards/rpi4.json", "boards/sim.json")
            if text.startswith("civicmote run"):
                text += " --fast --windows 1"
            p = subprocess.run(["bash", "-c", text], cwd=d, env=env, capture_output=True, text=True, timeout=120)
            assert p.returncode == 0, "%s\n%s" % (text, p.stderr)


def _fenced_block_after(doc, heading):
    text = (ROOT / doc).read_text()
    rest = text[text.index(heading):]
    start = rest.index("```sh\n") + len("```sh\n")
    return rest[start:rest.index("```", start)]


@pytest.mark.skipif(not (shutil.which("mosquitto") or os.path.exists("/usr/sbin/mosquitto")), reason="needs Mosquitto")
def test_provisioning_walkthrough_runs_as_written(tmp_path):
    d = _sandbox(tmp_path)
    block = _fenced_block_after("docs/provisioning.md", "## From nothing to verified summaries")
    port = free_port()
    script = "set -e\ntrap 'kill $(jobs -p) 2>/dev/null || true' EXIT\nexport PATH=%s:/usr/sbin:$PATH\n%s" % (
        BIN, block.replace("8883", str(port)))
    p = subprocess.run(["bash", "-c", script], cwd=d, env=_env(d), capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-2000:]
    verdicts = [ln for ln in p.stdout.splitlines() if ln.startswith("{")]
    assert len(verdicts) == 4 and all('"ok": true' in v for v in verdicts), p.stdout[-1500:]


def test_documented_virtual_board_command_starts_a_board(tmp_path):
    line = [t for w, t in [(w, t) for w, t in _python_lines()] if "provisioning.field.virtual_board" in t][0]
    argv = shlex.split(line.replace(".venv/bin/python", sys.executable).replace("/tmp/flash", str(tmp_path / "f")))
    p = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        first = p.stdout.readline()
        assert first.startswith("virtual board on /dev/pts/"), first
        port = first.split()[3]
        r = subprocess.run([str(BIN / "civicmote"), "logs", "--port", port, "--json"], capture_output=True,
                           text=True, timeout=60)
        assert r.returncode == 0 and '"crash_log": null' in r.stdout, r.stderr
    finally:
        p.send_signal(signal.SIGTERM)
        assert p.wait(20) == 0


def _python_lines():
    out = []
    for doc in DOCS:
        for n, ln in enumerate(doc.read_text().splitlines(), 1):
            s = ln.strip()
            if s.startswith((".venv/bin/python ", "python ")):
                out.append(("%s:%d" % (doc.relative_to(ROOT), n), s))
    return out


def test_documented_local_ssh_target_starts(tmp_path):
    from ssh_support import sshd_usable

    if not sshd_usable():
        pytest.skip("needs root and OpenSSH")
    line = [t for w, t in _python_lines() if "tests/ssh_support.py" in t][0]
    argv = shlex.split(line.rstrip("&").replace("python", sys.executable, 1).replace("/tmp/ssh-target",
                                                                                     str(tmp_path / "t")))
    p = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        exports = p.stdout.readline()
        target = p.stdout.readline()
        assert exports.startswith("export CIVICMOTE_SSH_CONFIG=") and "CIVICMOTE_REMOTE_PYTHON=" in exports
        url = target.split("target: ")[1].strip()
        env = dict(os.environ)
        for kv in exports.split()[1:]:
            k, v = kv.split("=", 1)
            env[k] = v
        r = subprocess.run(["ssh", "-F", env["CIVICMOTE_SSH_CONFIG"], "-p", url.split(":")[2].split("/")[0],
                            "-o", "BatchMode=yes", url[len("ssh://"):].split(":")[0], env["CIVICMOTE_REMOTE_PYTHON"],
                            "-c", "'import ssl, sqlite3; print(1)'"], capture_output=True, text=True, timeout=30)
        assert r.stdout.strip() == "1", r.stderr
    finally:
        p.send_signal(signal.SIGTERM)
        assert p.wait(20) == 0
