"""Benchmarks cannot rot: every bench/bench_*.py runs here in its quick mode.

The convention (bench/README.md): a benchmark is a script that accepts `--quick` (a run of a few
seconds), exits 0, and ends (or starts) its output with one JSON object (its numbers and ratios). A bench
added later is picked up by the glob, so it is exercised by `make test` from its first commit.
"""
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BENCHES = sorted((ROOT / "bench").glob("bench_*.py"))
# Benches whose quick measurement runs elsewhere in `make test`, on a server a test module already has up.
# Each of these has its own test that runs `--quick` and checks its figures, so running it here too
# would only double the time.
ELSEWHERE = {"bench_cluster.py": "tests/test_cluster_rabbitmq.py::test_bench_cluster_quick (its 3-node cluster)",
             "bench_privacy_usefulness.py": "tests/test_bench_privacy.py::test_usefulness_bench_quick",
             "bench_board_heap.py": "tests/test_board_native.py::test_heap_bench_quick_mode",
             "bench_scale.py": "tests/test_bench_scale.py::test_bench_scale_quick",
             "bench_outbox.py": "tests/test_bench_outbox.py::test_bench_outbox_quick",
             "bench_verify.py": "tests/test_bench_verify.py::test_bench_verify_quick_prints_its_ratios"}
QUICK = [b for b in BENCHES if b.name not in ELSEWHERE]


def test_there_are_benches():
    assert len(BENCHES) >= 8


@pytest.mark.parametrize("bench", sorted(ELSEWHERE))
def test_a_bench_not_run_here_is_run_by_the_test_named(bench):
    assert (ROOT / "bench" / bench).exists(), "ELSEWHERE names a bench that is gone: %s" % bench
    path, name = ELSEWHERE[bench].split(" ")[0].split("::")
    source = (ROOT / path).read_text()
    assert "def %s(" % name in source and bench in source, "%s must run %s --quick" % (ELSEWHERE[bench], bench)


@pytest.mark.parametrize("bench", QUICK, ids=[b.name for b in QUICK])
def test_bench_quick_mode_runs_and_ends_with_json(bench):
    p = subprocess.run([sys.executable, str(bench), "--quick"], capture_output=True, text=True, timeout=300,
                       cwd=ROOT)
    assert p.returncode == 0, "%s --quick exited %d: %s" % (bench.name, p.returncode, p.stderr[-1500:])
    lines = [ln for ln in p.stdout.splitlines() if ln.strip()]
    ends = [ln for ln in (lines[-1], lines[0]) if ln.startswith("{")]
    assert ends, "%s: its last (or first) line must be a JSON object of results" % bench.name
    result = json.loads(ends[0])
    assert isinstance(result, dict) and result
