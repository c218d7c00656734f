"""The portable suite on the official MicroPython WebAssembly port: one entry, every module."""
import ast
from pathlib import Path

import mpy_port

PORTABLE = Path(__file__).parent / "portable"


def _expected_tests():
    names = []
    for path in sorted(PORTABLE.glob("test_*.py")):
        tree = ast.parse(path.read_text())
        for node in tree.body:
            if isinstance(node, ast.FunctionDef) and node.name.startswith("test_"):
                names.append("%s.%s" % (path.stem, node.name))
    return names


def test_portable_suite_on_micropython():
    res = mpy_port.run_suite()
    assert res.done is not None and not res.failed, res.report()
    expected = _expected_tests()
    missing = sorted(set(expected) - set(res.passed))
    assert not missing, "tests that did not run on MicroPython: %s" % missing
    assert len(res.passed) == len(expected)
