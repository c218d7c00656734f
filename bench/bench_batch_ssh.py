"""`civicmote batch` over ssh: seconds per device against one bare ssh login (the anchor).

Starts a local sshd on loopback (tests/ssh_support.py: root and OpenSSH needed; without them it
says so and exits 0), provisions N devices with `civicmote batch` whose targets are ssh:// URLs
on this machine, and prints the batch wall time per device and its ratio to one `ssh true`
login measured in the same run. The device side runs a stock Python (standard library only).
Usage: python bench/bench_batch_ssh.py [--quick] [--jobs N]
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from provision_support import PASSPHRASE, write_board  # noqa: E402
from ssh_support import LocalSSHD, bare_python, sshd_usable  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="2 devices instead of 8")
    ap.add_argument("--jobs", type=int, default=None, help="batch --jobs (default: the batch default)")
    args = ap.parse_args()
    if not sshd_usable():
        print(json.dumps({"skipped": "needs root and OpenSSH (sshd, ssh, ssh-keygen)"}))
        return 0
    n = 2 if args.quick else 8
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        sshd = LocalSSHD(tmp / "sshd")
        try:
            if sshd.error:
                print(json.dumps({"skipped": sshd.error}))
                return 0
            env = dict(os.environ, CIVICMOTE_SSH_CONFIG=str(sshd.config), CIVICMOTE_CA_PASSPHRASE=PASSPHRASE,
                       CIVICMOTE_REGISTRY=str(tmp / "registry.db"),
                       CIVICMOTE_REMOTE_PYTHON=bare_python(tmp / "stock-python"))
            civicmote = [sys.executable, "-m", "provisioning.cli"]
            subprocess.run(civicmote + ["ca", "init", "--dir", str(tmp / "ca")], env=env, check=True,
                           capture_output=True)
            write_board(tmp)
            rows = ["board,target,district"] + ["board.json,%s,north" % sshd.url(str(tmp / ("disk%d" % i)))
                                                for i in range(n)]
            (tmp / "fleet.csv").write_text("\n".join(rows) + "\n")
            t0 = time.perf_counter()
            for _ in range(3):
                subprocess.run(["ssh", "-F", str(sshd.config), "-p", str(sshd.port), "-o", "BatchMode=yes",
                                "%s@127.0.0.1" % sshd.user, "true"], check=True)
            anchor = (time.perf_counter() - t0) / 3
            argv = civicmote + ["batch", str(tmp / "fleet.csv"), "--ca", str(tmp / "ca"), "--json"]
            if args.jobs:
                argv += ["--jobs", str(args.jobs)]
            t0 = time.perf_counter()
            p = subprocess.run(argv, env=env, capture_output=True, text=True)
            wall = time.perf_counter() - t0
            summary = json.loads(p.stdout.splitlines()[-1]) if p.stdout.strip() else {}
            if p.returncode != 0 or summary.get("provisioned") != n:
                print("batch failed (exit %d): %s %s" % (p.returncode, p.stderr.strip()[-500:], summary.get("failures")),
                      file=sys.stderr)
                return 1
        finally:
            sshd.stop()
    per = wall / n
    print(json.dumps({"devices": n, "jobs": args.jobs, "batch_s": round(wall, 2), "s_per_device": round(per, 3),
                      "anchor_ssh_login_s": round(anchor, 3), "ratio_per_device_vs_login": round(per / anchor, 1)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
