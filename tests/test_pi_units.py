"""The systemd units of a Pi that updates over the air (provisioning/device/pi_units.py): the agent
runs from ROOT/current, unprivileged, unable to write code; the root updater runs before every
start of the agent, when a release is staged, and on a timer; systemd accepts all four."""
import json
import shutil
import subprocess

import pytest
from pi_support import PY, ROOT

from provisioning.device import pi_units

DEV, DIR, R = "cmabcdefghijklmnop", "/var/lib/civicmote", "/opt/civicmote"


def _lines(text):
    return text.splitlines()


def test_the_agent_runs_from_current_and_cannot_write_code():
    lines = _lines(pi_units.agent_unit(DEV, DIR, "/usr/bin/python3", "mqtts://city:8883", R))
    assert "WorkingDirectory=/opt/civicmote/current" in lines  # resolved once, at the start
    assert not [ln for ln in lines if ln.startswith("Environment=PYTHONPATH")]  # python -m: the resolved cwd
    pre = [ln for ln in lines if ln.startswith("ExecStartPre=")]
    assert pre == ["ExecStartPre=-+/usr/bin/env PYTHONPATH=/opt/civicmote/updater /usr/bin/python3 -P -m "
                   "provisioning.device.updater boot --root /opt/civicmote --device-dir /var/lib/civicmote"]
    assert lines.index(pre[0]) < [i for i, ln in enumerate(lines) if ln.startswith("ExecStart=")][0]
    for want in ("User=civicmote", "ProtectSystem=strict", "ReadOnlyPaths=/opt/civicmote", "NoNewPrivileges=yes",
                 "CapabilityBoundingSet=", "StateDirectory=civicmote", "Restart=always", "StartLimitIntervalSec=0"):
        assert want in lines, want
    assert not [ln for ln in lines if ln.startswith("ReadWritePaths=")]  # only its state folder


def test_the_updater_units():
    svc = _lines(pi_units.update_service(DIR, "/usr/bin/python3", R))
    assert "Type=oneshot" in svc and "ReadWritePaths=/opt/civicmote -/var/lib/civicmote/ota" in svc
    assert [ln for ln in svc if ln.startswith("ExecStart=")][0].endswith(
        "tick --root /opt/civicmote --device-dir /var/lib/civicmote --restart-cmd "
        "'systemctl restart civicmote.service'")
    assert not [ln for ln in svc if ln.startswith("User=")]  # root
    assert "PathExists=/var/lib/civicmote/ota/stage/ready" in _lines(pi_units.update_path(DIR))
    assert "OnUnitActiveSec=30s" in _lines(pi_units.update_timer())


@pytest.mark.skipif(not shutil.which("systemd-analyze"), reason="systemd-analyze is not installed here")
def test_systemd_accepts_all_four_written_by_the_updater(tmp_path):
    d = tmp_path / "dev"
    d.mkdir()
    (d / "device.json").write_text(json.dumps({"device_id": DEV}))
    out = tmp_path / "units"
    p = subprocess.run([PY, "-m", "provisioning.device.updater", "units", "--root", R, "--device-dir", str(d),
                        "--broker", "mqtts://city:8883", "--out", str(out)], cwd=str(ROOT), capture_output=True,
                       text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    names = sorted(x.name for x in out.iterdir())
    assert names == sorted(pi_units.units(DEV, DIR, PY))
    r = subprocess.run(["systemd-analyze", "verify"] + [str(out / n) for n in names], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0, r.stderr
    assert "Unknown" not in r.stderr and "ignoring" not in r.stderr.lower(), r.stderr
