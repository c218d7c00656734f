# Runs inside MicroPython: imports every /tests/test_*.py module and calls each test_*
# function, printing one "MPYTEST PASS|FAIL module.function" line per test, the traceback
# of each failure, and a final "MPYTEST DONE passed=N failed=M" line.
# A preamble script may set the global ONLY (a list of module names) to run a subset.
import os
import sys
import io
import time

if "/tests" not in sys.path:
    sys.path.insert(0, "/tests")


def _report_failure(label, e):
    buf = io.StringIO()
    sys.print_exception(e, buf)
    print("MPYTEST FAIL %s" % label)
    for line in buf.getvalue().split("\n"):
        if line:
            print("MPYTEST |", line)


def _run_all(only):
    names = []
    for n in os.listdir("/tests"):
        if n.startswith("test_") and n.endswith(".py"):
            if only is None or n[:-3] in only:
                names.append(n[:-3])
    names.sort()
    passed = 0
    failed = 0
    for modname in names:
        try:
            mod = __import__(modname)
        except Exception as e:
            failed += 1
            _report_failure(modname + ".<import>", e)
            continue
        fnames = [a for a in dir(mod) if a.startswith("test_")]
        fnames.sort()
        for fname in fnames:
            t0 = time.ticks_ms()
            try:
                getattr(mod, fname)()
            except Exception as e:
                failed += 1
                _report_failure(modname + "." + fname, e)
            else:
                passed += 1
                print("MPYTEST PASS %s.%s %dms" % (modname, fname, time.ticks_diff(time.ticks_ms(), t0)))
        # Free each module once done: the whole suite shares one small heap.
        del sys.modules[modname]
    print("MPYTEST DONE passed=%d failed=%d" % (passed, failed))


try:
    ONLY
except NameError:
    ONLY = None
_run_all(ONLY)
