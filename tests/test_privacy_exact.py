"""No floating point and no other randomness in the noise path (host-only source check).

The sampler, the mechanisms and the distinct estimator must be exact integer code: no float
literals, no true division, no float(), no math or random module. (Floats in a sampler leak
the secret; Mironov 2012.) contributions.clamp may round float readings on the way in: that
is input conversion before clamping, not noise.
"""
import ast
from pathlib import Path

AGENT = Path(__file__).resolve().parent.parent / "agent"
EXACT_MODULES = ("privacy/sampler.py", "privacy/release.py", "privacy/distinct.py", "core/rational.py",
                 "privacy/ledger.py", "privacy/policy.py")


def offences(path):
    tree = ast.parse(path.read_text())
    bad = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, float):
            bad.append("float literal %r at line %d" % (node.value, node.lineno))
        elif isinstance(node, (ast.BinOp, ast.AugAssign)) and isinstance(node.op, ast.Div):
            bad.append("true division at line %d" % node.lineno)
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("float", "round"):
            bad.append("%s() at line %d" % (node.func.id, node.lineno))
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names = [a.name for a in node.names] + ([node.module] if isinstance(node, ast.ImportFrom) else [])
            for n in names:
                if n and n.split(".")[0] in ("math", "random", "secrets", "time"):
                    bad.append("import of %s at line %d" % (n, node.lineno))
    return bad


def test_noise_path_is_integer_only():
    for name in EXACT_MODULES:
        assert offences(AGENT / name) == [], name


def test_the_check_would_catch_a_float_sampler(tmp_path):
    p = tmp_path / "naive.py"
    p.write_text("import math, random\n\ndef laplace(b):\n    u = random.random() - 0.5\n"
                 "    return -b * math.copysign(1, u) * math.log(1 - 2 * abs(u)) / 1\n")
    found = offences(p)
    assert any("float literal" in f for f in found)
    assert any("true division" in f for f in found)
    assert any("import of math" in f for f in found) and any("import of random" in f for f in found)
