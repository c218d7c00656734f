"""`civicmote sensors read`: a technician's wiring check, every sensor once a second (CPython only)."""
import time

from agent.board import open_sensors
from provisioning import files
from provisioning.cli.common import add_command, add_group
from provisioning.errors import EXIT_FAILED, UsageError


def register(sub, common):
    g = add_group(sub, "sensors", "check a board's sensors")
    p = add_command(g, "read", do_read, common, "read every sensor of a board once a second and show a live table",
                    "Read every sensor of the board once a second and show the readings with their units, "
                    "each sensor's state and its fault counts (a wiring check). On the sim board it reads the "
                    "emulated chips. Identifiers (Bluetooth addresses) are only counted, never shown. "
                    "--json prints one JSON object per second. Exits 1 if a sensor never gave a reading.")
    p.add_argument("--board", metavar="FILE", help="read on this computer with this board profile (boards/*.json); "
                   "without it, the MicroPython board on --port reads its own sensors")
    p.add_argument("--port", metavar="PORT", help="the MicroPython board on this serial port reads its own sensors "
                   "with the profile it holds (default: the one USB board attached)")
    p.add_argument("--seconds", type=int, default=10, metavar="N", help="how long to read (default 10)")


def do_read(out, args):
    if args.seconds < 1:
        raise UsageError("--seconds must be at least 1")
    if args.port or not args.board:
        return _read_on_board(out, args)
    board = files.load_board(args.board)
    seen_ids = {}

    def sink(metric, ident):  # count identifiers only; the bytes are dropped here
        seen_ids[metric] = seen_ids.get(metric, 0) + 1

    units = {}
    for name, spec in board.metrics.items():
        units[(spec["sensor"], spec["reading"])] = spec.get("unit", "")
    sensors = open_sensors(board, int(time.time() * 1000), identifier_sink=sink)
    latest = {s.name: None for s in sensors.sensors}
    live = _Live(out)
    try:
        t_end = time.monotonic() + args.seconds
        while True:
            now_ms = int(time.time() * 1000)
            for name, values in sensors.poll(now_ms).items():
                latest[name] = values
            health = sensors.health()
            live.show(_frame(board, units, latest, health, seen_ids, int(time.time())))
            if time.monotonic() >= t_end:
                break
            time.sleep(max(0.0, 1.0 - time.time() % 1.0))
    finally:
        live.stop()
        sensors.close()
    return _verdict(out, latest)


def _units(board):
    return {(spec["sensor"], spec["reading"]): spec.get("unit", "") for spec in board.metrics.values()}


def _frame(board, units, latest, health, seen_ids, t):
    rows = []
    for name in board.sensors:
        vals = latest.get(name)
        st = health.get(name) or {"state": "missing", "faults": {}, "last_error": None}
        if vals:
            text = ", ".join("%s %s%s" % (k, _fmt(v), _unit(units.get((name, k)))) for k, v in sorted(vals.items()))
        else:
            text = "(%s)" % st["last_error"] if st.get("last_error") else "-"
        rows.append({"sensor": name, "driver": board.sensors[name]["driver"], "state": st["state"],
                     "faults": st["faults"], "last_error": st.get("last_error"), "readings": vals, "text": text})
    return {"t": t, "sensors": rows, "identifiers_seen": dict(seen_ids)}


def _read_on_board(out, args):
    """The board on --port polls its own sensors; frames arrive over USB once a second."""
    import json

    from agent.board import load_profile
    from provisioning.field import board_tools

    session = board_tools.open_board(board_tools.find_port(args.port))
    latest = {}
    live = _Live(out)
    try:
        raw, _ = board_tools.board_profile(session)
        src = "%s:%s/board.json" % (session.port, board_tools.DEVICE_DIR)
        try:
            board = load_profile(json.loads(raw), source=src)
        except ValueError as e:
            raise UsageError("%s: %s" % (src, e))
        units = _units(board)
        latest.update({name: None for name in board.sensors})

        def on_frame(f):
            for name, values in (f.get("readings") or {}).items():
                latest[name] = values
            live.show(dict(_frame(board, units, latest, f.get("health") or {}, f.get("ids") or {}, f["t"]),
                           port=session.port))

        board_tools.read_sensors(session, args.seconds, on_frame)
    finally:
        live.stop()
        board_tools.restart(session)
        session.close()
    return _verdict(out, latest)


def _verdict(out, latest):
    silent = [s for s, v in latest.items() if v is None]
    if silent:
        out.note("no reading from: %s (check wiring, address and bus in the profile)" % ", ".join(silent))
        return EXIT_FAILED
    return 0


def _fmt(v):
    return "%.2f" % v if isinstance(v, float) else str(v)


def _unit(u):
    return " " + u if u else ""


class _Live:
    """A rich live table on a terminal; plain lines when piped; JSON lines with --json."""

    def __init__(self, out):
        self.out = out
        self.live = None
        if not out.json and out.stdout.isatty():
            from rich.live import Live

            self.live = Live(refresh_per_second=4, transient=False)
            self.live.start()

    def show(self, frame):
        if self.out.json:
            rec = dict(frame, sensors=[{k: r[k] for k in ("sensor", "driver", "state", "faults", "last_error", "readings")}
                                       for r in frame["sensors"]])
            self.out.record(rec)
        elif self.live is not None:
            from rich.table import Table

            t = Table(title="sensors at %s UTC" % time.strftime("%H:%M:%S", time.gmtime(frame["t"])))
            for col in ("sensor", "driver", "state", "readings", "faults"):
                t.add_column(col)
            for r in frame["sensors"]:
                faults = ", ".join("%s %d" % kv for kv in sorted(r["faults"].items())) or "-"
                t.add_row(r["sensor"], r["driver"], r["state"], r["text"], faults)
            self.live.update(t)
        else:
            stamp = time.strftime("%H:%M:%S", time.gmtime(frame["t"]))
            for r in frame["sensors"]:
                self.out.say("%s %-8s %-8s %s" % (stamp, r["sensor"], r["state"], r["text"]))

    def stop(self):
        if self.live is not None:
            self.live.stop()
