"""Outbox disk use and speed on this machine's filesystem, against the layout it replaced.

Anchor, measured in the same run: one CRC-framed file per record written tmp + fsync + rename
(agent/store/atomic.py), the outbox before the segment ring. Both queue the same ~300-byte
summaries; we print what each takes on disk (allocated blocks, `st_blocks * 512`) and the time
per put + ack. The ring's disk use is fixed at creation and is its bound.
Usage: python bench/bench_outbox.py [--quick]
"""
import json
import os
import shutil
import sys
import tempfile
import time

from agent.store import atomic
from agent.store.outbox import Outbox


def disk_use(d):
    total = 0
    for name in os.listdir(d):
        total += os.stat(os.path.join(d, name)).st_blocks * 512
    return total


def main():
    quick = "--quick" in sys.argv
    n = 100 if quick else 1000
    data = os.urandom(300)
    root = tempfile.mkdtemp(prefix="bench-outbox-")
    try:
        old = os.path.join(root, "old")
        os.mkdir(old)
        t0 = time.perf_counter()
        for seq in range(1, n + 1):
            atomic.write_new("%s/%d.rec" % (old, seq), seq.to_bytes(8, "big") + data)
        t_old = (time.perf_counter() - t0) / n
        old_bytes = disk_use(old)
        t0 = time.perf_counter()
        for seq in range(1, n + 1):
            os.remove("%s/%d.rec" % (old, seq))
        t_old_ack = (time.perf_counter() - t0) / n

        new = os.path.join(root, "new")
        box = Outbox(new, 256 * 1024, 1024)
        t0 = time.perf_counter()
        for seq in range(1, n + 1):
            box.put(seq, data)
        t_new = (time.perf_counter() - t0) / n
        new_bytes = disk_use(new)
        t0 = time.perf_counter()
        for seq in range(1, n + 1):
            box.ack(seq)
        t_new_ack = (time.perf_counter() - t0) / n
    finally:
        shutil.rmtree(root)
    res = {"records": n, "record_bytes": len(data) + 30,
           "disk_bytes_ring": new_bytes, "disk_bytes_file_per_record": old_bytes,
           "disk_ratio_file_per_record_over_ring": round(old_bytes / new_bytes, 2),
           "put_us_ring": round(t_new * 1e6), "put_us_file_per_record": round(t_old * 1e6),
           "put_ratio_ring_over_file_per_record": round(t_new / t_old, 2),
           "ack_us_ring": round(t_new_ack * 1e6), "ack_us_file_per_record": round(t_old_ack * 1e6)}
    print(json.dumps(res))
    print("disk: ring %d KiB (fixed; holds ~%d records) vs one file per record %d KiB for %d records: %.1fx" % (
        new_bytes // 1024, 256 * 1024 // (len(data) + 30), old_bytes // 1024, n, old_bytes / new_bytes))
    print("put: ring %.0f us vs file per record %.0f us (ratio %.2f)" % (t_new * 1e6, t_old * 1e6, t_new / t_old))
    return res


if __name__ == "__main__":
    main()
