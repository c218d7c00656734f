"""The Raspberry Pi's install root, kept by the root-run updater (CPython only).

    ROOT/releases/<seq>/    one release's code (the bundle unpacked, plus its release.cose);
                            unpacked into <seq>.partial/ and renamed only once whole
    ROOT/current            symlink -> releases/<seq>: what the agent runs (the agent unit's
                            WorkingDirectory; the kernel resolves it when the agent starts, so a
                            running agent never mixes two releases)
    ROOT/state.json         what is installed, what is on trial, what was rolled back (root's, 0644)
    ROOT/updater/           the updater's own code: never replaced by an update, like a
                            bootloader, so a bad release cannot break its own rollback
    ROOT/incoming/          artefacts copied out of the agent's folder, hashed, unpacked, deleted
    ROOT/lock               one updater step at a time (flock)

state.json is the one truth and `current` follows it (reconcile): a power cut between writing
the state and swapping the link is repaired by the next updater step, and every start of the
agent runs one first. Both files change only by rename(), so each is always the old or the new.
A release directory named in the state is never deleted, so `current` always names a whole one.
"""
import contextlib
import fcntl
import json
import os
import shutil

STATE = "state.json"
CURRENT = "current"
RELEASES = "releases"
UPDATER = "updater"
INCOMING = "incoming"
FACTORY = {"seq": 0, "release": "", "ver": "factory"}
CODE_DIRS = ("agent", "provisioning")  # what a Pi release holds (the bundle's top-level packages)


def fresh_state():
    return {"v": 1, "installed": dict(FACTORY), "trial": None, "bad": [], "last": None}


def load(root):
    try:
        with open(os.path.join(root, STATE)) as f:
            st = json.load(f)
    except FileNotFoundError:
        return fresh_state()
    for k, v in fresh_state().items():
        st.setdefault(k, v)
    return st


def _fsync_dir(path):
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path, data, mode=0o644):
    """data to path: tmp file, fsync, rename, fsync the folder (a power cut leaves old or new)."""
    tmp = path + ".tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, mode)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.rename(tmp, path)
    _fsync_dir(os.path.dirname(path) or ".")


def save(root, st):
    write_atomic(os.path.join(root, STATE), (json.dumps(st, sort_keys=True, indent=1) + "\n").encode())


def release_dir(root, seq):
    return os.path.join(root, RELEASES, str(int(seq)))


def wanted(st):
    """The release `current` must name: the one on trial, else the installed one."""
    return (st["trial"] or st["installed"])["seq"]


def pointing_at(root):
    """The seq `current` names now, or None (missing, or not one of ours)."""
    try:
        target = os.readlink(os.path.join(root, CURRENT))
    except OSError:
        return None
    head, _, seq = target.rstrip("/").rpartition("/")
    return int(seq) if head == RELEASES and seq.isdigit() else None


def swap(root, seq, crash=None):
    """Point `current` at releases/<seq> in one rename() (a new link beside it, renamed over it)."""
    tmp = os.path.join(root, CURRENT + ".new")
    with contextlib.suppress(FileNotFoundError):
        os.unlink(tmp)
    os.symlink(RELEASES + "/" + str(int(seq)), tmp)
    if crash:
        crash("swap")  # fault injection (tests): the new link made, not yet renamed
    os.rename(tmp, os.path.join(root, CURRENT))
    _fsync_dir(root)


def reconcile(root, st, crash=None):
    """Make `current` name what the state wants. A trial whose release is not there (a damaged
    disk) is ended as rolled back ("disk"). -> (state, list of what was done)."""
    done = []
    want = wanted(st)
    if st["trial"] and not os.path.isdir(release_dir(root, want)):
        st = end_trial(st, False, "disk")
        done.append("trial %d ended: its release folder is missing" % want)
        want = wanted(st)
    if pointing_at(root) != want and os.path.isdir(release_dir(root, want)):
        swap(root, want, crash)
        done.append("current -> releases/%d" % want)
    return st, done


def end_trial(st, confirmed, reason):
    """The state after the trial ends: confirmed (it becomes the installed release) or rolled
    back (the installed one stays; the trial's seq is never installed automatically again)."""
    st = dict(st)
    trial, st["trial"] = st["trial"], None
    rel = {"seq": trial["seq"], "release": trial["release"], "ver": trial["ver"]}
    if confirmed:
        st["installed"] = rel
    else:
        st["bad"] = sorted(set(st["bad"]) | {trial["seq"]})
    return st


def prune(root, st):
    """Delete release folders the state no longer names (the factory's stays), and leftovers."""
    keep = {str(wanted(st)), str(st["installed"]["seq"]), "0"}
    base = os.path.join(root, RELEASES)
    for name in sorted(os.listdir(base)):
        if name not in keep:
            shutil.rmtree(os.path.join(base, name), ignore_errors=True)
    inc = os.path.join(root, INCOMING)
    if os.path.isdir(inc):
        for name in os.listdir(inc):
            with contextlib.suppress(OSError):
                os.unlink(os.path.join(inc, name))


@contextlib.contextmanager
def locked(root):
    """One updater step at a time (the timer's, the path unit's and the agent's start's)."""
    fd = os.open(os.path.join(root, "lock"), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def init(root, src):
    """Make ROOT from the code in src (the factory release, 0, and the updater's own copy).
    Refused if ROOT already holds a state: an installed Pi is never reset by accident."""
    if os.path.exists(os.path.join(root, STATE)):
        raise FileExistsError("%s: already an install root (state.json is there)" % root)
    for sub in (RELEASES, INCOMING):
        os.makedirs(os.path.join(root, sub), exist_ok=True)
    os.chmod(root, 0o755)
    for dest in (release_dir(root, 0), os.path.join(root, UPDATER)):
        if os.path.exists(dest):
            shutil.rmtree(dest)
        part = dest + ".partial"
        shutil.rmtree(part, ignore_errors=True)
        os.makedirs(part)
        for name in CODE_DIRS:
            shutil.copytree(os.path.join(src, name), os.path.join(part, name),
                            ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        os.rename(part, dest)
    st = fresh_state()
    save(root, st)
    reconcile(root, st)
    return st
