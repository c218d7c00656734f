"""`civicmote batch FILE.csv`: provision many devices, in parallel, past failures (CPython only).

CSV with a header: board, target, district and optionally location (paths relative to the
CSV's folder). The whole file is checked before anything is done (csv_plan.py): unknown
columns, unbalanced quotes, missing fields and duplicate targets are refused with their line.
`--jobs N` provisions N devices at a time; each ssh device uses one connection for all its
steps. One result per row (a progress bar on a terminal, JSON lines with --json, plain lines
otherwise), then a summary line, also when stopped by Ctrl-C/SIGTERM or a CA error: devices in
flight finish (their certificates are recorded as they are issued), the rest are not started.
A re-run skips rows whose target is already registered as active in the same district. The CA
is unlocked at most once per batch.
"""
import signal
import sys
import threading
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from pathlib import Path

from provisioning.cli.common import add_command
from provisioning.cli.csv_plan import read_rows
from provisioning.cli.provision import add_common_options, provision
from provisioning.errors import EXIT_FAILED, EXIT_INTERRUPTED, ProvisioningError, UsageError
from provisioning.field import target_url, targets
from provisioning.pki import ca as ca_mod
from provisioning.pki.registry import Registry, default_path

MAX_JOBS = 32


def register(sub, common):
    p = add_command(sub, "batch", do_batch, common,
                    "provision every device listed in a CSV file (board,target,district,location)",
                    "Provision one device per CSV row (header: board,target,district[,location]; paths are "
                    "relative to the CSV's folder). The file is checked first: unknown columns, unbalanced "
                    "quotes, empty fields and duplicate targets are refused (exit 2) naming the line. "
                    "Continues past a failing device, prints a summary (also when interrupted) and exits 1 if "
                    "any failed, 130 if interrupted; a re-run skips devices already provisioned.")
    p.add_argument("csv", metavar="FILE.csv", help="the device list")
    p.add_argument("--jobs", type=int, default=1, metavar="N",
                   help="devices provisioned at the same time (default 1, at most %d)" % MAX_JOBS)
    add_common_options(p)


class _SharedCA:
    """The LazyCA behind a lock: workers unlock it once between them."""

    def __init__(self, lazy):
        self.lazy = lazy
        self.lock = threading.Lock()

    def get(self):
        with self.lock:
            return self.lazy.get()

    def cert_pem(self):
        return self.lazy.cert_pem()


class _Stop:
    """Set by SIGINT/SIGTERM: no new device starts; those in flight finish."""

    def __init__(self):
        self.reason = None

    def __call__(self, signum, frame):
        if self.reason is None:
            self.reason = "interrupted (%s)" % signal.Signals(signum).name
            sys.stderr.write("civicmote: %s: finishing the devices in flight, starting no more\n" % self.reason)
            sys.stderr.flush()


def do_batch(out, args):
    if not 1 <= args.jobs <= MAX_JOBS:
        raise UsageError("--jobs %d: must be between 1 and %d" % (args.jobs, MAX_JOBS))
    base = Path(args.csv).parent
    rows = read_rows(args.csv)
    registry_path = args.registry or default_path()
    Registry(registry_path, create=True).close()  # a bad registry path is refused before any device
    shared_ca = _SharedCA(ca_mod.LazyCA(args.ca))
    counts = {"provisioned": 0, "updated": 0, "unchanged": 0, "skipped": 0, "failed": 0, "not_started": 0}
    failures = []
    show = _Display(out, len(rows))
    stop = _Stop()
    fatal = None

    def work(line, row):
        registry = Registry(registry_path, create=True)  # SQLite: one connection per thread; it locks itself
        try:
            return _one(row, line, base, registry, shared_ca, args)
        finally:
            registry.close()

    old = {}
    if threading.current_thread() is threading.main_thread():
        old = {s: signal.signal(s, stop) for s in (signal.SIGINT, signal.SIGTERM)}
    pool = ThreadPoolExecutor(max_workers=args.jobs, thread_name_prefix="batch")
    try:
        queue = list(rows)
        running = {}
        while queue or running:
            while queue and len(running) < args.jobs and stop.reason is None and fatal is None:
                line, row = queue.pop(0)
                running[pool.submit(work, line, row)] = (line, row)
            if not running:
                break
            done, _ = wait(running, timeout=0.2, return_when=FIRST_COMPLETED)
            for fut in done:
                line, row = running.pop(fut)
                try:
                    result = fut.result()
                except ca_mod.CAError as e:  # the same CA for every row: stop, do not fail 50 rows with it
                    fatal = fatal or e
                    continue
                counts[result["status"]] += 1
                if result["status"] == "failed":
                    failures.append({"line": line, "target": row["target"], "error": result["error"],
                                     "exit_code": result["exit_code"]})
                show.row(result)
        counts["not_started"] = len(queue)
    finally:
        pool.shutdown(wait=True)
        for s, h in old.items():
            signal.signal(s, h)
        show.close()
    summary = dict(counts, total=len(rows), failures=sorted(failures, key=lambda f: f["line"]), summary=True,
                   interrupted=stop.reason is not None, ok=not failures and stop.reason is None and fatal is None)
    if fatal is not None:
        summary["error"] = str(fatal)
    out.record(summary, _human_summary)
    if fatal is not None:
        fatal.reported = True  # the summary line carries it
        raise fatal
    if stop.reason is not None:
        return EXIT_INTERRUPTED
    return EXIT_FAILED if failures else 0


def _human_summary(s):
    text = "%d device(s): %d provisioned, %d updated, %d unchanged, %d skipped, %d failed" % (
        s["total"], s["provisioned"], s["updated"], s["unchanged"], s["skipped"], s["failed"])
    if s["not_started"]:
        text += ", %d not started" % s["not_started"]
    return text + "".join("\n  line %d %s: %s" % (f["line"], f["target"], f["error"]) for f in s["failures"])


def _one(row, line, base, registry, lazy_ca, args):
    base_rec = {"line": line, "target": row["target"], "district": row["district"]}
    target = None
    try:
        target = _target(row["target"], base, args)
        done = [r for r in registry.by_target(target.name) if r["district"] == row["district"]]
        if done:
            return dict(base_rec, status="skipped", device_id=done[0]["device_id"], ok=True)
        board = Path(row["board"]) if Path(row["board"]).is_absolute() else base / row["board"]
        r = provision(target, str(board), row["district"], registry, lazy_ca, broker=args.broker,
                      location=row.get("location") or None, contact=args.contact, check=args.check,
                      release_keys=args.release_key)
        rec = dict(base_rec, status=r["status"], device_id=r["device_id"], ok=True,
                   cert_fingerprint=r["cert_fingerprint"])
        if r.get("broker_check"):
            rec["broker_check"] = r["broker_check"]
        return rec
    except ca_mod.CAError:
        raise
    except ProvisioningError as e:
        return dict(base_rec, status="failed", ok=False, error=str(e), exit_code=e.exit_code)
    finally:
        if hasattr(target, "close"):
            target.close()


def _target(text, base, args):
    """A folder, ssh://..., or (issue 7) a MicroPython board: serial:PORT or a /dev/tty* path."""
    if text.startswith("serial:") or text.startswith("/dev/tty") or text.startswith("/dev/pts/"):
        from provisioning.cli.provision import serial_target

        return serial_target(args, text[len("serial:"):] if text.startswith("serial:") else text)
    return target_url.parse_target(text, base)


class _Display:
    """rich progress bar on a terminal; JSON lines with --json; plain lines otherwise (main thread only)."""

    def __init__(self, out, total):
        self.out = out
        self.progress = None
        if not out.json and sys.stdout.isatty():
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self.progress = Progress(TextColumn("provisioning"), BarColumn(), MofNCompleteColumn(),
                                     TimeRemainingColumn())
            self.task = self.progress.add_task("devices", total=total)
            self.progress.start()

    def row(self, r):
        if self.out.json:
            self.out.record(r)
            return
        text = "line %d %s: %s%s" % (r["line"], r["target"], r["status"],
                                    " " + r["device_id"] if r.get("device_id") else "")
        if r["status"] == "failed":
            text += " (%s)" % r["error"]
        if self.progress is not None:
            self.progress.console.print(text, markup=False, highlight=False)
            self.progress.advance(self.task)
        else:
            self.out.say(text)

    def close(self):
        if self.progress is not None:
            self.progress.stop()
