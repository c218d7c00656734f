"""The board agent on the native MicroPython unix port, end to end over mutual TLS.

A device folder written by the real `civicmote provision --target` code, the agent compiled
to .mpy as a board gets it, agent.runtime.board_main.run with a real clock, our MQTT client
over agent/net/socket_mpy.py and the port's mbedTLS (which parses only DER, as rp2 builds
did before mid-2026), a Mosquitto configured by `civicmote broker-config`, and
`civicmote collect` verifying every summary against the registry export.
"""
import shutil
import time

import pytest

import mpy_port
from board_city import BoardCity, collected, ledger_blocker, parse_board, wait_until

pytestmark = pytest.mark.skipif(shutil.which("mosquitto") is None and not __import__("os").path.exists(
    "/usr/sbin/mosquitto"), reason="mosquitto not installed")

# The smallest heap this agent is known to run in on the 64-bit port, with margin
# (bench/bench_board_heap.py finds the exact figures: 312 KB as .mpy after the second diet,
# from 384 KB). With the agent frozen into the unix firmware (code in flash, the emulated
# chips' code too) the board runs in far less: 192 KB is issue 12's target, met there.
BOARD_HEAP = 352 * 1024
TARGET_HEAP = 192 * 1024


needs_bounded_ledger = pytest.mark.skipif(ledger_blocker() is not None, reason=str(ledger_blocker()))


@pytest.fixture
def city(tmp_path):
    c = BoardCity(tmp_path).start()
    yield c
    c.stop()


def _summaries(records):
    return sorted(r["seq"] for r in records if r.get("event") == "summary")


def test_the_port_parses_only_der(city):
    """The TLS stack under these tests refuses PEM and takes DER: a board's view of credentials."""
    d = city.device
    probe = """
import ssl
from agent.net.tls_files import der
def load(cert, key):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    try:
        ctx.load_cert_chain(cert, key)
        return 'ok'
    except ValueError as e:
        return str(e)
cert = open('/civicmote/device.crt', 'rb').read()
key = open('/civicmote/device.pem', 'rb').read()
print('PEM', load(cert, key))
print('DER', load(open('/civicmote/device.der', 'rb').read(), der(key)))
print('SAME', der(cert) == open('/civicmote/device.der', 'rb').read())
"""
    proc = mpy_port.run([probe], maps=city.maps(), cwd=None, port="native")
    assert proc.returncode == 0, proc.stderr
    assert "PEM invalid" in proc.stdout, proc.stdout  # "invalid cert" / "invalid key"
    assert "DER ok" in proc.stdout
    assert "SAME True" in proc.stdout
    assert (d / "ca.der").exists() and (d / "device.der").exists()


@needs_bounded_ledger
def test_board_delivers_verified_summaries_over_mutual_tls(city, tmp_path):
    windows = 3
    col = city.collect(windows, 90)
    time.sleep(0.5)  # the collector subscribes before the board speaks
    closed, delivered, depth, net_errors, alloc, free = city.run_board(windows, heap=BOARD_HEAP)
    assert closed >= windows and delivered == closed and depth == 0, (closed, delivered, depth)
    records, err = collected(col)
    got = _summaries(records)
    assert len(got) >= windows, (records, err)
    assert got == list(range(got[0], got[0] + len(got))), got  # consecutive seqs, none lost
    assert not [r for r in records if r.get("event") == "rejected"], records
    assert [r for r in records if r.get("event") == "manifest"], "the signed manifest arrived"


@needs_bounded_ledger
def test_board_survives_a_broker_outage(city):
    """Broker stopped mid-run: windows keep closing into the outbox; after the restart every
    summary arrives, in order, verified."""
    windows = 8
    proc, tmp = city.start_board(windows, heap=BOARD_HEAP, drain_s=40)
    try:
        # Let it connect and deliver something, then pull the broker away for a few windows.
        assert wait_until(lambda: (city.device / "seq").exists(), 30)
        time.sleep(2.5)
        city.stop_broker()
        time.sleep(3.5)
        city.start_broker()
        col = city.collect(100, 60)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
        shutil.rmtree(tmp, ignore_errors=True)
    closed, delivered, depth, net_errors, alloc, free = parse_board(out, err)
    assert closed >= windows and depth == 0, (closed, delivered, depth)
    assert net_errors >= 0
    col.send_signal(2)
    records, err = collected(col)
    got = _summaries(records)
    # Mosquitto was restarted without persistence: what it had accepted before the outage was
    # delivered then; everything closed during and after the outage arrives now.
    assert got, (records, err)
    assert got[-1] >= closed - 1, (got, closed)
    assert not [r for r in records if r.get("event") == "rejected"], records


@needs_bounded_ledger
@pytest.mark.xfail(strict=True, reason="192 KB is not met with the code loaded into the heap as .mpy files (264 KB "
                   "even with the chips outside): a board needs the agent frozen (make firmware); see bench/bench_board_heap.py")
def test_board_delivers_at_a_192k_heap(city):
    closed, delivered, depth, net_errors, alloc, free = city.run_board(2, heap=TARGET_HEAP)
    assert closed >= 2 and delivered == closed and depth == 0


def test_frozen_board_delivers_at_192k(tmp_path):
    """The agent frozen into the 64-bit unix firmware (`make firmware`), the emulated chips in
    the board: 192 KB of heap, mutual TLS, every window delivered."""
    city = BoardCity(tmp_path, interpreter="frozen").start()
    try:
        closed, delivered, depth, net_errors, alloc, free = city.run_board(2, heap=TARGET_HEAP)
    finally:
        city.stop()
    assert closed >= 2 and delivered == closed and depth == 0


@needs_bounded_ledger
def test_heap_bench_quick_mode(capsys):
    """bench/bench_board_heap.py --quick finds a working cap for the agent and for TLS alone."""
    import importlib.util
    import json
    from pathlib import Path

    path = Path(__file__).resolve().parent.parent / "bench" / "bench_board_heap.py"
    spec = importlib.util.spec_from_file_location("bench_board_heap", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    assert bench.main(["--quick"]) == 0
    res = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert res["tls_only_smallest_heap_bytes"] and res["agent_smallest_heap_bytes"]
    assert res["tls_only_smallest_heap_bytes"] < res["agent_smallest_heap_bytes"] <= BOARD_HEAP
    assert res["chips_outside_frozen32_smallest_heap_bytes"] < res["chips_outside_frozen64_smallest_heap_bytes"]
    assert res["chips_outside_frozen64_smallest_heap_bytes"] < res["chips_outside_agent_smallest_heap_bytes"]
    assert 0 < res["cpu_s_per_window_agent"] < res["cpu_s_per_window_sim_board"]
    assert res["cpu_s_per_window_emulators"] > 0
    assert 0 < res["live_heap_32bit_board_agent_bytes"] < res["agent_smallest_heap_bytes"]
