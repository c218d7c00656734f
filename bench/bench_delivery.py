"""Delivery cost of the simulated board (boards/sim.json): bytes on the wire and agent CPU per window.

1. Bytes on the wire per summary: the MQTT PUBLISH packet (QoS 1, our codec's encoding, with
   the real topic and the real signed summary) for each window of the agent on CPython. Anchor,
   computed in the same run over the same simulated street and windows: streaming the board's
   raw samples instead, every sensor read at its own rate as one compact JSON object with a
   timestamp (and every Bluetooth address seen), as provisioning/demo/rawcost.py defines it for the
   demo. Only the JSON text is counted for raw streaming (no MQTT framing per sample), which
   flatters the anchor. Target: at least 50x less on the wire.
2. Agent CPU time per window (time.process_time) doing what `civicmote run --fast` does
   (provisioning.device.runner.Runner, offline so the outbox keeps every summary): read sensors,
   aggregate, anonymise, sign, enqueue. Anchor in the same run: only polling the same sensors
   for the same simulated seconds, without aggregation, privacy, signing or the outbox. The
   agent's own sensor polls are timed too, so what it adds beyond reading them is printed.

Usage: python bench/bench_delivery.py [--quick]
"""
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from agent.board import load_profile, open_sensors  # noqa: E402
from agent.net import mqtt_codec  # noqa: E402
from agent.runtime import device  # noqa: E402
from agent.runtime.agent import topics  # noqa: E402
from agent.store import identity  # noqa: E402
from provisioning.device import runner  # noqa: E402
from provisioning.demo.rawcost import raw_stream_bytes  # noqa: E402

BOARD = ROOT / "boards" / "sim.json"
TARGET = 50
START = 1750000200  # a window boundary (300 s)
PREFIX = "civicmote/v1"
DISTRICT = "north"


def new_device(folder, board):
    identity.ensure_key(folder)
    device.create_ledger(folder, START)
    shutil.copyfile(board.source, folder + "/board.json")


def run_agent(folder, board, windows):
    """(CPU seconds, of which in sensor polls, {seq: message}, manifest, device_id) for `windows`
    windows, as `civicmote run --fast` does them."""
    signed = {}
    agent = runner.open_agent(folder, board, DISTRICT, broker=None, prefix=PREFIX, out_dir=None, now_s=START)
    agent.sink = lambda name, msg: signed.__setitem__(name, msg)
    in_poll = [0.0]
    poll = agent.sensors.poll

    def timed_poll(now_ms):  # how much of the agent's time is the (emulated) sensors themselves
        t = time.process_time()
        try:
            return poll(now_ms)
        finally:
            in_poll[0] += time.process_time() - t

    agent.sensors.poll = timed_poll
    cpu = time.process_time()
    runner.Runner(agent, fast=True, windows=windows).run(start_s=START)
    cpu = time.process_time() - cpu
    return cpu, in_poll[0], signed, agent.manifest, agent.dev


def poll_only(board, windows):
    """CPU seconds to poll the same sensors for the same simulated seconds (the anchor)."""
    sensors = open_sensors(board, START * 1000, identifier_sink=lambda metric, ident: None)
    cpu = time.process_time()
    for t in range(START, START + windows * board.window_s + 1):
        sensors.poll(t * 1000)
    cpu = time.process_time() - cpu
    sensors.close()
    return cpu


def main():
    quick = "--quick" in sys.argv
    windows = 1 if quick else 12
    board = load_profile(str(BOARD))
    tmp = tempfile.mkdtemp(prefix="bench-delivery-")
    try:
        folder = tmp + "/dev"
        os.mkdir(folder)
        new_device(folder, board)
        anchor_cpu = poll_only(board, windows)
        agent_cpu, agent_poll_cpu, signed, manifest, dev = run_agent(folder, board, windows)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    summary_topic, manifest_topic, _ = topics(PREFIX, DISTRICT, dev)
    msgs = [signed[k] for k in sorted(k for k in signed if k != "manifest")]
    wire = [len(mqtt_codec.publish(summary_topic, m, qos=1, packet_id=1)) for m in msgs]
    per_summary = sum(wire) / len(wire)
    manifest_wire = len(mqtt_codec.publish(manifest_topic, manifest, qos=1, retain=True, packet_id=1))
    raw = raw_stream_bytes(board, windows * board.window_s, START * 1000, device_id=dev) / windows
    ratio = raw / per_summary
    agent_ms = agent_cpu / windows * 1000
    anchor_ms = anchor_cpu / windows * 1000
    work_ms = (agent_cpu - agent_poll_cpu) / windows * 1000  # everything but reading the sensors
    res = {
        "board": board.name, "window_s": board.window_s, "windows": windows,
        "summary_cose_bytes": round(sum(len(m) for m in msgs) / len(msgs), 1),
        "summary_publish_bytes": round(per_summary, 1), "puback_bytes": 4,
        "manifest_publish_bytes_per_connection": manifest_wire,
        "raw_json_bytes_per_window": round(raw), "raw_vs_summary_ratio": round(ratio, 1),
        "target_ratio": TARGET, "meets_target": ratio >= TARGET,
        "agent_cpu_ms_per_window": round(agent_ms, 2), "poll_only_cpu_ms_per_window": round(anchor_ms, 2),
        "agent_vs_poll_ratio": round(agent_cpu / anchor_cpu, 2),
        "agent_cpu_ms_per_window_beyond_sensor_reads": round(work_ms, 2),
        "beyond_reads_vs_poll_ratio": round(work_ms / anchor_ms, 4),
        "agent_cpu_share_of_window": agent_cpu / windows / board.window_s,
    }
    print("board %s, %d windows of %d s (simulated street)" % (board.name, windows, board.window_s))
    print("summary on the wire (MQTT PUBLISH, QoS 1)   %8.1f bytes  (COSE %.1f + topic and header); PUBACK 4 back"
          % (per_summary, res["summary_cose_bytes"]))
    print("manifest, once per connection (retained)    %8d bytes" % manifest_wire)
    print("raw samples streamed as JSON, per window    %8d bytes" % round(raw))
    print("raw / summary                               %8.1fx  (target >= %dx: %s)"
          % (ratio, TARGET, "met" if res["meets_target"] else "NOT met"))
    print("agent CPU per window (run --fast work)      %8.2f ms  = %.4f%% of the window"
          % (agent_ms, 100 * res["agent_cpu_share_of_window"]))
    print("anchor: polling the sensors only, per window %7.2f ms" % anchor_ms)
    print("agent / polling only                        %8.2fx" % res["agent_vs_poll_ratio"])
    print("  of the agent's time, beyond its sensor reads %6.2f ms per window = %.2f%% of the anchor"
          % (work_ms, 100 * res["beyond_reads_vs_poll_ratio"]))
    print("  (windows, privacy, CBOR, signing, outbox, loop; the emulated sensors dominate on this board)")
    print(json.dumps(res))


if __name__ == "__main__":
    main()
