"""`civicmote status --port` and `civicmote logs --port`: a MicroPython board's own word (CPython only).

The commissioning check a technician runs over USB before leaving the pole. Both stop the
running agent while they talk to the board (the raw REPL does) and restart it when done.
Without --port, the one USB serial board attached is used (as `mpremote devs` would list it).
"""
import time

from provisioning.cli.common import add_command
from provisioning.errors import EXIT_FAILED
from provisioning.field import board_tools


def add_port_option(p, what="the board"):
    p.add_argument("--port", metavar="PORT", help="%s on this serial port (default: the one USB board attached)"
                   % what)


def register(sub, common):
    p = add_command(sub, "status", do_status, common,
                    "a MicroPython board's state over USB: identity, firmware, clock, Wi-Fi, broker, outbox, budget",
                    "Ask the board on --port (the agent on it answers): device id, district, firmware, its clock "
                    "and how far it is from this computer's, Wi-Fi (configured, connected, address), whether it "
                    "can connect to its broker with its own certificate (as DEVICE_ID-check), summaries waiting "
                    "in its outbox, what the city has stored of them (its last signed receipt: 'the city has "
                    "stored up to seq N at T'), and the privacy budget left today (one per person, across all "
                    "personal metrics). Restarts the agent afterwards. Exits 1 when something a working pole "
                    "needs is missing (no Wi-Fi settings, "
                    "Wi-Fi down, broker not reached, clock off by more than %d s)." % CLOCK_TOLERANCE_S)
    add_port_option(p)
    p = add_command(sub, "logs", do_logs, common,
                    "a MicroPython board's crash log and the agent's recent messages, over USB",
                    "Print the board's crash log (/crash.log: the newest tracebacks, kept under 4 KiB) and "
                    "the agent's recent messages (%s). Restarts the agent afterwards." % board_tools.MESSAGES_LOG)
    add_port_option(p)


CLOCK_TOLERANCE_S = 120


def _with_board(port, action):
    session = board_tools.open_board(board_tools.find_port(port))
    try:
        return action(session)
    finally:
        board_tools.restart(session)
        session.close()


def problems(r):
    """What a working pole still lacks, in plain words (empty: ready)."""
    found = []
    w = r.get("wifi") or {}
    if not w.get("configured"):
        found.append("no Wi-Fi settings (provision with --wifi-ssid)")
    elif w.get("connected") is False:
        found.append("Wi-Fi %r not connected" % w.get("ssid"))
    b = r.get("broker_connection") or {}
    if not r.get("broker"):
        found.append("no broker configured (provision with --broker)")
    elif b.get("checked") and not b.get("connected"):
        found.append("broker not reached (%s)" % (b.get("last_error") or "no answer"))
    off = r.get("clock_offset_s")
    if off is None or abs(off) > CLOCK_TOLERANCE_S:
        found.append("clock not set" if off is None else "clock off by %d s" % off)
    return found


def do_status(out, args):
    r = _with_board(args.port, lambda s: board_tools.status(s, time.time()))
    r["problems"] = problems(r)
    r["ok"] = not r["problems"]
    out.record(r, _human_status)
    return 0 if r["ok"] else EXIT_FAILED


def _human_status(r):
    w, b = r.get("wifi") or {}, r.get("broker_connection") or {}
    fw = r.get("firmware") or {}
    lines = ["device   %s (board %s, district %s) on %s" % (r.get("device_id"), r.get("board"), r.get("district"),
                                                          r["port"]),
             "firmware %s %s on %s %s" % (fw.get("name"), fw.get("version"), fw.get("platform"), fw.get("machine")),
             "clock    %s" % ("not set" if r.get("clock_offset_s") is None else "%+d s from this computer"
                              % r["clock_offset_s"]),
             "wi-fi    %s" % ("not configured" if not w.get("configured") else "%s, %s" % (
                 w.get("ssid"), {True: "connected " + str(w.get("ip")), False: "NOT connected",
                                 None: w.get("note", "unknown")}[w.get("connected")])),
             "broker   %s: %s" % (r.get("broker") or "none", "not checked" if not b.get("checked") else
                                  "connected" if b.get("connected") else "NOT reached (%s)" % b.get("last_error")),
             "outbox   %s summaries waiting" % r.get("outbox_depth"),
             "city     %s" % ((r.get("stored_up_to") or {}).get("text") or "no receipt yet (nothing proves the city "
                                                                           "stored this board's data)")]
    for metric, v in sorted((r.get("budget_today") or {}).items()):
        if isinstance(v, dict):
            lines.append("budget   %s: %s of %s left today" % (metric, v.get("left"), v.get("daily_epsilon")))
    lines.append("ready" if r["ok"] else "NOT ready: " + "; ".join(r["problems"]))
    return "\n".join(lines)


def do_logs(out, args):
    r = _with_board(args.port, board_tools.logs)
    out.record(r, lambda r: "== crash log (%s)\n%s\n== agent messages (%s)\n%s" % (
        board_tools.CRASH_LOG, (r["crash_log"] or "(none)").rstrip(), board_tools.MESSAGES_LOG,
        (r["messages"] or "(none)").rstrip()))
    return 0
