"""`civicmote run`: the agent on CPython (a Raspberry Pi, or a simulated device folder)."""
import time
from pathlib import Path

from provisioning import broker_url
from provisioning import files
from provisioning.device import devicedir
from provisioning.device import actions, runlock, runner
from provisioning.cli.common import add_command
from provisioning.errors import EXIT_ENVIRONMENT, EXIT_STATE, UsageError

DEFAULT_PREFIX = "civicmote/v1"


def register(sub, common):
    p = add_command(sub, "run", do_run, common,
                    "run the agent: read sensors, sign a summary per window, deliver it",
                    "Run the agent on CPython from its device folder: read the board's sensors, close a "
                    "window every window_s seconds on wall-clock boundaries, release personal metrics "
                    "only through differential privacy, sign each summary and deliver it to the broker "
                    "through the crash-safe outbox. Without a broker (none given, none in config.json) "
                    "summaries wait in the outbox. Stops on SIGTERM/Ctrl-C after draining the outbox. With a "
                    "broker, stopping with summaries undelivered exits 3 (broker out of reach) or 4 (the broker "
                    "refused the device: revoked, unknown certificate, ACL), saying why on stderr. Exits 4 "
                    "if another agent already runs on the folder (DIR/agent.lock names it), 3 if the device's state is "
                    "damaged (a file where a folder should be or the reverse, unreadable, read-only), naming the file.")
    p.add_argument("--device-dir", required=True, metavar="DIR", help="the device's state folder")
    p.add_argument("--board", metavar="FILE", help="board profile (default: DIR/board.json)")
    p.add_argument("--broker", metavar="URL", help="mqtt://HOST:PORT or mqtts://HOST:PORT "
                   "(default: the broker in DIR/config.json)")
    p.add_argument("--district", metavar="D", help="district for the topics (default: from the device folder)")
    p.add_argument("--out", metavar="DIR", help="also write every signed message as DIR/{seq}.cose and "
                   "DIR/manifest.cose")
    p.add_argument("--windows", type=int, metavar="N", help="stop after N closed windows")
    p.add_argument("--fast", action="store_true", help="simulated clock: windows close as fast as the work "
                   "allows (for simulated boards)")
    p.add_argument("--start", type=int, metavar="UNIX_S", help="with --fast: the simulated start time "
                   "(default: now)")
    p.add_argument("--drain", type=float, default=30.0, metavar="S",
                   help="seconds to wait for queued summaries to reach the broker when stopping (default 30)")


def do_run(out, args):
    d = Path(args.device_dir)
    try:
        if not d.is_dir():
            return _run(out, args, d)
        # Before anything in the folder is read: a second agent there is refused (exit 4).
        lock = runlock.RunLock(d).acquire()
        try:
            return _run(out, args, d)
        finally:
            lock.release()
    except OSError as e:  # damaged device state: one line naming the file (exit 3), never a traceback
        raise actions.state_error(e, d, "run the agent on its state")


def _run(out, args, d):
    devicedir.check_state(d)
    devicedir.load_identity(d)  # a clear error if the folder has no identity
    board = files.load_board(args.board or d / devicedir.BOARD_FILE)
    config = runner.read_config(str(d))
    record = devicedir.read_device(d)
    district = args.district or config.get("district") or record.get("district") or "unassigned"
    prefix = config.get("topic_prefix", DEFAULT_PREFIX)
    url = args.broker or config.get("broker")
    broker = broker_url.parse(url, "--broker" if args.broker else "%s/config.json: broker" % d) if url else None
    if args.windows is not None and args.windows < 1:
        raise UsageError("--windows must be at least 1")
    start = args.start if args.start is not None else int(time.time())
    if args.fast:
        start -= start % board.window_s  # begin on a window boundary so the first window is whole
    agent = runner.open_agent(str(d), board, district, broker, prefix, args.out, start)
    first_close = start - start % board.window_s + board.window_s
    started = {"event": "started", "device_id": agent.dev, "board": board.name, "district": district,
               "broker": url, "window_s": board.window_s, "first_window_closes": first_close,
               "simulated_clock": bool(args.fast)}
    out.record(started, lambda r: "device %s (%s, district %s) %s; window %d s%s\nfirst window closes at %s UTC%s" % (
        r["device_id"], r["board"], r["district"], "-> " + url if url else "offline (summaries stay in the outbox)",
        r["window_s"], ", simulated clock" if args.fast else "",
        time.strftime("%H:%M:%S", time.gmtime(first_close)),
        "" if args.fast else " (in %d s)" % max(0, first_close - int(time.time()))))

    def on_summary(seq):
        _, t0, t1, size = agent.last
        rec = {"event": "summary", "device_id": agent.dev, "seq": seq, "t0": t0, "t1": t1, "bytes": size,
               "queued": agent.outbox.depth, "delivered": agent.delivered}
        out.record(rec, lambda r: "seq %-5d %s  %4s bytes  queued %-3d delivered %d" % (
            r["seq"], time.strftime("%Y-%m-%d %H:%M", time.gmtime(r["t0"])), r["bytes"], r["queued"],
            r["delivered"]))

    run = runner.Runner(agent, fast=args.fast, windows=args.windows, on_summary=on_summary, drain_s=args.drain)
    runner.install_signal_handlers(run)
    run.run(start_s=start)
    final = {"event": "stopped", "device_id": agent.dev, "windows": agent.closed, "delivered": agent.delivered,
             "queued": agent.outbox.depth}
    code, why = undelivered(agent, url, args.drain)
    if why:
        final["undelivered_reason"] = why
    out.record(final, lambda r: "stopped after %d windows: %d delivered, %d still queued" % (
        r["windows"], r["delivered"], r["queued"]))
    if why:
        out.error("%d summaries not delivered: %s" % (agent.outbox.depth, why))
    return code


def undelivered(agent, url, drain_s):
    """(exit code, reason) when summaries stay queued although a broker was given: 4 if the broker refused
    the device (revoked, certificate, ACL), 3 if it could not be reached or did not acknowledge in time."""
    from provisioning.device import link

    t = agent.transport
    if t is None or not agent.outbox.depth:
        return 0, None
    reason = getattr(t, "refusal", None) or t.last_error
    if reason and link.refused(reason):
        return EXIT_STATE, "the broker %s refused the device (%s); check the registry and the broker's CRL" % (
            url, reason)
    if reason:
        return EXIT_ENVIRONMENT, "the broker %s is out of reach (%s); summaries stay in the outbox and go when it " \
            "is back" % (url, reason)
    return EXIT_ENVIRONMENT, "the broker %s did not acknowledge them within --drain %g s" % (url, drain_s)
