"""A virtual MicroPython board on a pseudo-terminal, for tests and demos (CPython only).

    with VirtualBoard(flash_dir) as board:
        subprocess.run(["mpremote", "connect", board.port, "ls"])

The board is the official MicroPython WebAssembly port run by tools/virtual-board/board.mjs
under Node.js; it speaks the friendly REPL, the raw REPL and raw-paste mode on its stdin and
stdout, and this module relays those bytes to the master side of a pty whose slave path is
`board.port` (what a USB board's /dev/ttyACM0 would be). Its flash is the host folder
flash_dir: files survive soft resets, restarts and kill(), and tests can read them directly.

Also here, for bad-input tests: SilentPort (a port where nothing answers) and GarbagePort
(a port where something that is not MicroPython echoes noise).
"""
import hashlib
import os
import selectors
import shutil
import subprocess
import threading
import time
import tty
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "tools" / "virtual-board" / "board.mjs"
PORT_PACKAGE = ROOT / "tools" / "mpy-node" / "node_modules" / "@micropython" / "micropython-webassembly-pyscript"
BANNER = b"Type \"help()\" for more information.\r\n>>> "


class _Pty:
    """A pty pair in raw mode; the slave stays open here so the master never sees EIO when a
    client closes the port (a USB board's port also outlives its clients)."""

    def __init__(self):
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)
        self.port = os.ttyname(self.slave)

    def close(self):
        for fd in (self.master, self.slave):
            try:
                os.close(fd)
            except OSError:
                pass


class VirtualBoard:
    """The WebAssembly MicroPython port behind a pty. Context manager; see the module doc.

    flash_dir   host folder that is the board's flash (created if missing)
    capacity    flash size in bytes: writes beyond it fail with ENOSPC
    heap        MicroPython heap in bytes
    mpy, version  fake an older firmware: sys.implementation._mpy (int) and .version ("1.21.0")
    """

    def __init__(self, flash_dir, capacity=2 * 1024 * 1024, heap=2 * 1024 * 1024, mpy=None, version=None,
                 start_timeout=20):
        self.flash_dir = Path(flash_dir)
        self.capacity = capacity
        self.heap = heap
        self.mpy = mpy
        self.version = version
        self.start_timeout = start_timeout
        # machine.unique_id(): a board's serial number; here derived from its flash folder.
        self.uid = hashlib.sha256(str(self.flash_dir.resolve()).encode()).hexdigest()[:16]
        self.port = None
        self.started_s = None  # seconds the last start took (to the friendly prompt)
        self._pty = None
        self._proc = None
        self._relay = None
        self._stop = threading.Event()
        self._seen = bytearray()  # the board's output since start (for start-up detection)
        self._seen_lock = threading.Condition()

    # -- lifecycle ------------------------------------------------------------------------

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.close()

    def start(self):
        """Power the board on (again): a fresh interpreter on the same flash and the same port."""
        if shutil.which("node") is None:
            raise RuntimeError("Node.js is needed for the virtual board; install nodejs")
        if not PORT_PACKAGE.exists():
            raise RuntimeError("the MicroPython port is not installed; run 'npm ci' in tools/mpy-node")
        self.flash_dir.mkdir(parents=True, exist_ok=True)
        if self._pty is None:
            self._pty = _Pty()
            self.port = self._pty.port
        self._drain_master()
        cmd = ["node", str(SCRIPT), "--flash", str(self.flash_dir), "--capacity", str(self.capacity),
               "--heap", str(self.heap), "--uid", self.uid]
        if self.mpy is not None:
            cmd += ["--mpy", str(self.mpy)]
        if self.version is not None:
            cmd += ["--version", self.version]
        with self._seen_lock:
            self._seen = bytearray()
        t0 = time.monotonic()
        self._stop = threading.Event()
        self._proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self._relay = threading.Thread(target=self._run_relay, args=(self._proc, self._stop), daemon=True)
        self._relay.start()
        if not self._wait_for(BANNER, self.start_timeout):
            err = self._proc.stderr.read1(4000) if self._proc.poll() is not None else b""
            self.kill()
            raise RuntimeError("the virtual board did not start: %s" % err.decode(errors="replace").strip())
        self.started_s = time.monotonic() - t0
        return self

    def kill(self):
        """Pull the plug: the interpreter dies at once (what it had not synced to flash is lost);
        the port stays, silent, until start()."""
        self._stop.set()
        if self._proc is not None:
            if self._proc.poll() is None:
                self._proc.kill()
            self._proc.wait()
            for s in (self._proc.stdin, self._proc.stdout, self._proc.stderr):
                try:
                    s.close()
                except OSError:
                    pass
            self._proc = None
        if self._relay is not None:
            self._relay.join(5)
            self._relay = None

    def close(self):
        """Stop the board (letting it write its flash back) and remove the port."""
        if self._proc is not None and self._proc.poll() is None:
            try:
                self._proc.stdin.close()  # board.mjs syncs its flash and exits on EOF
                self._proc.wait(5)
            except (OSError, subprocess.TimeoutExpired):
                pass
        self.kill()
        if self._pty is not None:
            self._pty.close()
            self._pty = None

    @property
    def alive(self):
        return self._proc is not None and self._proc.poll() is None

    # -- the relay between the pty master and the interpreter ------------------------------

    def _run_relay(self, proc, stop):
        sel = selectors.DefaultSelector()
        master = self._pty.master
        out = proc.stdout.fileno()
        sel.register(master, selectors.EVENT_READ)
        sel.register(out, selectors.EVENT_READ)
        try:
            while not stop.is_set():
                for key, _ in sel.select(0.2):
                    if key.fd == master:
                        try:
                            data = os.read(master, 4096)
                        except OSError:
                            return
                        try:
                            self._to_board(proc, data)
                        except (OSError, ValueError):
                            return
                    else:
                        try:
                            data = os.read(out, 65536)
                        except OSError:  # closed under us: the board was stopped or unplugged
                            return
                        if not data:
                            return  # the interpreter died: the port goes silent
                        with self._seen_lock:
                            if len(self._seen) < 65536:
                                self._seen += data
                            self._seen_lock.notify_all()
                        view = memoryview(data)
                        while view and not stop.is_set():
                            try:
                                view = view[os.write(master, view):]
                            except BlockingIOError:
                                time.sleep(0.01)
                            except OSError:
                                return
        finally:
            sel.close()

    def _to_board(self, proc, data):
        """Bytes from the port's client to the interpreter."""
        proc.stdin.write(data)
        proc.stdin.flush()

    def _wait_for(self, marker, timeout):
        deadline = time.monotonic() + timeout
        with self._seen_lock:
            while marker not in self._seen:
                left = deadline - time.monotonic()
                if left <= 0 or (self._proc is not None and self._proc.poll() is not None):
                    return False
                self._seen_lock.wait(min(left, 0.2))
        return True

    def _drain_master(self):
        """Drop what a previous life of the board left unread in the pty (its banner)."""
        os.set_blocking(self._pty.slave, False)
        try:
            while os.read(self._pty.slave, 4096):
                pass
        except OSError:
            pass
        finally:
            os.set_blocking(self._pty.slave, True)


class _FakePort:
    """A pty whose far end is a thread doing something that is not MicroPython."""

    def __init__(self):
        self._pty = None
        self._stop = threading.Event()
        self._thread = None
        self.port = None

    def __enter__(self):
        self._pty = _Pty()
        self.port = self._pty.port
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(2)
        self._pty.close()

    def _serve(self):
        while not self._stop.wait(0.05):
            pass


class SilentPort(_FakePort):
    """A port where nothing answers (a board stuck in its bootloader, a dead USB adapter)."""


class GarbagePort(_FakePort):
    """A port with something else on it: it echoes what it gets and adds noise."""

    def _serve(self):
        sel = selectors.DefaultSelector()
        sel.register(self._pty.master, selectors.EVENT_READ)
        while not self._stop.is_set():
            if sel.select(0.05):
                try:
                    data = os.read(self._pty.master, 4096)
                    os.write(self._pty.master, data + b"\xfe$GPGGA,noise*7A\r\n")
                except OSError:
                    return
        sel.close()


def main(argv=None):
    """`python -m provisioning.field.virtual_board --flash DIR`: a virtual board until Ctrl-C (docs/boards.md)."""
    import argparse
    import signal
    import sys

    ap = argparse.ArgumentParser(prog="python -m provisioning.field.virtual_board",
                                 description="Run a virtual MicroPython board on a pseudo-terminal until Ctrl-C.")
    ap.add_argument("--flash", required=True, metavar="DIR", help="host folder that is the board's flash")
    args = ap.parse_args(argv)
    stop = []
    signal.signal(signal.SIGTERM, lambda *a: stop.append(1))
    try:
        with VirtualBoard(args.flash) as board:
            print("virtual board on %s (flash %s); Ctrl-C stops it" % (board.port, args.flash), flush=True)
            while not stop:
                time.sleep(0.2)
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(main())
