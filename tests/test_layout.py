"""The host side's layout holds: imports run one way, by role, with no circles anywhere.

Walks every import statement (top-level and inside functions, since a lazy import is still a
dependency) of agent/ and provisioning/, resolves it to a module of ours, and checks:
- no import circle among our modules (agent/ and provisioning/ together);
- each role imports only what is below it (provisioning/__init__.py draws the picture):
  cli, demo -> ota -> field, city -> pki -> device -> shared -> agent; city never imports field;
  web (the public page) reads ota (the rollout state, for the fleet view), city and pki only,
  never field, device or the command line;
  forward (pushing into a city's platform) reads web, city and pki;
  agent/ never imports provisioning;
- every package of provisioning/ says in its __init__ what lives there and who uses it.
"""
import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("agent", "provisioning")

# role -> the roles it may import (besides itself).
ALLOWED = {
    "cli": {"demo", "forward", "web", "ota", "field", "city", "pki", "device", "shared", "agent"},
    "forward": {"web", "city", "pki", "shared", "agent"},
    "web": {"ota", "city", "pki", "shared", "agent"},
    "demo": {"ota", "city", "pki", "device", "shared", "agent"},
    "ota": {"field", "city", "pki", "device", "shared", "agent"},
    "field": {"pki", "device", "shared", "agent"},
    "city": {"pki", "device", "shared", "agent"},
    "pki": {"device", "shared", "agent"},
    "device": {"shared", "agent"},
    "shared": {"agent"},
    "agent": set(),
}
ROLE_PACKAGES = ("cli", "demo", "forward", "web", "ota", "field", "city", "pki", "device")


def _modules():
    mods = {}
    for pkg in PACKAGES:
        for path in sorted((ROOT / pkg).rglob("*.py")):
            rel = path.relative_to(ROOT).with_suffix("")
            parts = list(rel.parts)
            if parts[-1] == "__init__":
                parts.pop()
            mods[".".join(parts)] = path
    return mods


def _imports(name, path, mods):
    """The modules of ours that `name` (at `path`) imports, anywhere in its body."""
    tree = ast.parse(path.read_text(), str(path))
    is_pkg = path.name == "__init__.py"
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = name.split(".") if is_pkg else name.split(".")[:-1]
                anchor = anchor[:len(anchor) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            # `from pkg import mod` imports the submodule pkg.mod; `from mod import name` imports mod
            targets = [base + "." + a.name if base + "." + a.name in mods else base for a in node.names]
        else:
            continue
        for t in targets:
            while t and t not in mods:
                t = t.rpartition(".")[0]
            if t and t != name:
                found.add(t)
    return found


def _graph():
    mods = _modules()
    return {name: _imports(name, path, mods) for name, path in mods.items()}


def role(module):
    parts = module.split(".")
    if parts[0] == "agent":
        return "agent"
    if len(parts) > 1 and parts[1] in ROLE_PACKAGES:
        return parts[1]
    return "shared"


def _cycles(graph):
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index, low, on, stack, out, counter = {}, {}, set(), [], [], [0]
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter[0]
        counter[0] += 1
        stack.append(start)
        on.add(start)
        while work:
            v, it = work[-1]
            for w in it:
                if w not in index:
                    index[w] = low[w] = counter[0]
                    counter[0] += 1
                    stack.append(w)
                    on.add(w)
                    work.append((w, iter(sorted(graph[w]))))
                    break
                if w in on:
                    low[v] = min(low[v], index[w])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[v])
                if low[v] == index[v]:
                    comp = []
                    while True:
                        w = stack.pop()
                        on.discard(w)
                        comp.append(w)
                        if w == v:
                            break
                    if len(comp) > 1:
                        out.append(sorted(comp))
    return out


def _package_of(module):
    return module.rpartition(".")[0]


def test_no_import_circles():
    graph = _graph()
    # A package importing its own submodules (cli/__init__ builds the command table) is a
    # table, not a circle; a submodule importing its package's name for a sibling is resolved
    # to the sibling. Anything else that loops is a circle.
    assert _cycles(graph) == []


def test_imports_run_one_way_by_role():
    bad = []
    for mod, deps in sorted(_graph().items()):
        r = role(mod)
        for d in sorted(deps):
            rd = role(d)
            if rd != r and rd not in ALLOWED[r]:
                bad.append("%s (%s) imports %s (%s)" % (mod, r, d, rd))
    assert bad == []


def test_every_role_package_says_what_it_is():
    for pkg in ROLE_PACKAGES:
        init = ROOT / "provisioning" / pkg / "__init__.py"
        doc = ast.get_docstring(ast.parse(init.read_text())) or ""
        assert len(doc.split()) >= 25, "%s needs a paragraph: what lives there and who uses it" % init


def test_the_walker_sees_a_circle_and_a_forbidden_arrow():
    # The checks above must be able to fail: a planted circle and a city -> field arrow.
    planted = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}
    assert _cycles(planted) == [["a", "b", "c"]]
    assert "field" not in ALLOWED[role("provisioning.city.collector")]
    assert ALLOWED[role("provisioning.web.app")] == {"ota", "city", "pki", "shared", "agent"}
    assert role("provisioning.field.targets") == "field" and role("provisioning.errors") == "shared"
    graph = _graph()
    assert "provisioning.device.devicedir" in graph["provisioning.cli.run"]  # it follows `from pkg import mod`
    assert "provisioning.field.targets" in graph["provisioning.cli.provision"]


def test_no_provisioning_module_is_left_loose():
    # Only the shared modules live at the top of provisioning/; everything else sits in its role.
    loose = sorted(p.name for p in (ROOT / "provisioning").glob("*.py"))
    assert loose == ["__init__.py", "broker_url.py", "errors.py", "files.py"]
