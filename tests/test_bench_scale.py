"""bench/bench_scale.py --quick: the end-to-end scale bench runs, and no acknowledged summary is lost."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from broker import MOSQUITTO

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(not os.path.exists(MOSQUITTO), reason="mosquitto is not installed")
def test_bench_scale_quick():
    r = subprocess.run([sys.executable, str(ROOT / "bench" / "bench_scale.py"), "--quick", "--json"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    doc = json.loads(r.stdout)
    rows = doc["rows"]
    assert [(x["backend"], x["collectors"]) for x in rows][:2] == [("sqlite", 1), ("sqlite", 2)]
    for x in rows:
        assert x["stored"] == x["published_acked"] == doc["devices"] * doc["per_device"]
        assert x["acked_not_stored"] == 0 and x["devices_in_store"] == doc["devices"]
        assert x["stored_per_s"] > 0 and x["latency_p50_ms"] <= x["latency_p99_ms"]
    assert rows[0]["ratio_vs_anchor"] == 1.0
