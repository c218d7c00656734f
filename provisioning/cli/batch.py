"""`civicmote batch FILE.csv`: provision many devices, keep going past failures (CPython only).

CSV with a header: board, target, district and optionally location (paths relative to the
CSV's folder). One result per row: a progress bar on a terminal, JSON lines with --json, plain
lines otherwise; then a summary. A re-run skips rows whose target is already registered as
active in the same district. The CA is unlocked at most once per batch.
"""
import csv
import sys
from pathlib import Path

from provisioning.pki import ca as ca_mod
from provisioning.field import targets
from provisioning.cli.common import add_command
from provisioning.cli.provision import add_common_options, provision
from provisioning.errors import EXIT_FAILED, ProvisioningError, UsageError
from provisioning.pki.registry import Registry, default_path

COLUMNS = ("board", "target", "district", "location")


def register(sub, common):
    p = add_command(sub, "batch", do_batch, common,
                    "provision every device listed in a CSV file (board,target,district,location)",
                    "Provision one device per CSV row (header: board,target,district[,location]; paths are "
                    "relative to the CSV's folder). Continues past a failing device, prints a summary and "
                    "exits 1 if any failed; a re-run skips devices already provisioned.")
    p.add_argument("csv", metavar="FILE.csv", help="the device list")
    add_common_options(p)


def read_rows(path):
    """[(line number, row dict)] from the CSV; UsageError naming the line for bad rows."""
    try:
        with open(path, newline="") as f:
            reader = csv.DictReader(f)
            header = [h.strip() for h in (reader.fieldnames or [])]
            for need in COLUMNS[:3]:
                if need not in header:
                    raise UsageError("%s: the header needs the columns %s (missing %r)"
                                     % (path, ",".join(COLUMNS), need))
            rows = []
            for row in reader:
                row = {(k or "").strip(): (v or "").strip() for k, v in row.items()}
                if not any(row.values()):
                    continue
                for need in COLUMNS[:3]:
                    if not row.get(need):
                        raise UsageError("%s:%d: %s is empty" % (path, reader.line_num, need))
                rows.append((reader.line_num, row))
            return rows
    except FileNotFoundError:
        raise UsageError("%s: no such file" % path)
    except (csv.Error, UnicodeDecodeError) as e:
        raise UsageError("%s: not a readable CSV file (%s)" % (path, e))


def do_batch(out, args):
    base = Path(args.csv).parent
    rows = read_rows(args.csv)
    registry = Registry(args.registry or default_path(), create=True)
    lazy_ca = ca_mod.LazyCA(args.ca)
    counts = {"provisioned": 0, "updated": 0, "unchanged": 0, "skipped": 0, "failed": 0}
    failures = []
    show = _Display(out, len(rows))
    try:
        for line, row in rows:
            result = _one(row, line, base, registry, lazy_ca, args)
            counts[result["status"]] += 1
            if result["status"] == "failed":
                failures.append({"line": line, "target": row["target"], "error": result["error"]})
            show.row(result)
    finally:
        show.close()
        registry.close()
    summary = dict(counts, total=len(rows), failures=failures, summary=True)
    out.record(summary, lambda s: "%d device(s): %d provisioned, %d updated, %d unchanged, %d skipped, %d failed%s" % (
        s["total"], s["provisioned"], s["updated"], s["unchanged"], s["skipped"], s["failed"],
        "".join("\n  line %d %s: %s" % (f["line"], f["target"], f["error"]) for f in failures)))
    return EXIT_FAILED if failures else 0


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
                      location=row.get("location") or None, contact=args.contact)
        return dict(base_rec, status=r["status"], device_id=r["device_id"], ok=True,
                    cert_fingerprint=r["cert_fingerprint"])
    except ca_mod.CAError:
        raise  # the CA is the same for every row: stop, do not fail 50 rows with one message
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
    return targets.parse_target(text, base)


class _Display:
    """rich progress bar on a terminal; JSON lines with --json; plain lines otherwise."""

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
