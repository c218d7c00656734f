"""What streaming a board's raw samples would cost, for comparison with its signed summaries (CPython only).

The "central brain" design sends every reading as it is taken: one JSON object per sensor
read, with a timestamp and the device id, and every Bluetooth address seen. This runs the
board's (emulated) sensors at their own rates for `seconds` and counts those bytes; the
addresses are counted as their 17-character text form and never kept.
"""
import json

from agent.board import open_sensors


def raw_stream_bytes(board, seconds, start_ms, device_id="cmxxxxxxxxxxxxxxxx"):
    """Bytes of JSON (compact, one object per reading and per identifier) over `seconds`."""
    ids = [0]

    def sink(metric, ident):
        ids[0] += 1

    sensors = open_sensors(board, start_ms, identifier_sink=sink)
    total = 0
    try:
        for t in range(seconds):
            now_ms = start_ms + t * 1000
            for name, values in sensors.poll(now_ms).items():
                rec = {"t": now_ms / 1000, "dev": device_id, "sensor": name}
                rec.update(values)
                total += len(json.dumps(rec, separators=(",", ":"))) + 1
            if ids[0]:
                rec = {"t": now_ms / 1000, "dev": device_id, "sensor": "ble", "addr": "aa:bb:cc:dd:ee:ff"}
                total += ids[0] * (len(json.dumps(rec, separators=(",", ":"))) + 1)
                ids[0] = 0
    finally:
        sensors.close()
    return total
