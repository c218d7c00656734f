"""`make demo` end to end: provisioned devices -> mutual-TLS Mosquitto -> verifying collector."""
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_demo_tells_the_whole_story():
    r = subprocess.run([sys.executable, str(ROOT / "tools" / "demo.py")], capture_output=True, text=True,
                       timeout=150, cwd=ROOT)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    out = r.stdout
    assert "30 of 30 summaries received" in out and "0 rejected" in out
    assert out.count("verified") >= 30
    assert "Footfall: counts people walking past, with noise added" in out  # the manifest, in plain words
    ratio = int(out.split("would have sent ")[1].split("x more")[0].split(", ")[1])
    assert ratio >= 50
    # Everything it started is gone: no broker or device left running from demo-out.
    ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    assert "demo-out" not in ps
