"""A Raspberry Pi update, installed by the root updater, against its anchor, measured in the same run.

(a) install: `python -m provisioning.device.updater tick` as a process on a staged release of
    this tree (both signatures checked again, the artefact copied and hashed, unpacked, synced,
    `current` swapped): the time from staged to on trial, without the agent's restart.
(b) anchor: a process that only unpacks the same bundle (agent/ota/bundle.py) into a folder.
The ratio (a)/(b) is what the re-verification and the crash-safe install cost over unpacking.
Bytes: the bundle, the release and the order (what a Pi downloads for an update, before framing).
The whole update end to end (agent restart, trial, confirmation by the city's receipt) is timed
by tests/test_pi_update_e2e.py.

    .venv/bin/python bench/bench_pi_update.py [--quick]

Prints one line per figure and a one-line JSON summary at the end.
"""
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "tests"))

UNPACK = """
import sys
from agent.ota import bundle
dest = sys.argv[2]
import os
def open_file(p):
    d = os.path.join(dest, *p.split("/"))
    os.makedirs(os.path.dirname(d), exist_ok=True)
    return open(d, "wb")
with open(sys.argv[1], "rb") as f:
    bundle.unpack(f.read, open_file)
"""


def main():
    quick = "--quick" in sys.argv
    reps = 1 if quick else 5
    from broker import Pki
    from delivery_support import make_device
    from pi_support import Signers, bundle_bytes, init_root, run_updater, stage

    tmp = Path(tempfile.mkdtemp(prefix="bench-pi-"))
    try:
        d = tmp / "dev"
        make_device(d, window_s=1)
        pki = Pki(tmp / "pki")
        shutil.copy(pki.cafile, d / "ca.crt")
        keys = Signers(pki.ca_key)
        (d / "release_keys").write_bytes(keys.pinned())
        art = bundle_bytes()
        (tmp / "art.bundle").write_bytes(art)
        installs, anchors = [], []
        for i in range(reps):
            root = tmp / ("root%d" % i)
            init_root(root, d)
            rel = keys.release(1, art)
            order = keys.order(rel)
            stage(d, rel, order, art)
            t0 = time.perf_counter()
            code, events, err = run_updater(root, d, "tick", "--restart-cmd", "true")
            installs.append(time.perf_counter() - t0)
            assert code == 0 and any(e["event"] == "trial" for e in events), err
            t0 = time.perf_counter()
            subprocess.run([sys.executable, "-c", UNPACK, str(tmp / "art.bundle"), str(tmp / ("plain%d" % i))],
                           check=True, cwd=ROOT)
            anchors.append(time.perf_counter() - t0)
        a, b = statistics.median(installs), statistics.median(anchors)
        print("bundle %d bytes, release %d bytes, order %d bytes" % (len(art), len(rel), len(order)))
        print("install (verify, copy+hash, unpack, sync, swap): %.3f s; plain unpack: %.3f s; ratio %.2f" %
              (a, b, a / b))
        print(json.dumps({"bundle_bytes": len(art), "release_bytes": len(rel), "order_bytes": len(order),
                          "install_s": round(a, 3), "unpack_s": round(b, 3), "ratio": round(a / b, 2),
                          "reps": reps}))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
