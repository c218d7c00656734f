"""The systemd units of a Raspberry Pi that updates over the air (issue 23).

    civicmote.service          the agent, as unit_text (below) makes it (unprivileged, read-only
                               system), but started from ROOT/current: WorkingDirectory is the
                               `current` symlink, which the kernel resolves when the agent starts
                               (`python -m` puts that resolved folder first on sys.path), so a
                               running agent never mixes two releases; and before every start
                               `civicmote-update boot` runs as root (ExecStartPre=-+: full
                               privileges, its failure never keeps the agent down)
    civicmote-update.service   the updater, root, oneshot: installs a staged release, judges the
                               trial, rolls back (provisioning/device/updater.py)
    civicmote-update.path      starts it as soon as the agent writes DIR/ota/stage/ready
    civicmote-update.timer     and every CHECK_S seconds, for the health gate's deadline

The updater runs its own copy of the code, ROOT/updater, which no update replaces (like a
bootloader): a bad release cannot break the step that rolls it back.
"""
import shlex


UNIT_USER = "civicmote"
# Groups a Raspberry Pi OS image has for the buses the agent reads (I2C sensors, serial PM sensors,
# GPIO PIR); BLE goes through BlueZ over D-Bus and needs none.
UNIT_GROUPS = "i2c dialout gpio"


def unit_text(device_id, device_dir, python, broker=None, pythonpath=None):
    """The systemd unit: started after the clock is synchronised (windows and the privacy day need
    it), restarted forever, a watchdog the agent must feed (sd_notify WATCHDOG=1), and run as a
    dedicated unprivileged user that can write only its own state folder."""
    cmd = [python, "-m", "provisioning.cli", "run", "--device-dir", device_dir]
    if broker:
        cmd += ["--broker", broker]
    state = device_dir.rstrip("/")
    homes = [p for p in (python or "", pythonpath or "", state) if p.startswith("/home/")]
    # A Python in someone's home (0700 on Raspberry Pi OS) is readable only by that person: run as them.
    user = homes[0].split("/")[2] if homes else UNIT_USER
    lines = ["[Unit]", "Description=civicmote sensor agent (device %s)" % device_id,
             "Wants=network-online.target time-sync.target",
             "After=network-online.target time-sync.target", "StartLimitIntervalSec=0", "",
             "[Service]", "Type=notify", "NotifyAccess=main", "ExecStart=" + " ".join(shlex.quote(c) for c in cmd)]
    if pythonpath:
        lines.append("Environment=PYTHONPATH=%s" % pythonpath)
    lines += ["WorkingDirectory=%s" % device_dir, "Restart=always", "RestartSec=5", "WatchdogSec=120",
              "TimeoutStopSec=45",  # the agent drains its outbox for up to 30 s when stopped
              "User=%s" % user, "Group=%s" % user, "SupplementaryGroups=%s" % UNIT_GROUPS, "UMask=0077"]
    if state.startswith("/var/lib/") and "/" not in state[len("/var/lib/"):]:
        lines.append("StateDirectory=%s" % state[len("/var/lib/"):])  # systemd creates it, owned by User
        lines.append("StateDirectoryMode=0700")
    else:
        lines.append("ReadWritePaths=%s" % device_dir)
    lines += ["NoNewPrivileges=yes", "ProtectSystem=strict",
              "ProtectHome=%s" % ("read-only" if homes else "yes"),
              "PrivateTmp=yes", "ProtectClock=yes", "ProtectKernelTunables=yes", "ProtectKernelModules=yes",
              "ProtectKernelLogs=yes", "ProtectControlGroups=yes", "ProtectHostname=yes", "RestrictSUIDSGID=yes",
              "RestrictRealtime=yes", "RestrictNamespaces=yes", "LockPersonality=yes", "CapabilityBoundingSet=",
              "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6 AF_NETLINK", "SystemCallArchitectures=native",
              "", "[Install]", "WantedBy=multi-user.target", ""]
    return "\n".join(lines)


AGENT_UNIT = "civicmote.service"
UPDATE_UNIT = "civicmote-update.service"
PATH_UNIT = "civicmote-update.path"
TIMER_UNIT = "civicmote-update.timer"
DEFAULT_ROOT = "/opt/civicmote"
CHECK_S = 30


def updater_argv(python, root, action, device_dir):
    """The updater's command line: its own code (ROOT/updater) on PYTHONPATH, -P so the working
    folder (the agent's `current`, for ExecStartPre) is never on sys.path."""
    return ["/usr/bin/env", "PYTHONPATH=%s/updater" % root, python, "-P", "-m", "provisioning.device.updater",
            action, "--root", root, "--device-dir", device_dir]


def _cmd(argv):
    return " ".join(shlex.quote(a) for a in argv)


def agent_unit(device_id, device_dir, python, broker=None, root=DEFAULT_ROOT):
    """civicmote.service for a Pi whose code lives in ROOT/current."""
    out = []
    for line in unit_text(device_id, device_dir, python, broker).splitlines():
        if line.startswith("WorkingDirectory="):
            line = "WorkingDirectory=%s/current" % root
        elif line.startswith("ExecStart="):
            out.append("ExecStartPre=-+" + _cmd(updater_argv(python, root, "boot", device_dir)))
        elif line == "ProtectSystem=strict":
            out.append("ReadOnlyPaths=%s" % root)  # read-only anyway under strict; said where it matters
        out.append(line)
    return "\n".join(out) + "\n"


def update_service(device_dir, python, root=DEFAULT_ROOT, restart_cmd="systemctl restart " + AGENT_UNIT):
    home = device_dir.startswith("/home/") or root.startswith("/home/")
    argv = updater_argv(python, root, "tick", device_dir) + ["--restart-cmd", restart_cmd]
    return "\n".join([
        "[Unit]", "Description=civicmote updater: verify and install a staged release, judge its trial, roll back",
        "After=time-sync.target", "",
        "[Service]", "Type=oneshot", "ExecStart=" + _cmd(argv), "WorkingDirectory=%s/updater" % root,
        "TimeoutStartSec=600", "Nice=10", "IOSchedulingClass=idle",
        # root, to install code the agent cannot write; it may write only the root and DIR/ota
        "ProtectSystem=strict", "ReadWritePaths=%s -%s/ota" % (root, device_dir.rstrip("/")),
        "ProtectHome=%s" % ("read-only" if home else "yes"), "PrivateTmp=yes", "NoNewPrivileges=yes",
        "CapabilityBoundingSet=CAP_CHOWN CAP_DAC_OVERRIDE CAP_DAC_READ_SEARCH CAP_FOWNER",
        "ProtectKernelTunables=yes", "ProtectKernelModules=yes", "ProtectControlGroups=yes",
        "RestrictAddressFamilies=AF_UNIX", "UMask=0022", ""])


def update_path(device_dir):
    return "\n".join([
        "[Unit]", "Description=civicmote updater: start when the agent has staged a release", "",
        "[Path]", "PathExists=%s/ota/stage/ready" % device_dir.rstrip("/"), "Unit=" + UPDATE_UNIT, "",
        "[Install]", "WantedBy=paths.target", ""])


def update_timer(check_s=CHECK_S):
    return "\n".join([
        "[Unit]", "Description=civicmote updater: judge a release on trial every %d s" % check_s, "",
        "[Timer]", "OnBootSec=2min", "OnUnitActiveSec=%ds" % check_s, "AccuracySec=5s", "Unit=" + UPDATE_UNIT, "",
        "[Install]", "WantedBy=timers.target", ""])


def units(device_id, device_dir, python, broker=None, root=DEFAULT_ROOT, check_s=CHECK_S, restart_cmd=None):
    """{unit file name: text} for an updating Pi."""
    restart_cmd = restart_cmd or "systemctl restart " + AGENT_UNIT
    return {AGENT_UNIT: agent_unit(device_id, device_dir, python, broker, root),
            UPDATE_UNIT: update_service(device_dir, python, root, restart_cmd),
            PATH_UNIT: update_path(device_dir), TIMER_UNIT: update_timer(check_s)}
