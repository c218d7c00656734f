"""bench/bench_outbox.py --quick runs, and the ring takes on disk what its bound says."""
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_bench_outbox_quick():
    r = subprocess.run([sys.executable, str(ROOT / "bench" / "bench_outbox.py"), "--quick"], capture_output=True,
                       text=True, timeout=300, cwd=str(ROOT), env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout.splitlines()[0])
    # 64 segments of 4 KiB and a 512-byte index (one block): the bound, allocated once
    assert res["disk_bytes_ring"] <= 256 * 1024 + 8192
    assert res["disk_bytes_file_per_record"] >= res["records"] * res["record_bytes"]
