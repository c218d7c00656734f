"""The networked virtual board (provisioning/field/native_board.py) end to end.

A blank board on a pty, the native MicroPython unix port inside: stock mpremote works against
it; `civicmote provision --port` deploys the agent and makes its identity on it; after a
reset main.py starts the agent, which delivers over mutual TLS to a Mosquitto configured by
`civicmote broker-config`, and `civicmote collect` verifies every summary. Ctrl-C from the
port stops the agent and leaves the REPL free, as on a Pico W.
"""
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from board_city import CIVICMOTE, cli, collected, wait_until
from broker import free_port
from provision_support import PASSPHRASE, Mosquitto

from provisioning.field.native_board import NativeBoard

ROOT = Path(__file__).resolve().parent.parent
MPREMOTE = str(Path(sys.executable).parent / "mpremote")
HEAP = 512 * 1024

pytestmark = pytest.mark.skipif(shutil.which("mosquitto") is None and not os.path.exists("/usr/sbin/mosquitto"),
                                reason="mosquitto not installed")


def mpremote(port, *args, timeout=60):
    return subprocess.run([MPREMOTE, "connect", port] + list(args), capture_output=True, text=True, timeout=timeout)


def test_stock_mpremote_drives_the_native_board(tmp_path):
    with NativeBoard(tmp_path / "flash", heap=HEAP) as board:
        p = mpremote(board.port, "exec", "import sys, os; print(sys.implementation.name, len(os.urandom(8)))")
        assert p.returncode == 0 and "micropython 8" in p.stdout, p.stderr
        (tmp_path / "hello.txt").write_text("hi")
        assert mpremote(board.port, "cp", str(tmp_path / "hello.txt"), ":hello.txt").returncode == 0
        assert (tmp_path / "flash" / "hello.txt").read_text() == "hi"  # the flash is the host folder
        assert "hello.txt" in mpremote(board.port, "ls").stdout
        assert mpremote(board.port, "reset").returncode == 0  # a hard reset: a fresh interpreter
        # As with a real board, the first commands right after a reset can meet the boot banner
        # still being printed (a loaded machine boots the fresh interpreter slowly); a technician
        # re-runs them. Up to ten tries over about ten seconds, each a real exec.
        for _ in range(10):
            p = mpremote(board.port, "exec", "import machine; print(machine.unique_id().hex())")
            if p.stdout.strip() == board.uid:
                break
            time.sleep(1.0)
        assert p.stdout.strip() == board.uid


def test_provisioned_native_board_delivers_verified_summaries_from_main_py(tmp_path):
    env = dict(os.environ, CIVICMOTE_CA_PASSPHRASE=PASSPHRASE, CIVICMOTE_WIFI_PASSWORD="n0t-printed")
    port = free_port()
    profile = json.loads((ROOT / "boards" / "virtual-net.json").read_text())
    profile["window_s"] = 2  # short windows, real clock
    (tmp_path / "board.json").write_text(json.dumps(profile))
    cli("ca", "init", "--dir", tmp_path / "ca", "--json", env=env)
    with NativeBoard(tmp_path / "flash", heap=HEAP) as board:
        rec = json.loads(cli("provision", "--board", tmp_path / "board.json", "--port", board.port, "--district",
                             "north", "--ca", tmp_path / "ca", "--registry", tmp_path / "registry.db", "--wifi-ssid",
                             "city-iot", "--broker", "mqtts://127.0.0.1:%d" % port, "--json", env=env).stdout)
        assert rec["status"] == "provisioned" and board.uid in rec["target"]
        assert (tmp_path / "flash" / "main.py").read_bytes() == (ROOT / "boards/virtual-net/main.py").read_bytes()
        cli("broker-config", "--ca", tmp_path / "ca", "--registry", tmp_path / "registry.db", "--out",
            tmp_path / "broker", "--port", port, "--bind", "127.0.0.1", "--user", "root", "--json", env=env)
        (tmp_path / "export.json").write_text(
            cli("registry", "export", "--registry", tmp_path / "registry.db", "--json").stdout)
        b = tmp_path / "broker"
        broker = Mosquitto(b / "mosquitto.conf", port)
        try:
            col = subprocess.Popen([CIVICMOTE, "collect", "--broker", "mqtts://127.0.0.1:%d" % port, "--registry",
                                    str(tmp_path / "export.json"), "--tls-ca", str(b / "ca.crt"), "--tls-cert",
                                    str(b / "collector.crt"), "--tls-key", str(b / "collector.key"), "--count", "3",
                                    "--duration", "90", "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                   text=True)
            time.sleep(0.5)
            # Power cycle: main.py starts the agent (Wi-Fi and NTP stand-ins, watchdog, forever).
            board.kill()
            board.start()
            records, err = collected(col, timeout=120)
            got = sorted(r["seq"] for r in records if r.get("event") == "summary")
            assert len(got) >= 3, (records, err)
            assert not [r for r in records if r.get("event") == "rejected"], records
            # Ctrl-C from the port stops the agent and leaves the REPL to the technician.
            p = mpremote(board.port, "exec", "print('repl free')", timeout=30)
            assert p.returncode == 0 and "repl free" in p.stdout, (p.stdout, p.stderr)
            assert wait_until(lambda: (tmp_path / "flash" / "civicmote" / "seq").exists(), 5)
        finally:
            broker.stop()


def test_the_technicians_command_starts_a_board_and_stops_on_ctrl_c(tmp_path):
    """python -m provisioning.field.native_board --flash DIR: prints the port, serves until Ctrl-C (exit 130)."""
    import signal

    proc = subprocess.Popen([sys.executable, "-m", "provisioning.field.native_board", "--flash", str(tmp_path / "f"),
                             "--heap", str(HEAP)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=str(ROOT))
    try:
        line = proc.stdout.readline()
        assert line.startswith("virtual board on /dev/pts/"), line + proc.stderr.read()
        port = line.split()[3]
        p = mpremote(port, "exec", "print(6 * 7)")
        assert p.stdout.strip() == "42", p.stderr
        proc.send_signal(signal.SIGINT)
        assert proc.wait(20) == 130
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
