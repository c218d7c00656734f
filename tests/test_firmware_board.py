"""The firmware `make firmware` builds, on the networked virtual board, as a technician uses it.

`civicmote flash --firmware build/firmware/unix64/micropython` puts the image in the virtual
board's ROM (checked against its catalogue); after a power cycle the board runs it: the agent
frozen in it. `civicmote provision --port` then finds civicmote firmware whose frozen agent is
this checkout's and writes only configuration and credentials (no code file); after another
power cycle main.py starts the frozen agent, which delivers over mutual TLS, verified by the
collector. A board whose frozen agent is another version's is refused: exit 4, one line.
"""
import hashlib
import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

import mpy_port
from board_city import CIVICMOTE, cli, collected
from broker import free_port
from provision_support import PASSPHRASE, Mosquitto

from provisioning.field import firmware_image
from provisioning.field.native_board import NativeBoard

ROOT = Path(__file__).resolve().parent.parent
IMAGE = mpy_port.FROZEN["frozen"]
HEAP = 256 * 1024

pytestmark = pytest.mark.skipif(shutil.which("mosquitto") is None and not os.path.exists("/usr/sbin/mosquitto"),
                                reason="mosquitto not installed")


def _board_json(tmp_path):
    profile = json.loads((ROOT / "boards" / "virtual-net.json").read_text())
    profile["window_s"] = 2
    (tmp_path / "board.json").write_text(json.dumps(profile))
    return tmp_path / "board.json"


def _flash(board, image=IMAGE):
    return subprocess.run([CIVICMOTE, "flash", "--board", str(ROOT / "boards" / "virtual-net.json"), "--firmware",
                           str(image), "--drive", str(board.rom_dir), "--json"], capture_output=True, text=True,
                          timeout=60)


def test_flash_then_provision_copies_no_code_and_the_frozen_agent_delivers(tmp_path):
    env = dict(os.environ, CIVICMOTE_CA_PASSPHRASE=PASSPHRASE, CIVICMOTE_WIFI_PASSWORD="n0t-printed")
    port = free_port()
    cli("ca", "init", "--dir", tmp_path / "ca", "--json", env=env)
    with NativeBoard(tmp_path / "flash", heap=HEAP) as board:
        p = _flash(board)
        assert p.returncode == 0, p.stderr
        assert json.loads(p.stdout)["agent_sha256"] == firmware_image.agent_hash()
        board.kill()
        board.start()  # power-on: the board now runs the image from its ROM
        rec = json.loads(cli("provision", "--board", _board_json(tmp_path), "--port", board.port, "--district",
                             "north", "--ca", tmp_path / "ca", "--registry", tmp_path / "registry.db", "--wifi-ssid",
                             "city-iot", "--broker", "mqtts://127.0.0.1:%d" % port, "--json", env=env).stdout)
        assert rec["status"] == "provisioned"
        flash = tmp_path / "flash"
        code = [str(q.relative_to(flash)) for q in flash.rglob("*") if q.suffix in (".py", ".mpy")
                and q.name not in ("boot.py", "main.py")]
        assert code == [] and not (flash / "lib").exists(), code  # the agent is in the firmware
        assert (flash / "civicmote" / "config.json").exists() and (flash / "civicmote" / "board.json").exists()
        cli("broker-config", "--ca", tmp_path / "ca", "--registry", tmp_path / "registry.db", "--out",
            tmp_path / "broker", "--port", port, "--bind", "127.0.0.1", "--user", "root", "--json", env=env)
        (tmp_path / "export.json").write_text(
            cli("registry", "export", "--registry", tmp_path / "registry.db", "--json").stdout)
        b = tmp_path / "broker"
        broker = Mosquitto(b / "mosquitto.conf", port)
        try:
            col = subprocess.Popen([CIVICMOTE, "collect", "--broker", "mqtts://127.0.0.1:%d" % port, "--registry",
                                    str(tmp_path / "export.json"), "--tls-ca", str(b / "ca.crt"), "--tls-cert",
                                    str(b / "collector.crt"), "--tls-key", str(b / "collector.key"), "--count", "2",
                                    "--duration", "90", "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                   text=True)
            time.sleep(0.5)
            board.kill()
            board.start()  # main.py starts the frozen agent
            records, err = collected(col, timeout=120)
            assert len([r for r in records if r.get("event") == "summary"]) >= 2, (records, err)
            assert not [r for r in records if r.get("event") == "rejected"], records
        finally:
            broker.stop()


def test_provision_refuses_firmware_whose_frozen_agent_is_another_version(tmp_path):
    """The stamp is patched in a copy of the image (same length, same sort order), as an older
    build's would read."""
    env = dict(os.environ, CIVICMOTE_CA_PASSPHRASE=PASSPHRASE)
    data = IMAGE.read_bytes()
    real = firmware_image.agent_hash().encode()
    assert data.count(real) == 1
    old = tmp_path / "old" / "micropython"
    old.parent.mkdir()
    # Only the last character changes, to "x" (above every hex digit). The frozen strings are
    # interned in pools MicroPython binary-searches (py/qstr.c, is_sorted): b"0" * 64, or a lower
    # last character, made other names unfindable on this image (json.dumps vanished), which is
    # a broken image, not an older one.
    fake = real[:-1] + b"x"
    old.write_bytes(data.replace(real, fake))
    doc = json.loads(Path(str(IMAGE) + ".json").read_text())
    doc["sha256"] = hashlib.sha256(old.read_bytes()).hexdigest()
    Path(str(old) + ".json").write_text(json.dumps(doc))
    cli("ca", "init", "--dir", tmp_path / "ca", "--json", env=env)
    with NativeBoard(tmp_path / "flash", heap=HEAP) as board:
        assert _flash(board, old).returncode == 0
        board.kill()
        board.start()
        p = cli("provision", "--board", _board_json(tmp_path), "--port", board.port, "--district", "north", "--ca",
                tmp_path / "ca", "--registry", tmp_path / "registry.db", "--broker", "mqtts://127.0.0.1:1883",
                env=env, check=False)
    assert p.returncode == 4, (p.stdout, p.stderr)
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and "frozen agent" in lines[0] and "make firmware" in lines[0], p.stderr
    assert not (tmp_path / "flash" / "civicmote").exists() and not (tmp_path / "flash" / "lib").exists()


def test_flash_refuses_an_image_without_its_catalogue(tmp_path):
    bare = tmp_path / "micropython"
    shutil.copyfile(str(IMAGE), str(bare))
    p = subprocess.run([CIVICMOTE, "flash", "--board", str(ROOT / "boards" / "virtual-net.json"), "--firmware",
                        str(bare), "--drive", str(tmp_path / "rom")], capture_output=True, text=True, timeout=60)
    assert p.returncode == 2 and "catalogue" in p.stderr and len(p.stderr.strip().splitlines()) == 1, p.stderr
    assert not (tmp_path / "rom" / "micropython").exists()
