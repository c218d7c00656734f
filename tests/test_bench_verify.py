"""bench/bench_verify.py --quick runs in make test: the city's verify path against raw ECDSA and pycose."""
import os
import subprocess
import sys
import json

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_bench_verify_quick_prints_its_ratios():
    r = subprocess.run([sys.executable, os.path.join(ROOT, "bench", "bench_verify.py"), "--quick"], capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    result = json.loads(r.stdout.strip().splitlines()[-1])
    assert result["messages"] == 50 and result["ours_us"] > 0 and result["raw_us"] > 0
    assert "x raw" in r.stdout
