"""bench/bench_privacy_usefulness.py --quick runs and prints its table (issue 11)."""
import importlib.util
from pathlib import Path

BENCH = Path(__file__).resolve().parent.parent / "bench" / "bench_privacy_usefulness.py"


def test_usefulness_bench_quick(capsys):
    spec = importlib.util.spec_from_file_location("bench_privacy_usefulness", BENCH)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    results = bench.main(["--quick"])
    out = capsys.readouterr().out
    assert "one budget per person per day 2.64" in out and "per 1-hour window 0.11" in out
    for label in ("quiet night", "daytime", "busy"):
        assert label in out
    assert sorted(results) == [20, 300, 2000]
    # What privacy costs at 300 people an hour, against the sensor's own noiseless value:
    # about 15 % each at the shipped defaults (60 releases here, so a loose bound).
    assert results[300]["foot_p"] < 0.35 and results[300]["pres_p"] < 0.35
    # noise is absolute, so busier streets are relatively more accurate
    assert results[2000]["pres_p"] < results[300]["pres_p"]
