"""One over-the-air update of a MicroPython board, over loopback: bytes on the wire, time, heap.

The city of tests/ota_board_support.py (Mosquitto with the update topics in its ACL, the block
server provisioning/city/ota_blocks.py, `civicmote collect` signing receipts) and a board running
board_main.start() as main.py does, its chips outside it (the chip server). The release is the
board bundle (the agent's .mpy set, as `provision --port` installs it). Measured:
- bytes on the wire per update (MQTT PUBLISH bytes both ways: order, release, blocks, requests,
  statuses; PUBACKs), against the anchor: the artefact's own size;
- time from the order to `staged` (downloaded, verified, unpacked into the second slot) and to
  `confirmed` (the new version's first summary covered by a city receipt);
- on the 32-bit frozen firmware (`make firmware`; the Pico W's stand-in, code in flash), the
  smallest heap (-X heapsize, bisection) in which the frozen agent downloads, verifies and stages
  the update, and the smallest in which the new version then runs from its slot (as .mpy files,
  whose bytecode the loader copies into the heap) and is confirmed; against the anchor: the same
  agent's smallest heap with no update (receipts on), measured in the same run.

Usage: python bench/bench_ota_board.py [--quick] [--interpreter native|frozen32]
(--quick: one update on the native port at its default heap, no bisection.)
"""
import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))
import mpy_port  # noqa: E402
from board_city import BoardFailed, collected  # noqa: E402
from ota_board_support import OtaCity, board_bundle  # noqa: E402

MQTT_HEAD = 7  # fixed header (2-3), topic length (2), packet id (2) of a QoS 1 PUBLISH
PUBACK = 4


class Wire:
    """PUBLISH bytes between the board and the city's update service, counted at the block server
    (requests in, replies out) and at a status subscriber."""

    def __init__(self, city):
        self.up = self.down = 0
        self.messages = 0
        server = city.server
        dev = city.device_id
        req_topic = len("civicmote/v1/north/%s/ota/req" % dev)
        down_topic = len("civicmote/v1/north/%s/ota/down" % dev)
        inner = server.handle

        def counting(topic, payload, now=None):
            out = inner(topic, payload, now)
            self.up += len(payload) + req_topic + MQTT_HEAD + PUBACK
            self.down += sum(len(p) + down_topic + MQTT_HEAD + PUBACK for _, p in out)
            self.messages += 1 + len(out)
            return out

        server.handle = counting


def factory(city):
    """The board as before any update: no updater state (the order is taken again), the manifest as
    signed for factory software."""
    shutil.rmtree(city.device / "ota", ignore_errors=True)
    (city.device / "manifest.cose").write_bytes(city.factory_manifest)


def one_update(city, heap, seq, until="confirmed", timeout=180):
    """Run the board at heap until the update with this seq reaches `until` ("staged": on trial in
    the new slot; "confirmed"); returns seconds from the order (seq 1: ordered 2 s after the board
    started; later ones: ordered before it starts, seconds from its start), or None."""
    factory(city)
    data = city.bundle
    rel = city.release(data, seq)
    if seq > 1:  # the order waits (retained) when the board starts: no older one is taken first
        city.order(rel, seq)
    board = city.board_process(heap=heap).start()
    try:
        if seq == 1:
            time.sleep(2)
            city.order(rel, seq)
        t0 = time.time()
        end = t0 + timeout
        while time.time() < end:
            state, journal = city.state()
            if until == "staged" and journal.step == "trial" or state.sw == seq:
                return time.time() - t0
            if state.st and state.st[0] in ("rolled_back", "refused") or board.resets > 6:
                return None  # refused, rolled back, or a factory agent that cannot run in this heap
            time.sleep(0.1)
        return None
    finally:
        board.stop()


def agent_only(city, heap):
    """True if the agent alone (no updates) closes and delivers 2 windows at heap."""
    factory(city)
    try:
        closed, delivered, depth = city.run_board(2, heap=heap, timeout=120)[:3]
    except BoardFailed:
        return False
    return closed >= 2 and delivered >= closed  # older summaries queued by earlier runs go too


def smallest(works, lo, hi, step):
    """The smallest heap in [lo, hi] (multiples of step) for which works(heap), by bisection."""
    if not works(hi):
        return None
    while hi - lo > step:
        mid = (lo + hi) // 2 // step * step
        if works(mid):
            hi = mid
        else:
            lo = mid
    return hi


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--interpreter", default=None)
    args = ap.parse_args(argv)
    interp = args.interpreter or ("native" if args.quick else "frozen32")
    if interp in mpy_port.FROZEN and not mpy_port.FROZEN[interp].exists():
        print(json.dumps({"skipped": "%s is not built (make firmware-unix)" % interp}))
        return 0
    folder = Path(tempfile.mkdtemp(prefix="bench-ota-"))
    # A long grace: the trial's first summaries queue behind what earlier runs left in the outbox;
    # what is measured here is the heap, not how fast a trial confirms.
    city = OtaCity(folder, interpreter=interp, chips=True, grace_s=120).start()
    col = city.collect(100000, 3600, receipts=True)
    out = {"interpreter": interp}
    try:
        city.bundle, files = board_bundle(folder)
        city.factory_manifest = (city.device / "manifest.cose").read_bytes()
        wire = Wire(city)
        took = one_update(city, None, 1, "confirmed")
        out.update(artefact_bytes=len(city.bundle), files=len(files), wire_bytes=wire.up + wire.down,
                   wire_up=wire.up, wire_down=wire.down, wire_messages=wire.messages,
                   wire_ratio=round((wire.up + wire.down) / len(city.bundle), 3),
                   seconds_to_confirmed=round(took, 1) if took else None)
        if not args.quick:
            seq = [1]

            def update_works(until):
                def works(heap):
                    seq[0] += 1
                    t = one_update(city, heap, seq[0], until)
                    print("  %s at %d KB: %s" % (until, heap // 1024, "%.1f s" % t if t else "no"), file=sys.stderr)
                    return t is not None
                return works

            anchor = smallest(lambda h: agent_only(city, h), 56 << 10, 128 << 10, 4 << 10)
            out["anchor_agent_heap_kb"] = anchor // 1024 if anchor else None
            staged = smallest(update_works("staged"), 64 << 10, 128 << 10, 4 << 10)
            def confirmed_works(heap):
                # A fresh city and board each time: what earlier runs left in the outbox would make
                # the trial's first receipt wait (the heap is what is measured here).
                sub = Path(tempfile.mkdtemp(prefix="bench-ota-", dir=folder))
                c = OtaCity(sub, interpreter=interp, chips=True, grace_s=120).start()
                k = c.collect(100000, 600, receipts=True)
                try:
                    c.bundle, c.factory_manifest = city.bundle, (c.device / "manifest.cose").read_bytes()
                    t = one_update(c, heap, 1, "confirmed")
                finally:
                    k.terminate()
                    c.stop()
                print("  confirmed at %d KB: %s" % (heap // 1024, "%.1f s" % t if t else "no"), file=sys.stderr)
                return t is not None

            confirmed = smallest(confirmed_works, 160 << 10, 320 << 10, 16 << 10)
            out["download_stage_heap_kb"] = staged // 1024 if staged else None
            out["trial_confirmed_heap_kb"] = confirmed // 1024 if confirmed else None
            if staged and anchor:
                out["download_stage_ratio"] = round(staged / 1024 / out["anchor_agent_heap_kb"], 3)
    finally:
        col.terminate()
        city.stop()
        shutil.rmtree(folder, ignore_errors=True)
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
