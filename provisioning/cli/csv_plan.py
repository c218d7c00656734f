"""The device list of `civicmote batch`, checked whole before anything is done (CPython only).

Strict, because a lenient reader turns a typo into a silent skip: a stray quote would swallow
the rows after it, a misspelt column would be ignored. Every problem names FILE:LINE.
"""
import csv

from provisioning.errors import UsageError

COLUMNS = ("board", "target", "district", "location")
REQUIRED = COLUMNS[:3]


def read_rows(path):
    """[(line number, row dict)] of the CSV, or UsageError naming the file and line."""
    try:
        with open(path, newline="", encoding="utf-8") as f:
            text = f.read()
    except FileNotFoundError:
        raise UsageError("%s: no such file" % path)
    except IsADirectoryError:
        raise UsageError("%s: is a folder, not a CSV file" % path)
    except UnicodeDecodeError as e:
        raise UsageError("%s: not UTF-8 text (%s)" % (path, e.reason))
    lines = text.splitlines()
    # One record per physical line: a quote left open would otherwise run on into the next rows.
    for n, ln in enumerate(lines, 1):
        if ln.count('"') % 2:
            raise UsageError("%s:%d: unbalanced quote (\") in %r; close it or remove it" % (path, n, ln[:60]))
    if not lines or not lines[0].strip():
        raise UsageError("%s:1: the header is missing; it needs the columns %s" % (path, ",".join(REQUIRED)))
    try:
        records = list(csv.reader(lines, strict=True))
    except csv.Error as e:
        raise UsageError("%s: not a readable CSV file (%s)" % (path, e))
    header = [h.strip() for h in records[0]]
    for h in header:
        if h not in COLUMNS:
            raise UsageError("%s:1: unknown column %r; the columns are %s" % (path, h, ",".join(COLUMNS)))
    for need in REQUIRED:
        if need not in header:
            raise UsageError("%s:1: the header needs the columns %s (missing %r)" % (path, ",".join(COLUMNS), need))
    if len(set(header)) != len(header):
        raise UsageError("%s:1: a column appears twice in the header" % path)
    rows, seen = [], {}
    for n, rec in enumerate(records[1:], 2):
        if not any(v.strip() for v in rec):
            continue
        if len(rec) > len(header):
            raise UsageError("%s:%d: %d fields but the header has %d (a comma too many? quote a value that has one)"
                             % (path, n, len(rec), len(header)))
        row = {h: (rec[i].strip() if i < len(rec) else "") for i, h in enumerate(header)}
        for need in REQUIRED:
            if not row.get(need):
                raise UsageError("%s:%d: %s is empty" % (path, n, need))
        if row["target"] in seen:
            raise UsageError("%s:%d: target %s is already listed on line %d; each device once"
                             % (path, n, row["target"], seen[row["target"]]))
        seen[row["target"]] = n
        rows.append((n, row))
    return rows
