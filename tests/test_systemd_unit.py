"""The systemd unit `civicmote provision` writes: ordered after time sync, hardened, a dedicated
user, and valid for systemd itself where `systemd-analyze` is there."""
import shutil
import subprocess

import pytest

from provisioning.field.targets import unit_text


def _lines(text):
    return set(text.splitlines())


def test_unit_waits_for_time_sync_and_is_hardened():
    text = unit_text("cmabcdefghijklmnop", "/var/lib/civicmote", "/usr/bin/python3", "mqtts://city:8883")
    lines = _lines(text)
    assert "After=network-online.target time-sync.target" in lines
    assert "Wants=network-online.target time-sync.target" in lines
    for want in ("Type=notify", "WatchdogSec=120", "Restart=always", "User=civicmote", "Group=civicmote",
                 "StateDirectory=civicmote", "StateDirectoryMode=0700", "NoNewPrivileges=yes",
                 "ProtectSystem=strict", "ProtectHome=yes", "PrivateTmp=yes", "ProtectClock=yes",
                 "CapabilityBoundingSet=", "UMask=0077"):
        assert want in lines, want
    assert not [ln for ln in lines if ln.startswith("ReadWritePaths=")]  # StateDirectory covers it


def test_unit_for_a_folder_elsewhere_and_a_python_in_a_home():
    text = unit_text("cmabcdefghijklmnop", "/srv/dev1", "/home/pi/venv/bin/python", None)
    lines = _lines(text)
    assert "ReadWritePaths=/srv/dev1" in lines and "User=pi" in lines and "ProtectHome=read-only" in lines
    assert not [ln for ln in lines if ln.startswith("StateDirectory=")]


@pytest.mark.skipif(not shutil.which("systemd-analyze"), reason="systemd-analyze is not installed here")
def test_systemd_accepts_the_unit(tmp_path):
    unit = tmp_path / "civicmote.service"
    unit.write_text(unit_text("cmabcdefghijklmnop", "/var/lib/civicmote", "/usr/bin/python3", None))
    r = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "Unknown" not in r.stderr and "ignoring" not in r.stderr.lower(), r.stderr
