"""Damaged device state is an error, not a crash; and the agent lock always names its holder.

Real conditions: a file where a folder should be and the reverse, a file root cannot read (the
command runs as root without CAP_DAC_OVERRIDE / CAP_DAC_READ_SEARCH, through util-linux
`setpriv`, so mode 000 stops it as it stops any user), a read-only mount (a tmpfs remounted
read-only: root cannot write there either). Each gives one line naming the file, exit 3, and
with --json the {"ok": false, ...} object."""
import json
import os
import shutil
import subprocess
import sys
import time

import pytest
from cli_helpers import CIVICMOTE
from delivery_support import START, make_device
from disk_support import mount_tmpfs, umount_lazy

ROOT = __import__("pathlib").Path(__file__).resolve().parent.parent


def _run(d, prefix=()):
    argv = list(prefix) + [CIVICMOTE, "run", "--device-dir", str(d), "--fast", "--start", str(START), "--windows",
                           "1", "--json"]
    return subprocess.run(argv, capture_output=True, text=True, timeout=120)


def _one_line_exit_3(r, name):
    assert r.returncode == 3, (r.returncode, r.stderr)
    assert "Traceback" not in r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and name in lines[0], r.stderr
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out["ok"] is False and out["exit_code"] == 3 and name in out["error"]
    return lines[0]


def _file_for_folder(d):
    shutil.rmtree(d / "outbox")
    (d / "outbox").write_bytes(b"not a folder")
    return "outbox"


def _folder_for_file(d):
    (d / "progress").unlink()
    (d / "progress").mkdir()
    return "progress"


def _seq_folder(d):
    (d / "seq").unlink()
    (d / "seq").mkdir()
    return "seq"


@pytest.mark.parametrize("damage", [_file_for_folder, _folder_for_file, _seq_folder])
def test_a_damaged_folder_is_one_line_and_exit_3(tmp_path, damage):
    d = tmp_path / "dev"
    make_device(d)
    name = damage(d)
    line = _one_line_exit_3(_run(d), str(d / name))
    assert "folder" in line


def test_device_init_on_damaged_state_is_one_line_and_exit_3(tmp_path):
    d = tmp_path / "dev"
    make_device(d)
    _file_for_folder(d)
    r = subprocess.run([CIVICMOTE, "device", "init", "--device-dir", str(d), "--board", str(d / "board.json"),
                        "--json"], capture_output=True, text=True, timeout=60)
    _one_line_exit_3(r, str(d / "outbox"))


def test_an_unreadable_file_is_one_line_and_exit_3(tmp_path):
    if shutil.which("setpriv") is None:
        pytest.skip("util-linux setpriv is needed to run without the capabilities that let root read anything")
    d = tmp_path / "dev"
    make_device(d)
    (d / "progress").chmod(0)
    nocaps = ["setpriv", "--bounding-set", "-dac_override,-dac_read_search"]
    probe = subprocess.run(nocaps + ["cat", str(d / "progress")], capture_output=True)
    assert probe.returncode != 0, "the file is readable even without the capabilities: the test proves nothing"
    line = _one_line_exit_3(_run(d, nocaps), str(d / "progress"))
    assert "Permission denied" in line


def test_a_read_only_folder_is_one_line_and_exit_3(tmp_path):
    mnt = mount_tmpfs(tmp_path / "disk", "2m")
    try:
        d = mnt / "dev"
        make_device(d)
        subprocess.run(["mount", "-o", "remount,ro", str(mnt)], check=True)
        with pytest.raises(OSError):
            (d / "probe").write_bytes(b"x")  # really read-only, for root too
        line = _one_line_exit_3(_run(d), str(d))
        assert "Read-only" in line
    finally:
        umount_lazy(mnt)


_CONTENDER = """
import os, sys, time
sys.path.insert(0, %(root)r)
from provisioning.device.runlock import RunLock
from provisioning.errors import StateError
os.read(int(sys.argv[1]), 1)  # the barrier: all twenty wake when the test writes to the pipe
try:
    lock = RunLock(sys.argv[2]).acquire(["civicmote", "run"])
except StateError as e:
    print("refused " + str(e), flush=True)
    sys.exit(4)
print("holder", flush=True)
time.sleep(3)
"""


def _twenty_starts(d, root=str(ROOT)):
    """20 processes that take the lock of d at the same instant -> (holder pid, [refusal texts])."""
    r, w = os.pipe()
    try:
        procs = [subprocess.Popen([sys.executable, "-c", _CONTENDER % {"root": root}, str(r), str(d)],
                                  stdout=subprocess.PIPE, text=True, pass_fds=(r,)) for _ in range(20)]
        time.sleep(1.0 + 0.1 * len(procs))  # every one imported and waiting on the pipe
        os.write(w, b"x" * len(procs))
        outs = [(p.pid, p.communicate(timeout=60)[0].strip(), p.returncode) for p in procs]
    finally:
        os.close(r)
        os.close(w)
    holders = [pid for pid, text, code in outs if text == "holder"]
    assert len(holders) == 1, outs
    return holders[0], [text for pid, text, code in outs if code == 4]


def test_twenty_simultaneous_starts_every_refusal_names_the_holder(tmp_path):
    d = tmp_path / "dev"
    d.mkdir()
    (d / "agent.lock").write_text("pid 999999 started 1: civicmote run\n")  # a previous run's line (gone)
    holder, refused = _twenty_starts(d)
    assert len(refused) == 19
    for text in refused:
        assert "pid %d started" % holder in text, text


def test_a_refusal_in_the_instant_before_the_holder_wrote_its_line_still_names_it(tmp_path):
    """The race the twenty starts rarely hit on two cores, held open: a holder has the lock but has
    not written its line yet (the file still says a previous, finished run)."""
    import fcntl
    import threading

    from provisioning.device.runlock import LOCK_FILE, RunLock
    from provisioning.errors import StateError

    d = tmp_path / "dev"
    d.mkdir()
    path = d / LOCK_FILE
    path.write_text("pid 999999 started 1: civicmote run\n")
    fd = os.open(str(path), os.O_RDWR)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # the holder: locked, line not written yet
    line = ("pid %d started %d: civicmote run\n" % (os.getpid(), int(time.time()))).encode()
    threading.Timer(0.3, lambda: os.pwrite(fd, line.ljust(256), 0)).start()
    try:
        with pytest.raises(StateError) as e:
            RunLock(d).acquire(["civicmote", "run"])
    finally:
        os.close(fd)
    assert "pid %d started" % os.getpid() in str(e.value)
