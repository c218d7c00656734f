"""Time from `rollout start` to 100 % of a simulated fleet, with a share of devices given a
crash-looping release, through Mosquitto (mutual TLS, broker-config's ACL) and the rollout service.

Staged (2 canaries, then 5, 25, 100 %; halt above --threshold % of finished devices failed) against
the anchor measured in the same run: the same fleet, a fresh city, one stage of 100 %. Both with
the download cap at its default (50). Devices are simulated at the protocol level
(provisioning/demo/ota_fleet.py): real keys, orders, releases, 4 KiB blocks and signed status; the
trial (on a device: N windows of the health gate, 15 min at 300 s windows) is --trial-s here, so
the figure is the rollout's own cost. In the field add one trial per stage: stages x N windows.

    python bench/bench_rollout.py            # 100 devices, 5 % crash-looping
    python bench/bench_rollout.py --quick    # 20 devices
"""
import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))  # the simulated OTA city is test support: tests/ota_fleet_city.py

from ota_fleet_city import OtaCity  # noqa: E402


def one(folder, devices, bad_share, stages, canaries, threshold, trial_s, kib):
    with OtaCity(folder, devices=devices, artefact_kib=kib) as oc:
        bad = oc.pick(bad_share)
        t = time.monotonic()
        rid = oc.start(stages=stages, canaries=canaries, threshold=threshold, min_done=10)
        devs = oc.run_fleet(bad=bad, until=oc.finished(rid), timeout=600, trial_s=trial_s)
        took = time.monotonic() - t
        r = oc.rollout(rid)
        return {"state": r["state"], "reason": r["reason"], "seconds": round(took, 2),
                "confirmed": sum(1 for d in devs if d.sw),
                "rolled_back": sum(1 for d in devs if ("rolled_back", "crash_loop") in d.states),
                "orders": oc.service.counts["orders"], "answers": oc.service.counts["answers"],
                "device_bytes_in": sum(d.received_bytes for d in devs),
                "device_bytes_out": sum(d.sent_bytes for d in devs),
                "peak_downloads": max(c.peak for c in oc.service.caps.values())}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--devices", type=int, default=100)
    ap.add_argument("--bad", type=float, default=0.05, help="share of devices the release crash-loops on")
    ap.add_argument("--threshold", type=int, default=20, help="halt above this %% of finished devices failed")
    ap.add_argument("--trial-s", type=float, default=0.5)
    ap.add_argument("--kib", type=int, default=64, help="artefact size")
    a = ap.parse_args(argv)
    if a.quick:
        a.devices, a.kib = 20, 16
    with tempfile.TemporaryDirectory(prefix="bench-rollout-") as tmp:
        staged = one(Path(tmp) / "staged", a.devices, a.bad, "5,25,100", 2, a.threshold, a.trial_s, a.kib)
        anchor = one(Path(tmp) / "oneshot", a.devices, a.bad, "100", 0, 100, a.trial_s, a.kib)
    result = {"devices": a.devices, "crash_looping": a.bad, "threshold_pct": a.threshold, "trial_s": a.trial_s,
              "artefact_kib": a.kib, "staged": staged, "one_stage": anchor,
              "ratio_staged_to_one_stage": round(staged["seconds"] / max(anchor["seconds"], 1e-9), 2),
              "field_estimate_s": "seconds + 4 stages x 3 windows x 300 s (health gate)"}
    print("staged (canaries, 5, 25, 100 %%): %s after %.1f s, %d confirmed, %d rolled back, %d orders signed"
          % (staged["state"], staged["seconds"], staged["confirmed"], staged["rolled_back"], staged["orders"]))
    print("anchor (one stage of 100 %%): %s after %.1f s; staged / one stage = %.2f"
          % (anchor["state"], anchor["seconds"], result["ratio_staged_to_one_stage"]))
    print(json.dumps(result, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
