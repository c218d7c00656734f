"""Smallest heap the board agent runs in, and its CPU per window: MicroPython, sim profile.

Provisions a device with the real `civicmote provision --target` code, configures Mosquitto
with `civicmote broker-config`, and runs agent.runtime.board_main.run at decreasing
`-X heapsize=` caps (bisection), counting a cap as working when the agent closes WINDOWS
windows and the broker acknowledges every summary (mutual TLS). Measured:
- the anchor: the smallest heap in which the stock unix port (PyPI wheel) opens one
  mutual-TLS connection to the same broker with the same DER credentials and nothing else;
- the agent as .mpy files on the filesystem (what `civicmote provision --port` deploys to a
  stock MicroPython): the loader copies every module's bytecode into the heap;
- with the sim board's chips outside it (provisioning/field/chip_server.py, read through
  agent/hal/bridge.py), as a real board's are: the .mpy agent on the stock port, and the
  agent frozen into the unix firmware `make firmware` builds, 64-bit and 32-bit. The 32-bit
  frozen build is the closest thing to a Pico W here: code in flash, 32-bit objects, and
  its mbedTLS takes its record buffers from the MicroPython heap as rp2's does (the stock
  wheel's does not). Target for it <= 64 KB (moonshot 48 KB).
- beside it, the Pico W image's own GC heap (its ELF's __GcHeapStart..__GcHeapEnd) and the
  mbedTLS record buffers one connection takes from it (the source tree's config).

CPU per window (bench/board_cpu_probe.py): the sim board offline at one step per second for
whole windows of the profile's length, the emulators' time (chips, street, signals) measured
apart and subtracted: what is left is the agent's own work, what a real board without
emulators does per window. Times are the interpreter's (single-threaded, never sleeping).

Usage: python bench/bench_board_heap.py [--quick] [--windows N]
(--quick: 2 windows, coarser steps, a 30 s CPU window; a test in make test runs it.)
"""
import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "bench"))
import mpy_port  # noqa: E402
from board_city import BoardCity, BoardFailed, ledger_blocker, sim_board  # noqa: E402
from board_cpu_probe import run_cpu  # noqa: E402

TARGET = 64 * 1024  # the 32-bit frozen build, chips outside
MOONSHOT = 48 * 1024

TLS_ONLY = """
from agent.net import socket_mpy, tls_files
import json
cfg = json.load(open('/civicmote/config.json'))
creds = tls_files.load('/civicmote', cfg['tls'])
host, port = cfg['broker'].split('//')[1].split(':')
s = socket_mpy.opener(creds)(host, int(port), 5.0)
s.close()
print('BOARD 1 1 0 0 0 0')
"""


def _run(city, script, heap, timeout=120):
    """(stdout, stderr) of one run of script on the city's interpreter at heap bytes."""
    tmp = tempfile.mkdtemp(prefix="heap-")
    try:
        proc = mpy_port.start_native([script], tmp, maps=city.maps(), cwd=None, heap=heap, port=city.interpreter)
        start = time.time()
        while proc.poll() is None and time.time() - start < timeout:
            time.sleep(0.05)
        if proc.poll() is None:
            proc.kill()
        out, err = proc.communicate()
        return out, err
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def works(city, script, heap, windows):
    out, err = _run(city, script, heap)
    try:
        closed, delivered, depth = [int(x) for x in _board_line(out)[:3]]
    except BoardFailed:
        return False
    return closed >= windows and delivered >= closed and depth == 0


def _board_line(out):
    for line in out.splitlines():
        if line.startswith("BOARD "):
            return line.split()[1:]
    raise BoardFailed(out)


def smallest(city, script, windows, lo, hi, step):
    """The smallest heap in [lo, hi] (a multiple of step) at which script works; None if hi fails."""
    if not works(city, script, hi, windows):
        return None
    lo_k, hi_k = lo // step, hi // step  # hi works; lo is assumed to fail
    while hi_k - lo_k > 1:
        mid = (lo_k + hi_k) // 2
        if works(city, script, mid * step, windows):
            hi_k = mid
        else:
            lo_k = mid
    return hi_k * step


def pico_w_heap():
    """(GC heap bytes of the built Pico W image, from its ELF's __GcHeapStart..__GcHeapEnd, and
    the mbedTLS record buffers rp2 takes from that heap per connection), None where not built."""
    elf = ROOT / "build" / "firmware" / "pico-w" / "firmware.elf"
    gc_heap = None
    nm = shutil.which("arm-none-eabi-nm") or shutil.which("nm")
    if elf.exists() and nm:
        out = subprocess.run([nm, str(elf)], capture_output=True, text=True).stdout
        syms = {ln.split()[2]: int(ln.split()[0], 16) for ln in out.splitlines() if len(ln.split()) == 3}
        if "__GcHeapStart" in syms and "__GcHeapEnd" in syms:
            gc_heap = syms["__GcHeapEnd"] - syms["__GcHeapStart"]
    tls = None
    for conf in sorted((ROOT / "build" / "firmware" / "src").glob("*/*/extmod/mbedtls/mbedtls_config_common.h")):
        text = conf.read_text()
        lens = dict(re.findall(r"#define (MBEDTLS_SSL_(?:MAX|IN|OUT)_CONTENT_LEN)\s+\((\w+)\)", text))
        val = lambda k: int(lens[k]) if lens[k].isdigit() else val(lens[k])  # noqa: E731
        tls = val("MBEDTLS_SSL_IN_CONTENT_LEN") + val("MBEDTLS_SSL_OUT_CONTENT_LEN")
    return gc_heap, tls


WASM_BASE = "import gc, sys\ngc.collect()\nprint('BASE', gc.mem_alloc())\n"
WASM_AGENT = """
from agent.runtime import board_main
clock = board_main.SimClock(1767225600, 60)
a = board_main.build('/civicmote', transport=None, clock=clock)
while a.closed < 5:
    s, ms = clock(); a.step(s, ms)
"""
WASM_LIVE = "gc.collect()\nprint('LIVE', gc.mem_alloc())\n"


def live_32bit(folder):
    """Live heap (bytes, after a collection) of the whole board agent on the 32-bit WebAssembly
    port: the sim board offline after 5 windows, as .mpy. Each figure is its own runPython call
    (a collection inside the call that did the work reclaims little in that port)."""
    city = BoardCity(folder, board=sim_board(60)).start()
    try:
        city.stop_broker()
        proc = mpy_port.run([WASM_BASE, WASM_AGENT, WASM_LIVE], maps=city.maps(), cwd=None, port="wasm")
    finally:
        city.stop()
    got = dict(line.split()[:2] for line in proc.stdout.splitlines() if line.startswith(("BASE ", "LIVE ")))
    if "LIVE" not in got:
        raise BoardFailed(proc.stdout[-2000:] + proc.stderr[-2000:])
    return int(got["LIVE"]) - int(got["BASE"])


def cpu_per_window(folder, window_s, windows):
    """{sensor: (read s, emulator s)} and (windows, total s, emulator s) of the offline sim board."""
    city = BoardCity(folder, board=sim_board(window_s)).start()
    try:
        city.stop_broker()
        return run_cpu(city, windows)
    finally:
        city.stop()


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="2 windows, 32 KB resolution, a 30 s CPU window")
    ap.add_argument("--windows", type=int, default=None, help="windows per run (default 20, 2 with --quick)")
    args = ap.parse_args(argv)
    windows = args.windows or (2 if args.quick else 20)
    step = 32 * 1024 if args.quick else 8 * 1024
    cpu_window_s, cpu_windows = (30, 1) if args.quick else (300, 3)
    blocker = ledger_blocker()
    if blocker:
        print("bench_board_heap: cannot run the agent in a capped heap yet: %s" % blocker, file=sys.stderr)
        return 3
    if not all(mpy_port.FROZEN[k].exists() for k in ("frozen", "frozen32")):
        print("bench_board_heap: the frozen unix firmware is not built; run `make firmware-unix`", file=sys.stderr)
        return 3
    fine = 4 * 1024 if not args.quick else 16 * 1024
    with tempfile.TemporaryDirectory() as tmp:
        city = BoardCity(tmp + "/heap").start()
        try:
            tls = smallest(city, TLS_ONLY, 1, 0, 1024 * 1024, step)
            agent = smallest(city, city.board_script(windows, drain_s=20), windows, 0, 1024 * 1024, step)
        finally:
            city.stop()
        outside = {}
        for interp, hi, res_step in (("native", 1024 * 1024, step), ("frozen", 512 * 1024, fine),
                                     ("frozen32", 256 * 1024, fine)):
            city = BoardCity(tmp + "/" + interp, chips=True, interpreter=interp).start()
            try:
                outside[interp] = smallest(city, city.board_script(windows, drain_s=20), windows, 0, hi, res_step)
            finally:
                city.stop()
        per, (cpu_n, cpu_total, cpu_emu) = cpu_per_window(tmp + "/cpu", cpu_window_s, cpu_windows)
        live32 = live_32bit(tmp + "/wasm")
    gc_heap, tls_bufs = pico_w_heap()
    heap32 = outside["frozen32"]
    agent_s = (cpu_total - cpu_emu) / cpu_n
    res = {"windows": windows, "resolution_bytes": step, "frozen_resolution_bytes": fine,
           "tls_only_smallest_heap_bytes": tls, "agent_smallest_heap_bytes": agent,
           "chips_outside_agent_smallest_heap_bytes": outside["native"],
           "chips_outside_frozen64_smallest_heap_bytes": outside["frozen"],
           "chips_outside_frozen32_smallest_heap_bytes": heap32,
           "pico_w_gc_heap_bytes": gc_heap, "rp2_mbedtls_record_buffers_bytes": tls_bufs,
           "target_bytes": TARGET, "moonshot_bytes": MOONSHOT,
           "ratio_agent_to_tls_only": round(agent / tls, 2) if agent and tls else None,
           "ratio_frozen32_to_pico_w_heap": round(heap32 / gc_heap, 3) if heap32 and gc_heap else None,
           "live_heap_32bit_board_agent_bytes": live32,
           "cpu_window_s": cpu_window_s,
           "cpu_s_per_window_sim_board": round(cpu_total / cpu_n, 3),
           "cpu_s_per_window_emulators": round(cpu_emu / cpu_n, 3),
           "cpu_s_per_window_agent": round(agent_s, 3),
           "cpu_s_per_window_agent_by_sensor": {k: round((v[0] - v[1]) / cpu_n, 4) for k, v in sorted(per.items())},
           "meets_target": bool(heap32 and heap32 <= TARGET),
           "meets_moonshot": bool(heap32 and heap32 <= MOONSHOT)}
    print("MicroPython, sim profile, mutual TLS, %d windows, %d-byte steps (%d frozen)" % (windows, step, fine))
    print("stock unix port (64-bit wheel), .mpy files:")
    print("  one TLS connection only (anchor)                 %7s bytes" % tls)
    print("  board agent, emulated chips in the board         %7s bytes" % agent)
    print("  board agent, chips outside                       %7s bytes" % outside["native"])
    print("the firmware `make firmware` builds, agent frozen, chips outside:")
    print("  unix 64-bit                                      %7s bytes" % outside["frozen"])
    print("  unix 32-bit (mbedTLS buffers in the heap)        %7s bytes  target <= %d: %s, moonshot <= %d: %s"
          % (heap32, TARGET, "met" if res["meets_target"] else "NOT met", MOONSHOT,
             "met" if res["meets_moonshot"] else "NOT met"))
    print("  beside: the Pico W image's GC heap %s bytes; rp2's mbedTLS record buffers per connection %s bytes"
          % (gc_heap, tls_bufs))
    print("live heap, whole board agent on the 32-bit WebAssembly port (.mpy, offline): %d bytes" % live32)
    print("per %d-s window (sim board, offline, 1 step/s): %.3f s in all, %.3f s emulators, %.3f s the agent's own"
          % (cpu_window_s, res["cpu_s_per_window_sim_board"], res["cpu_s_per_window_emulators"], agent_s))
    print("  the agent's own time by sensor: %s" % ", ".join(
        "%s %.3f s" % kv for kv in res["cpu_s_per_window_agent_by_sensor"].items()))
    print(json.dumps(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
