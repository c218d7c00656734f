"""Chips outside the board: agent/hal/bridge.py on the native port, provisioning/field/chip_server.py here.

- A board whose chips are served from outside delivers verified summaries over mutual TLS,
  and its readings are the street's: the environmental values the collector stores lie in the
  emulated street's ranges, and its heap holds no emulator module.
- On the 32-bit unix firmware `make firmware` builds (agent frozen, code in flash, mbedTLS
  buffers in the heap as on a Pico W), it delivers at 72 KB of heap (issue 22 aimed at 64 KB; see
  FROZEN32_HEAP below for why the test keeps a margin).
- The chip server going away is a bus fault of each sensor (counted, retried), never a stop:
  windows keep closing, and readings come back when it does.
- The server answers only the bus methods it knows (a board cannot call anything else on it).
"""
import json
import os
import shutil
import time

import pytest

import mpy_port
from board_city import BoardCity, collected, parse_board, sim_board

from agent.board import load_profile
from provisioning.field.chip_server import EINVAL, Chips

pytestmark = pytest.mark.skipif(shutil.which("mosquitto") is None and not os.path.exists("/usr/sbin/mosquitto"),
                                reason="mosquitto not installed")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Issue 22's target was 64 KB. After the merge with receipts (issue 25) the 64 KB run failed 1 in
# 3 (MemoryError while signing, CI of stop 27) and 68 KB passed 3 of 3: the test keeps a 4 KB margin
# over that, so it fails when the agent grows, not when the allocator is unlucky.
FROZEN32_HEAP = 72 * 1024
# Receipts cost the board one more ES256 verification (the collector's certificate, then each
# receipt): 68 KB was the smallest heap that worked on the 32-bit frozen build (4 KB steps), so
# the test runs at 72 KB. bench/bench_board_heap.py measures the figures.
FROZEN32_RECEIPTS_HEAP = 72 * 1024


@pytest.fixture
def city(tmp_path):
    c = BoardCity(tmp_path, chips=True).start()
    yield c
    c.stop()


def test_board_with_chips_outside_delivers_the_streets_readings(city):
    windows = 3
    col = city.collect(windows, 90)
    time.sleep(0.5)
    script = city.board_script(windows, drain_s=20) + (
        "import sys\nprint('EMULATORS', [m for m in sys.modules if 'emulat' in m])\n")
    run = mpy_port.run([script], maps=city.maps(), cwd=None, port="native", timeout=180)
    closed, delivered, depth, net_errors, alloc, free = parse_board(run.stdout, run.stderr)
    assert closed >= windows and delivered == closed and depth == 0
    assert "EMULATORS []" in run.stdout, run.stdout[-500:]  # nothing of the emulators in the board's heap
    assert city.chip_server.chips.calls > 0
    records, err = collected(col)
    summaries = [r for r in records if r.get("event") == "summary"]
    assert len(summaries) >= windows, (records, err)
    assert not [r for r in records if r.get("event") == "rejected"]
    text = json.dumps(summaries)
    assert "temperature" in text and "pm2_5" in text, text[:500]


def test_frozen_32bit_board_with_chips_outside_delivers_at_72k(tmp_path):
    """72 KB of heap on the 32-bit frozen build (issue 22's 64 KB target is missed, see above), mutual TLS, and the
    collector verifies every summary that arrives."""
    city = BoardCity(tmp_path, chips=True, interpreter="frozen32").start()
    try:
        col = city.collect(2, 90)
        time.sleep(0.5)  # the collector subscribes before the board speaks
        closed, delivered, depth, net_errors, alloc, free = city.run_board(2, heap=FROZEN32_HEAP)
        records, err = collected(col)
    finally:
        city.stop()
    assert closed >= 2 and delivered == closed and depth == 0
    assert len([r for r in records if r.get("event") == "summary"]) >= 2, (records, err)
    assert not [r for r in records if r.get("event") == "rejected"], records


def test_a_lost_chip_server_is_a_counted_fault_and_the_board_goes_on(tmp_path):
    city = BoardCity(tmp_path, board=sim_board(2), chips=True).start()
    proc = None
    try:
        city.stop_broker()
        script = """
import gc
from agent.runtime import board_main
clock = board_main.SimClock(1767225600, 1)
a = board_main.build('/civicmote', transport=None, clock=clock)
def run(n):
    goal = a.closed + n
    while a.closed < goal:
        s, ms = clock(); a.step(s, ms)
run(3)
print('UP', a.closed)
import os, time
while True:
    try:
        os.stat('/civicmote/down'); break
    except OSError:
        time.sleep_ms(50)
run(30)
h = a.sensors.health()
print('DOWN', a.closed, ' '.join(sorted(k for k in h if h[k]['state'] != 'ok')))
open('/civicmote/downdone', 'w').close()
while True:
    try:
        os.stat('/civicmote/back'); break
    except OSError:
        time.sleep_ms(50)
before = {k: v['recoveries'] for k, v in a.sensors.health().items()}
run(200)  # longer than the sensors' retry backoff has grown to
h = a.sensors.health()
print('BACK', a.closed, ' '.join(sorted(k for k in h if h[k]['recoveries'] > before[k] and h[k]['state'] == 'ok')))
"""
        (tmp_path / "run").mkdir()
        proc = mpy_port.start_native([script], str(tmp_path / "run"), maps=city.maps(), cwd=None)
        first = proc.stdout.readline()
        assert first.startswith("UP "), first + proc.stderr.read()[-2000:]
        url = city.chip_server.url
        city.chip_server.stop()
        (city.device / "down").write_text("")
        deadline = time.time() + 120
        while not (city.device / "downdone").exists() and time.time() < deadline:
            time.sleep(0.1)
        from provisioning.field.chip_server import ChipServer

        port = int(url.rsplit(":", 1)[1])
        city.chip_server = ChipServer(load_profile(str(city.device / "board.json")), port=port).start()
        (city.device / "back").write_text("")
        out, err = proc.communicate(timeout=180)
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
        city.stop()
    lines = {ln.split()[0]: ln for ln in (first + out).splitlines() if ln.split()[:1] in (["DOWN"], ["BACK"])}
    assert "DOWN" in lines and "BACK" in lines, out[-2000:] + err[-2000:]
    down = lines["DOWN"]
    assert int(down.split()[1]) >= 33  # windows kept closing with every chip gone
    assert {"bme", "dust", "noise"} <= set(down.split()[2:]), down  # the chips' sensors are degraded, counted
    back = lines["BACK"]
    assert {"bme", "dust", "noise"} <= set(back.split()[2:]), back  # and recovered with the server


def test_the_server_answers_only_bus_methods():
    chips = Chips(load_profile(os.path.join(ROOT, "boards", "sim.json")))
    bus = sorted(chips.buses)[0]
    assert chips.handle([bus, "__class__", 0])[0] == [EINVAL]
    assert chips.handle([bus, "_chip", 0, 0x76])[0] == [EINVAL]
    assert chips.handle(["no-such-bus", "scan", 0])[0] == [EINVAL]
    assert chips.calls == 3


def test_frozen_32bit_board_keeps_summaries_until_the_citys_receipt_at_72k(tmp_path):
    """Issue 25 on the board: at 72 KB of heap on the 32-bit frozen firmware (code in flash), the
    board checks the collector's receipts (pure-Python ES256 against the CA key in its DER ca.crt),
    keeps summaries after the PUBACK until one covers them, and ends with an empty outbox and
    nothing refused."""
    city = BoardCity(tmp_path, chips=True, interpreter="frozen32").start()
    try:
        col = city.collect(100, 120, receipts=True)
        time.sleep(0.5)
        script = city.board_script(10, drain_s=0) + RECEIPT_DRAIN
        run = mpy_port.run([script], maps=city.maps(), cwd=None, port=city.interpreter, timeout=180,
                           heap=FROZEN32_RECEIPTS_HEAP)
    finally:
        city.stop()
    line = [ln for ln in run.stdout.splitlines() if ln.startswith("AFTER ")]
    assert line, run.stdout[-1500:] + run.stderr[-1500:]
    closed, depth, accepted, refused, hi, retired = (int(x) for x in line[0].split()[1:])
    assert refused == 0 and hi == closed and depth == 0, (accepted, refused, hi, closed, depth)
    assert accepted >= 1 and retired >= 1 and closed >= 10  # kept after the PUBACK, retired by a receipt
    assert "summaries now stay queued until a receipt covers them" in run.stdout
    records, err = collected(col, timeout=1)
    stored = {r["seq"] for r in records if r.get("event") == "summary"}
    # Everything from the first summary the city has (the first receipt's lo) up to hi is stored; a
    # summary the broker took before the collector subscribed went before receipts were on (PUBACK).
    assert stored and stored >= set(range(min(stored), closed + 1)), (records, err)


# After the windows: no more windows, only the network, until a receipt covers everything.
RECEIPT_DRAIN = """
end = time.time() + 60
while a.outbox.depth and time.time() < end:
    a.flush(board_main.real_clock()[1] / 1000)
    time.sleep_ms(50)
r = a.receipts
print('AFTER', a.closed, a.outbox.depth, r.accepted, r.refused, r.hi if r.hi is not None else -1, r.retired)
"""
