"""Release artefacts: the Pi bundle, the board bundle, or a firmware image (CPython only).

    info = build(kind, out_path, classes, abi=None, firmware=None)

kind "pi"     every file of the agent/ and provisioning/ packages as source (what the Pi's agent
              and its host-side commands run from), in the bundle format (agent/ota/bundle.py)
kind "board"  the .mpy set `provision --port` deploys today (provisioning/field/deploy.py: every
              portable agent module compiled by mpy-cross), paths as on the board (lib/agent/...)
kind "fw"     the firmware image `make firmware` built (comp "fw"), byte for byte
Beside OUT, OUT.json records what `civicmote release sign` needs and checks again: comp, class,
size, sha256, file count. The same sources give the same bundle, byte for byte (sorted paths).
"""
import hashlib
import json
from pathlib import Path

from provisioning import files
from provisioning.errors import UsageError

ROOT = Path(__file__).resolve().parents[2]
PI_PACKAGES = ("agent", "provisioning")
SKIP_PARTS = ("__pycache__",)
SKIP_SUFFIXES = (".pyc", ".pyo")


def pi_files(root=ROOT):
    """{relative path: bytes} of the Pi bundle."""
    out = {}
    for pkg in PI_PACKAGES:
        for p in sorted((Path(root) / pkg).rglob("*")):
            if p.is_file() and not any(s in p.parts for s in SKIP_PARTS) and p.suffix not in SKIP_SUFFIXES \
                    and ".tmp" not in p.name:
                out[p.relative_to(root).as_posix()] = p.read_bytes()
    return out


def board_files(abi=None):
    """{relative path: bytes} of the board bundle: the .mpy set deploy installs."""
    from provisioning.field import deploy

    abi = abi or deploy.mpy_cross_abi()
    return {path.lstrip("/"): data for path, data in deploy.compile_agent(abi).items()}


def build(kind, out_path, classes, abi=None, firmware=None):
    from agent.ota import bundle

    if not classes:
        raise UsageError("--class: name the device class(es) the release runs on (e.g. cpython3, mpy1542, "
                         "fw-unix32; see docs/updates.md)")
    if kind == "fw":
        if not firmware:
            raise UsageError("--firmware FILE: the image `make firmware` built (e.g. build/firmware/...)")
        try:
            data = Path(firmware).read_bytes()
        except OSError as e:
            raise UsageError("%s: cannot read the firmware image (%s)" % (firmware, e.strerror))
        comp, count = "fw", 1
    else:
        entries = pi_files() if kind == "pi" else board_files(abi)
        data = bundle.pack(sorted(entries.items()))
        comp, count = "agent", len(entries)
    info = {"kind": kind, "comp": comp, "class": sorted(set(classes)), "size": len(data),
            "sha256": hashlib.sha256(data).hexdigest(), "files": count, "out": str(out_path)}
    files.write_file(out_path, data, 0o644)
    files.write_file(str(out_path) + ".json", (json.dumps(info, indent=1, sort_keys=True) + "\n").encode(), 0o644)
    return info


def read_artefact(path):
    """(bytes, info from OUT.json) of a built artefact; UsageError if they no longer agree."""
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise UsageError("%s: cannot read the artefact (%s)" % (path, e.strerror))
    info = files.read_json(str(path) + ".json", "the artefact's build record (civicmote release build writes it)")
    if not isinstance(info, dict) or info.get("sha256") != hashlib.sha256(data).hexdigest() or \
            info.get("size") != len(data):
        raise UsageError("%s: does not match its build record %s.json (changed after the build?); build it again"
                         % (path, path))
    return data, info
