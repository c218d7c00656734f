"""Keeping a running city broker current: reload it, and say how long its CRL and certificates last (CPython only).

    reload(out_dir) -> pid signalled, or None if no broker of this folder is running
    check(out_dir, now=None, warn_days=14) -> {"crl_next_update", "crl_days_left", "certs": {...},
                                               "warnings": [...], "expired": [...]}

Mosquitto re-reads its configuration, ACL and CRL on SIGHUP; its pid is in OUT/data/mosquitto.pid
(the `pid_file` of the generated configuration). A CRL past its nextUpdate makes Mosquitto refuse
every client, which is why the refresh timer re-signs it daily and `check` warns two weeks ahead.
"""
import datetime
import os
import signal
from pathlib import Path

from provisioning.errors import EnvironmentProblem, UsageError


def _mosquitto_pid(out_dir):
    path = Path(out_dir) / "data" / "mosquitto.pid"
    try:
        pid = int(path.read_text().strip())
    except (OSError, ValueError):
        return None
    try:
        with open("/proc/%d/comm" % pid) as f:
            if f.read().strip() != "mosquitto":
                return None  # a stale pid file: that number now belongs to another program
    except OSError:
        return None
    return pid


def reload(out_dir):
    """SIGHUP the Mosquitto that runs from out_dir; the pid, or None if none runs."""
    pid = _mosquitto_pid(out_dir)
    if pid is None:
        return None
    try:
        os.kill(pid, signal.SIGHUP)
    except PermissionError:
        raise EnvironmentProblem("cannot signal the broker (pid %d): run --reload as its owner or root" % pid)
    except ProcessLookupError:
        return None
    return pid


def check(out_dir, now=None, warn_days=14):
    from cryptography import x509

    now = now or datetime.datetime.now(datetime.timezone.utc)
    d = Path(out_dir)
    warnings, expired = [], []

    def judge(what, until):
        left = (until - now).total_seconds() / 86400.0
        if left <= 0:
            expired.append("%s expired on %s" % (what, until.isoformat()))
        elif left < warn_days:
            warnings.append("%s expires in %.1f days (%s)" % (what, left, until.isoformat()))
        return round(left, 2)

    try:
        crl = x509.load_pem_x509_crl((d / "crl.pem").read_bytes())
    except FileNotFoundError:
        raise UsageError("%s: no crl.pem; run civicmote broker-config --out %s first" % (d, d))
    except ValueError:
        raise UsageError("%s: not a PEM CRL" % (d / "crl.pem"))
    out = {"crl_next_update": crl.next_update_utc.isoformat(),
           "crl_days_left": judge("the CRL (crl.pem)", crl.next_update_utc), "certs": {}}
    for name in ("ca.crt", "server.crt", "collector.crt"):
        try:
            cert = x509.load_pem_x509_certificate((d / name).read_bytes())
        except (OSError, ValueError):
            continue
        out["certs"][name] = {"not_after": cert.not_valid_after_utc.isoformat(),
                              "days_left": judge(name, cert.not_valid_after_utc)}
    out["warnings"] = warnings
    out["expired"] = expired
    return out
