"""civicmote-update: the Raspberry Pi's root-run updater (CPython only).

    python3 -m provisioning.device.updater init --root /opt/civicmote --device-dir DIR --from SRC
    python3 -m provisioning.device.updater tick --root /opt/civicmote --device-dir DIR   (civicmote-update.service)
    python3 -m provisioning.device.updater boot --root /opt/civicmote --device-dir DIR   (the agent's ExecStartPre)
    python3 -m provisioning.device.updater show --root /opt/civicmote
    python3 -m provisioning.device.updater trust --root /opt/civicmote --device-dir DIR   (pin keys again)
    python3 -m provisioning.device.updater units --root /opt/civicmote --device-dir DIR --broker URL --out DIR

`tick` installs what the agent staged (provisioning/device/pi_stage.py: verified again here,
unpacked to releases/<seq>, `current` swapped by rename, the agent restarted on trial) and
judges a trial (provisioning/device/pi_health.py): confirmed, or rolled back with
`health_timeout`. `boot` runs as root before every start of the agent: it repairs `current` after
a power cut, counts the trial's starts and rolls back before a fourth (`crash_loop`), and notes
where this start's numbering begins. Device state (ledger, seq, progress, outbox, receipt) lives
in the device folder and is never touched: an update or a rollback swaps code only.

The updater holds no device key. It reports through DIR/ota/pi_result (JSON: state, reason,
rseq, release, ver, sw, t), which the agent publishes in its device-signed status; state.json
in the root keeps the same as `last`. One JSON line per event on stdout; exit 0, 1 when a staged
release was refused, 2 usage, 3 environment (the root cannot be written).
"""
import argparse
import json
import os
import shlex
import signal
import subprocess
import sys
import time

from provisioning.device import pi_health, pi_root, pi_stage

RESULT = os.path.basename(pi_stage.RESULT)
RESTART = "systemctl restart civicmote.service"
RESTART_AGAIN_S = 60  # a trial whose agent has not started by then is restarted again
CRASH_ENV = "CIVICMOTE_UPDATER_CRASH_AT"  # tests only: SIGKILL this process at the named step


def crash(step):
    if os.environ.get(CRASH_ENV) == step:
        os.kill(os.getpid(), signal.SIGKILL)


def emit(event, **kw):
    kw["event"] = event
    print(json.dumps(kw, sort_keys=True), flush=True)


def report(root, device_dir, st, state, reason="", rel=None):
    """Keep the result in the state (caller saves) and in DIR/ota/pi_result for the agent."""
    rel = rel or {"seq": 0, "release": "", "ver": ""}
    res = {"state": state, "reason": reason, "rseq": rel["seq"], "release": rel["release"], "ver": rel["ver"],
           "sw": pi_root.wanted(st), "t": int(time.time())}
    st["last"] = res
    write_result(device_dir, res)
    emit(state, reason=reason, rseq=rel["seq"], sw=res["sw"])
    return res


def write_result(device_dir, res):
    """DIR/ota/pi_result, written as root into the agent's folder without following any symlink
    the agent may have planted (O_NOFOLLOW on each folder, O_EXCL on the temporary file), owned
    by the folder's owner so the agent can replace it."""
    data = (json.dumps(res, sort_keys=True) + "\n").encode()
    try:
        top = os.open(device_dir, os.O_RDONLY | os.O_DIRECTORY)
        try:
            try:
                os.mkdir("ota", 0o700, dir_fd=top)
                st = os.fstat(top)
                os.chown("ota", st.st_uid, st.st_gid, dir_fd=top, follow_symlinks=False)
            except FileExistsError:
                pass
            d = os.open("ota", os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=top)
        finally:
            os.close(top)
        try:
            tmp = RESULT + ".tmp"
            try:
                os.unlink(tmp, dir_fd=d)
            except FileNotFoundError:
                pass
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644, dir_fd=d)
            try:
                os.write(fd, data)
                owner = os.fstat(d)
                os.fchown(fd, owner.st_uid, owner.st_gid)
                os.fsync(fd)
            finally:
                os.close(fd)
            os.rename(tmp, RESULT, src_dir_fd=d, dst_dir_fd=d)
        finally:
            os.close(d)
    except OSError as e:
        emit("warning", text="cannot write %s/ota/%s (%s)" % (device_dir, RESULT, e.strerror or e))


def _trial_rel(trial):
    return {"seq": trial["seq"], "release": trial["release"], "ver": trial["ver"]}


def finish(root, device_dir, st, state, reason):
    """End the trial: confirmed, or rolled back (current swapped back). -> the new state, saved."""
    rel = _trial_rel(st["trial"])
    st = pi_root.end_trial(st, state == "confirmed", reason)
    pi_root.save(root, st)  # the state first: `current` follows it (a cut between is repaired)
    st, _ = pi_root.reconcile(root, st)
    report(root, device_dir, st, state, reason, rel)
    pi_root.save(root, st)
    pi_root.prune(root, st)
    return st


def apply(root, device_dir, st, stage_fd, now):
    """Install the staged release on trial. -> (state, True if the agent must be restarted)."""
    from agent.errors import DecodeError

    try:
        r, rhash, rel = pi_stage.check_docs(root, stage_fd, st, now)
        emit("verifying", rseq=r["seq"], size=r["size"])
        path = pi_stage.copy_artefact(root, stage_fd, r, rhash, crash)
        try:
            pi_stage.unpack(root, path, r, rel, crash)
        except (DecodeError, OSError) as e:
            if isinstance(e, DecodeError):  # genuine but broken: never tried again
                st["bad"] = sorted(set(st["bad"]) | {r["seq"]})
            raise pi_stage.Rejected("malformed" if isinstance(e, DecodeError) else "disk", str(e), r["seq"], rhash)
    except pi_stage.Rejected as e:
        pi_stage.consume(stage_fd)
        report(root, device_dir, st, "refused", e.reason, {"seq": e.rseq, "release": e.release.hex(), "ver": ""})
        emit("refused_because", text=str(e)[:200])
        pi_root.save(root, st)
        pi_root.prune(root, st)
        return st, False
    crash("unpacked")
    st["trial"] = {"seq": r["seq"], "release": rhash.hex(), "ver": r["ver"], "boots": 0, "mark": None,
                   "started": None, "boot_id": pi_health.boot_id(), "restarted": None}
    pi_root.save(root, st)
    pi_stage.consume(stage_fd)
    crash("trial")
    st, _ = pi_root.reconcile(root, st, crash)  # current -> releases/<seq> (one rename)
    crash("swapped")
    report(root, device_dir, st, "trial", "", _trial_rel(st["trial"]))
    pi_root.save(root, st)
    return st, True


def tick(root, device_dir, now=None):
    """The updater service's run. -> (exit code, restart the agent?)."""
    restart, code = False, 0
    with pi_root.locked(root):
        st = pi_root.load(root)
        st, done = pi_root.reconcile(root, st)
        for what in done:
            emit("repaired", text=what)
        if done:
            pi_root.save(root, st)
        trial = st["trial"]
        if trial:
            v = pi_health.verdict(trial, device_dir)
            if v:
                st = finish(root, device_dir, st, *v)
                restart = v[0] == "rolled_back"
            elif trial.get("started") is None or trial.get("boot_id") != pi_health.boot_id():
                # swapped, but no agent has started on it yet in this boot: restart it (again; the
                # run that swapped may have died before it asked)
                asked = trial.get("restarted")
                restart = asked is None or trial.get("boot_id") != pi_health.boot_id() or \
                    pi_health.uptime() - asked >= RESTART_AGAIN_S
        fd = pi_stage.open_stage(device_dir)
        if fd is not None:
            try:
                if pi_stage.is_ready(fd):
                    if st["trial"]:
                        pi_stage.consume(fd)  # one update at a time: stage it again once this one is judged
                        emit("ignored", text="a release is on trial; the staged one waits")
                    else:
                        now = int(time.time()) if now is None else now
                        st, started = apply(root, device_dir, st, fd, now if now >= 1704067200 else None)
                        restart = restart or started
                        code = 0 if started else 1
            finally:
                os.close(fd)
        if restart and st["trial"] and st["trial"].get("started") is None:
            st["trial"]["restarted"], st["trial"]["boot_id"] = pi_health.uptime(), pi_health.boot_id()
            pi_root.save(root, st)
    return code, restart


def boot(root, device_dir):
    """Before every start of the agent (as root): repair, judge, count the start."""
    with pi_root.locked(root):
        st = pi_root.load(root)
        st, done = pi_root.reconcile(root, st)
        for what in done:
            emit("repaired", text=what)
        if st["trial"]:
            v = pi_health.verdict(st["trial"], device_dir)
            if v:
                st = finish(root, device_dir, st, *v)
            else:
                st["trial"] = pi_health.start(st["trial"], device_dir)
                if st["trial"]["boots"] > pi_health.MAX_STARTS:
                    st = finish(root, device_dir, st, "rolled_back", "crash_loop")
                else:
                    emit("trial_start", rseq=st["trial"]["seq"], start=st["trial"]["boots"],
                         mark=st["trial"]["mark"])
                    pi_root.save(root, st)
                    crash("boot")
        elif done:
            pi_root.save(root, st)
    return 0


def run_restart(cmd):
    try:
        p = subprocess.run(shlex.split(cmd), capture_output=True, text=True, timeout=180)
        emit("restarted", command=cmd, exit=p.returncode)
    except (OSError, subprocess.TimeoutExpired) as e:
        emit("warning", text="restart failed: %s" % e)


def write_units(root, args):
    """The four unit files for this Pi (provisioning/device/pi_units.py) into --out."""
    from provisioning.device import pi_units

    rec = json.loads(pi_health.read_small(args.device_dir, "device.json") or b"{}")
    if not rec.get("device_id"):
        print("civicmote-update: error: %s/device.json: no device_id; run civicmote device init first"
              % args.device_dir, file=sys.stderr)
        return 2
    os.makedirs(args.out, exist_ok=True)
    files = pi_units.units(rec["device_id"], os.path.abspath(args.device_dir), args.python, args.broker, root=root)
    for name, text in sorted(files.items()):
        pi_root.write_atomic(os.path.join(args.out, name), text.encode())
    emit("units", files=sorted(files), out=os.path.abspath(args.out))
    return 0


def main(argv=None):
    p = argparse.ArgumentParser(prog="civicmote-update", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    for name in ("init", "tick", "boot", "show", "trust", "units"):
        s = sub.add_parser(name)
        s.add_argument("--root", required=True, metavar="DIR", help="the install root, e.g. /opt/civicmote")
        if name != "show":
            s.add_argument("--device-dir", required=True, metavar="DIR", help="the agent's state folder")
        if name == "init":
            s.add_argument("--from", dest="src", required=True, metavar="DIR",
                           help="a folder holding the factory code (agent/ and provisioning/)")
        if name == "units":
            s.add_argument("--broker", metavar="URL", help="the broker the agent publishes to")
            s.add_argument("--python", default="/usr/bin/python3", metavar="PY", help="the Pi's Python")
            s.add_argument("--out", required=True, metavar="DIR", help="where to write the unit files")
        if name == "tick":
            s.add_argument("--restart-cmd", default=RESTART, metavar="CMD",
                           help="how to restart the agent (default: %s)" % RESTART)
    args = p.parse_args(argv)
    root = os.path.abspath(args.root)
    try:
        if args.cmd == "init":
            st = pi_root.init(root, args.src)
            pi_stage.pin_trust(root, args.device_dir)
            emit("initialised", root=root, sw=st["installed"]["seq"])
            return 0
        if args.cmd == "trust":
            pi_stage.pin_trust(root, args.device_dir)
            emit("pinned", root=root)
            return 0
        if args.cmd == "units":
            return write_units(root, args)
        if args.cmd == "show":
            print(json.dumps(pi_root.load(root), sort_keys=True))
            return 0
        if not os.path.isfile(os.path.join(root, pi_root.STATE)):
            print("civicmote-update: error: %s: not an install root (no state.json); run init" % root, file=sys.stderr)
            return 2
        if args.cmd == "boot":
            return boot(root, args.device_dir)
        code, restart = tick(root, args.device_dir)
        if restart:
            run_restart(args.restart_cmd)
        return code
    except FileExistsError as e:
        print("civicmote-update: error: %s" % e, file=sys.stderr)
        return 2
    except OSError as e:
        print("civicmote-update: error: %s: %s" % (getattr(e, "filename", None) or root, e.strerror or e),
              file=sys.stderr)
        return 3


if __name__ == "__main__":
    sys.exit(main())
