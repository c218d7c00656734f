"""The virtual board speaks MicroPython's REPL protocols like a board: mpremote works unchanged."""
import hashlib
import subprocess
import sys
import time
from pathlib import Path

import pytest

from provisioning.field.virtual_board import VirtualBoard

MPREMOTE = str(Path(sys.executable).parent / "mpremote")


def mpremote(port, *args, timeout=60):
    return subprocess.run([MPREMOTE, "connect", port] + list(args), capture_output=True, timeout=timeout)


@pytest.fixture
def board(tmp_path):
    (tmp_path / "flash").mkdir()
    (tmp_path / "flash" / "boot.py").write_text("print('boot.py ran')\n")
    with VirtualBoard(tmp_path / "flash") as b:
        yield b


def test_starts_fast_with_the_friendly_banner(board):
    assert board.started_s < 5, board.started_s  # typically 0.15-0.3 s
    assert b"MicroPython v1.27.0" in bytes(board._seen)
    assert b"boot.py ran" in bytes(board._seen)


def test_mpremote_ls_cp_exec_cat_reset(board, tmp_path):
    src = tmp_path / "hello.py"
    src.write_text("GREETING = 'hi from flash'\n")
    p = mpremote(board.port, "cp", str(src), ":hello.py")
    assert p.returncode == 0, p.stderr
    p = mpremote(board.port, "ls")
    assert p.returncode == 0 and b"hello.py" in p.stdout and b"dev" not in p.stdout, p.stdout
    assert b"27 hello.py" in p.stdout  # sizes, as littlefs reports them
    p = mpremote(board.port, "exec", "import hello; print(hello.GREETING)")
    assert p.stdout.strip() == b"hi from flash"
    assert (board.flash_dir / "hello.py").read_text() == src.read_text()  # the flash is the host folder
    p = mpremote(board.port, "sha256sum", "hello.py")  # computed on the board with its hashlib
    assert hashlib.sha256(src.read_bytes()).hexdigest().encode() in p.stdout, p.stdout
    p = mpremote(board.port, "reset")
    assert p.returncode == 0, p.stderr
    p = mpremote(board.port, "exec", "import hello; print(hello.GREETING)")  # files survive a hard reset
    assert p.stdout.strip() == b"hi from flash"


def test_errors_come_back_as_a_board_traceback(board):
    p = mpremote(board.port, "exec", "1/0")
    assert p.returncode == 1
    assert b'File "<stdin>", line 1' in p.stdout and b"ZeroDivisionError" in p.stdout
    p = mpremote(board.port, "cat", "nope.txt")  # mpremote recognises the board's errno names
    assert b"No such file" in p.stderr or b"ENOENT" in p.stderr or p.returncode != 0


def _raw(board):
    import serial

    s = serial.Serial(board.port, timeout=2)
    s.write(b"\r\x03\x03")
    time.sleep(0.2)
    s.reset_input_buffer()
    s.write(b"\r\x01")
    assert s.read_until(b"raw REPL; CTRL-B to exit\r\n>").endswith(b"CTRL-B to exit\r\n>")
    return s


def test_raw_repl_and_raw_paste_byte_for_byte(board):
    s = _raw(board)
    try:
        s.write(b"print('a')\nx = 7\x04")
        assert s.read_until(b"\x04>") == b"OKa\r\n\x04\x04>"
        s.write(b"raise ValueError('bad')\x04")
        got = s.read_until(b"\x04>")
        assert got.startswith(b"OK\x04Traceback") and got.endswith(b"ValueError: bad\r\n\x04>")
        # raw-paste: handshake, window, flow control, end-of-data acknowledged
        s.write(b"\x05A\x01")
        assert s.read(2) == b"R\x01"
        window = int.from_bytes(s.read(2), "little")
        assert window == 256
        code = b"y = x * 6\n" + b"#" * 600 + b"\nprint(y)\n"
        sent, remain, grants = 0, window, 0
        while sent < len(code):
            if remain == 0:  # wait for the board to grant another window
                assert s.read(1) == b"\x01"
                grants += 1
                remain += window
            take = min(remain, len(code) - sent)
            s.write(code[sent:sent + take])
            sent += take
            remain -= take
        s.write(b"\x04")
        reply = s.read_until(b"\x04>")
        assert grants + reply.count(b"\x01") == len(code) // window, reply  # one grant per window consumed
        assert reply.replace(b"\x01", b"") == b"\x0442\r\n\x04\x04>", reply
    finally:
        s.close()


def test_soft_reset_gives_a_fresh_interpreter_and_keeps_files(board):
    s = _raw(board)
    try:
        s.write(b"v = 1\nopen('keep.txt', 'w').write('kept')\x04")
        s.read_until(b"\x04>")
        s.write(b"\x04")  # Ctrl-D on an empty line: soft reset
        got = s.read_until(b"raw REPL; CTRL-B to exit\r\n>")
        assert got.startswith(b"OK\r\nMPY: soft reboot\r\n") and b"boot.py ran" in got, got
        s.write(b"print('v' in globals(), open('keep.txt').read())\x04")
        assert s.read_until(b"\x04>") == b"OKFalse kept\r\n\x04\x04>"
    finally:
        s.close()
    assert (board.flash_dir / "keep.txt").read_text() == "kept"


def test_full_flash_fails_with_enospc(tmp_path):
    with VirtualBoard(tmp_path / "flash", capacity=64 * 1024) as b:
        p = mpremote(b.port, "exec", "f = open('big', 'wb')\nfor i in range(100):\n f.write(bytes(1024))")
        assert b"ENOSPC" in p.stdout, p.stdout
        p = mpremote(b.port, "df")
        assert b"65536" in p.stdout
