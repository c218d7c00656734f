# A networked virtual board: the firmware side, run by the native MicroPython unix port.
#
#   micropython -X heapsize=N native_board.py   (started by provisioning/field/native_board.py,
#                                                which sets FLASH, UID and MODE in front of it)
#
# It speaks MicroPython's REPL protocols on stdin/stdout as a board does on its USB serial
# port (the same as tools/virtual-board/board.mjs for the WebAssembly port):
# - power on: boot.py, then main.py, then the friendly REPL;
# - Ctrl-A: raw REPL ("raw REPL; CTRL-B to exit\r\n>"); code, Ctrl-D -> "OK", output, "\x04",
#   error text, "\x04", ">"; Ctrl-B back to the friendly REPL; Ctrl-C clears the line;
# - raw-paste mode: Ctrl-E 'A' Ctrl-A -> "R\x01" + window size (u16 LE), "\x01" after each
#   window consumed, Ctrl-D at the end acknowledged with "\x04";
# - Ctrl-D on an empty line: soft reset. The process exits with code 86 (from the friendly
#   REPL: boot.py and main.py run again) or 87 (from the raw REPL: boot.py only, then the raw
#   prompt) and the host starts a fresh interpreter on the same flash and port;
#   machine.reset() exits with 88 (a hard reset);
# - Ctrl-C while code runs: the host turns it into SIGINT, which MicroPython raises as
#   KeyboardInterrupt in the running code (main.py's agent loop, or a raw-REPL command).
# Unlike the WebAssembly board it has real sockets and TLS (mbedTLS, DER only), os.urandom and
# a heap cap, so main.py can run the agent and deliver to a broker. Its flash is the host
# folder FLASH, mounted as "/". machine and network are stand-ins: machine.unique_id() is UID,
# WDT.feed() does nothing; network.WLAN reports the host's network as joined.
import os
import sys

os.umount("/")
os.mount(os.VfsPosix(FLASH), "/")  # noqa: F821 - set by the host in front of this file
os.chdir("/")


class _RootedOS:
    # os with a rename that works under a VfsPosix root: MicroPython 1.2x's VfsPosix builds
    # both absolute paths of rename() in one buffer (see ROOTED_RENAME_SHIM in tests/mpy_port.py)
    def __getattr__(self, name, _os=os):
        return getattr(_os, name)

    def rename(self, a, b, _os=os):
        cwd = _os.getcwd()
        if a[:1] != "/":
            a = cwd.rstrip("/") + "/" + a
        if b[:1] != "/":
            b = cwd.rstrip("/") + "/" + b
        _os.chdir("/")
        try:
            _os.rename(a[1:], b[1:])
        finally:
            _os.chdir(cwd)


sys.modules["os"] = _RootedOS()
if "/lib" not in sys.path:
    sys.path.append("/lib")

SOFT_FRIENDLY, SOFT_RAW, HARD = 86, 87, 88


class _Machine:
    class WDT:
        def __init__(self, id=0, timeout=5000):
            self.timeout = timeout

        def feed(self):
            pass

    class Pin:
        IN = OUT = PULL_UP = PULL_DOWN = 0

        def __init__(self, *a, **k):
            pass

        def value(self, *a):
            return 1  # a boot button reads 1 when not pressed

        def on(self):
            pass

        def off(self):
            pass

    @staticmethod
    def unique_id():
        import binascii

        return binascii.unhexlify(UID)  # noqa: F821

    @staticmethod
    def reset():
        sys.exit(HARD)

    @staticmethod
    def soft_reset():
        sys.exit(SOFT_FRIENDLY)


class _Network:
    STA_IF = 0

    class WLAN:
        def __init__(self, interface=0):
            pass

        def active(self, *a):
            return True

        def isconnected(self):
            return True

        def connect(self, ssid, password=""):
            pass


sys.modules["machine"] = _Machine
sys.modules["network"] = _Network

_out = sys.stdout.buffer if hasattr(sys.stdout, "buffer") else sys.stdout
_in = sys.stdin.buffer if hasattr(sys.stdin, "buffer") else sys.stdin


def emit(b):
    _out.write(b)


def getc():
    while True:
        try:
            c = _in.read(1)
        except KeyboardInterrupt:
            continue  # a Ctrl-C at the prompt: the byte itself follows
        if not c:
            sys.exit(0)  # the host closed the port
        return c[0]


def run(src, name="<stdin>"):
    """Execute src in the board's namespace; returns the error text ("" if none)."""
    try:
        exec(compile(src, name, "exec"), _ns)
        return ""
    except SystemExit:
        raise
    except BaseException as e:  # noqa: BLE001 - a board's REPL reports every error
        import io

        buf = io.StringIO()
        sys.print_exception(e, buf)
        return buf.getvalue()


def run_file(path):
    try:
        with open(path) as f:
            src = f.read()
    except OSError:
        return
    err = run(src, path)
    if err:
        emit(err.replace("\n", "\r\n").encode())


def raw_repl():
    emit(b"raw REPL; CTRL-B to exit\r\n>")
    line = bytearray()
    while True:
        c = getc()
        if c == 1:
            if len(line) == 2 and line[0] == 5:
                if line[1] == 0x41:
                    emit(b"R\x01\x00\x01")  # raw paste, a 256-byte window
                    paste_mode()
                else:
                    emit(b"R\x00>")
                line = bytearray()
                continue
            line = bytearray()
            emit(b"raw REPL; CTRL-B to exit\r\n>")
        elif c == 2:
            emit(b"\r\n")
            return
        elif c == 3:
            line = bytearray()
        elif c == 4:
            emit(b"OK")
            if not line:
                emit(b"\r\n")
                sys.exit(SOFT_RAW)
            exec_raw(bytes(line))
            line = bytearray()
        else:
            line.append(c)


def exec_raw(src):
    err = run(src.decode())
    emit(b"\x04" + err.encode() + b"\x04>")


def paste_mode():
    data = bytearray()
    n = 0
    while True:
        c = getc()
        if c in (3, 4):
            emit(b"\x04")
            if c == 3:
                emit(b"\x04Traceback (most recent call last):\r\nKeyboardInterrupt: \r\n\x04>")
            else:
                exec_raw(bytes(data))
            return
        data.append(c)
        n += 1
        if n == 256:
            n = 0
            emit(b"\x01")


def friendly():
    emit(b'MicroPython (civicmote native virtual board)\r\nType "help()" for more information.\r\n>>> ')
    line = bytearray()
    while True:
        c = getc()
        if c == 1:
            emit(b"\r\n")
            raw_repl()
            emit(b'Type "help()" for more information.\r\n>>> ')
        elif c == 3:
            line = bytearray()
            emit(b"\r\nKeyboardInterrupt\r\n>>> ")
        elif c == 4 and not line:
            emit(b"\r\n")
            sys.exit(SOFT_FRIENDLY)
        elif c in (13, 10):
            emit(b"\r\n")
            src = bytes(line).decode()
            line = bytearray()
            if src.strip():
                try:
                    r = eval(src, _ns)
                    if r is not None:
                        emit(repr(r).encode() + b"\r\n")
                except SyntaxError:
                    err = run(src)
                    if err:
                        emit(err.replace("\n", "\r\n").encode())
                except SystemExit:
                    raise
                except BaseException as e:  # noqa: BLE001
                    import io

                    buf = io.StringIO()
                    sys.print_exception(e, buf)
                    emit(buf.getvalue().replace("\n", "\r\n").encode())
            emit(b">>> ")
        elif c in (8, 127):
            if line:
                line.pop()
                emit(b"\x08 \x08")
        else:
            line.append(c)
            emit(bytes((c,)))


_ns = {"__name__": "__main__"}
if MODE != "hard":  # noqa: F821
    emit(b"MPY: soft reboot\r\n")
run_file("/boot.py")
if MODE == "raw":  # noqa: F821
    raw_repl()
else:
    try:
        run_file("/main.py")
    except KeyboardInterrupt:
        emit(b"Traceback (most recent call last):\r\nKeyboardInterrupt: \r\n")
while True:
    friendly()
