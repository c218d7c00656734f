"""A MicroPython board on a serial port, through mpremote's Python API (CPython only).

    with BoardSession.open("/dev/ttyACM0") as board:
        board.info()                       # {"version": (1, 27, 0), "mpy": 774, ...}
        board.exec("print(1)")             # b"1\r\n"
        board.write_file("/x.txt", data)   # written to x.txt.part, checked by SHA-256, renamed
        board.sha256("/x.txt")             # hex, computed on the board; None if missing

Every step is bounded: opening the port, entering the raw REPL (a bounded number of attempts,
reported in `raw_repl_attempts`), and each command (`timeout` seconds of silence ends it).
mpremote's errors, pyserial's and the board's own tracebacks cross this boundary as
ProvisioningError subclasses with one line saying what to do; mpremote's stray prints never
reach our stdout (which carries --json).
"""
import binascii
import contextlib
import hashlib
import io
import json

from provisioning.errors import EnvironmentProblem
from provisioning.field.serial_errors import BoardError, NoSpace, NotMicroPython, open_serial_error  # noqa: F401

CHUNK = 2048  # bytes per base64 literal in a write command
PER_EXEC = 8192  # bytes per write command: its source (11 KB) still fits a small board's heap
DEFAULT_TIMEOUT = 10.0
DEFAULT_ATTEMPTS = 3


def _transport_class():
    """mpremote's SerialTransport with every wait bounded by our step timeout (some of its
    waits are fixed at 10 s, which would make an unplugged board cost 10 s per command)."""
    from mpremote.transport_serial import SerialTransport

    class BoundedTransport(SerialTransport):
        step_timeout = DEFAULT_TIMEOUT

        def read_until(self, min_num_bytes, ending, timeout=10, data_consumer=None, timeout_overall=None):
            timeout = self.step_timeout if timeout is None else min(timeout, self.step_timeout)
            return super().read_until(min_num_bytes, ending, timeout, data_consumer, timeout_overall)

    return BoundedTransport


def _quiet():
    """mpremote prints diagnostics to stdout; keep them off ours."""
    return contextlib.redirect_stdout(io.StringIO())


class BoardSession:
    """One connection to a board in the raw REPL. Use BoardSession.open(...)."""

    def __init__(self, transport, port, timeout, attempts_used):
        self.transport = transport
        self.port = port
        self.timeout = timeout
        self.raw_repl_attempts = attempts_used
        self.bytes_written = 0
        self._made = set()
        self._hasher = False  # _HASHER defined in the board's interpreter (lost at a soft reset)

    @classmethod
    def open(cls, port, timeout=DEFAULT_TIMEOUT, attempts=DEFAULT_ATTEMPTS, soft_reset=True):
        """Open the port and enter the raw REPL, trying up to `attempts` times."""
        import serial
        from mpremote.transport import TransportError

        try:  # mpremote hides why a port cannot be opened; pyserial tells (busy, permission, missing)
            serial.Serial(port, 115200, timeout=timeout, exclusive=True).close()
        except (serial.SerialException, OSError) as e:
            raise open_serial_error(port, e)
        try:
            with _quiet():
                transport = _transport_class()(port, baudrate=115200, timeout=timeout)
                transport.step_timeout = timeout
        except TransportError as e:
            raise open_serial_error(port, e.__cause__ or e.__context__ or e)
        except (serial.SerialException, OSError) as e:
            raise open_serial_error(port, e)
        transport.serial.write_timeout = timeout
        answered = False
        for attempt in range(1, attempts + 1):
            try:
                with _quiet() as junk:
                    transport.enter_raw_repl(soft_reset=soft_reset, timeout_overall=timeout)
                return cls(transport, port, timeout, attempt)
            except (TransportError, serial.SerialException, OSError):
                # mpremote printed what it read instead of the prompt: b'' when nothing came.
                answered = answered or any(ln.strip() not in ("", "b''") for ln in junk.getvalue().splitlines())
        try:
            transport.close()
        except Exception:  # noqa: BLE001 - already failing; the port may be gone
            pass
        if answered:
            raise NotMicroPython("%s: something answers but it is not a MicroPython REPL (tried %d times); is this "
                                 "the right port, and does the board run MicroPython? (flash it with 'civicmote "
                                 "flash')" % (port, attempts))
        raise EnvironmentProblem("%s: the board does not answer (tried %d times, %gs each); press its reset "
                                 "button or re-plug it, then re-run" % (port, attempts, timeout))

    def close(self):
        with contextlib.suppress(Exception), _quiet():
            self.transport.exit_raw_repl()
        with contextlib.suppress(Exception):
            self.transport.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- commands --------------------------------------------------------------------------

    def exec(self, code, timeout=None):
        """Run code on the board; its stdout (bytes). A traceback raises BoardError."""
        import serial
        from mpremote.transport import TransportError

        try:
            with _quiet():
                out, err = self.transport.exec_raw(code, timeout=timeout or self.timeout)
        except (TransportError, serial.SerialException, OSError) as e:
            raise EnvironmentProblem("%s: the board stopped answering (%s); check the cable and re-run"
                                     % (self.port, str(e).strip() or type(e).__name__))
        if err:
            text = err.decode(errors="replace")
            last = [ln for ln in text.strip().splitlines() if ln.strip()]
            last = last[-1].strip() if last else "error"
            if "ENOSPC" in last or last.endswith("28") or "No space" in last:
                raise NoSpace("%s: the board's filesystem is full; remove files from it (mpremote connect %s fs "
                              "ls) or erase it with 'civicmote flash', then re-run" % (self.port, self.port))
            raise BoardError("%s: the board raised %s" % (self.port, last), text)
        return out

    def eval_json(self, expr, timeout=None):
        """The value of a JSON-able expression evaluated on the board."""
        out = self.exec("import json\nprint(json.dumps(%s))" % expr, timeout)
        try:
            return json.loads(out.decode())
        except ValueError:
            raise BoardError("%s: unexpected answer from the board: %r" % (self.port, out[:80]))

    def info(self):
        """{"name", "version": [x, y, z], "mpy": int or None, "platform", "machine", "uid"}."""
        code = ("import sys, json\n"
                "i = sys.implementation\n"
                "try:\n import machine, binascii\n u = binascii.hexlify(bytes(machine.unique_id())).decode()\n"
                "except Exception:\n u = None\n"
                "print(json.dumps({'name': i.name, 'version': list(i.version[:3]), "
                "'mpy': getattr(i, '_mpy', None), 'platform': sys.platform, "
                "'machine': getattr(i, '_machine', ''), 'uid': u}))")
        out = self.exec(code)
        try:
            return json.loads(out.decode())
        except ValueError:
            raise NotMicroPython("%s: the board's answer is not what MicroPython says: %r" % (self.port, out[:80]))

    # -- files -----------------------------------------------------------------------------

    def mkdirs(self, path):
        if path in self._made:
            return
        self._made.add(path)
        self.exec("import os\np = ''\nfor s in %r.strip('/').split('/'):\n p += '/' + s\n try:\n  os.mkdir(p)\n"
                  " except OSError:\n  pass" % path)

    def sha256(self, path):
        """SHA-256 (hex) of a file on the board, computed there; None if it does not exist."""
        return self.sha256_many([path])[path]

    def _load_hasher(self):
        if not self._hasher:
            self.exec(_HASHER)
            self._hasher = True

    def sha256_many(self, paths):
        self._load_hasher()
        return dict(zip(paths, self.eval_json("_h(%r)" % list(paths))))

    def tree(self, root):
        """{path: sha256 hex} of every file under root on the board ({} if root is missing)."""
        self._load_hasher()
        return self.eval_json("_t(%r)" % root, timeout=max(self.timeout, 30))

    def write_file(self, path, data):
        """Write data to path: to path.part in commands of up to PER_EXEC bytes, then the board
        hashes it (SHA-256) and renames it in only if it matches what we sent."""
        data = bytes(data)
        want = hashlib.sha256(data).hexdigest()
        part = path + ".part"
        self._load_hasher()
        offsets = list(range(0, len(data), PER_EXEC)) or [0]
        for n, start in enumerate(offsets):
            lines = ["from binascii import a2b_base64 as _a", "_f = open(%r, %r)" % (part, "wb" if n == 0 else "ab")]
            block = data[start:start + PER_EXEC]
            for i in range(0, len(block), CHUNK):
                lines.append("_f.write(_a(%r))" % binascii.b2a_base64(block[i:i + CHUNK], newline=False))
            lines.append("_f.close()")
            if n == len(offsets) - 1:
                lines.append("_d = _h([%r])[0]\nif _d == %r:\n _r(%r, %r)\nprint(_d)" % (part, want, part, path))
            out = self.exec("\n".join(lines))
            self.bytes_written += len(block)
        got = out.decode().strip()
        if got != want:
            raise BoardError("%s: %s did not arrive intact (SHA-256 %s on the board, %s sent); re-run"
                             % (self.port, path, got[:12] or "missing", want[:12]))

    def read_file(self, path):
        """A file's bytes, or None if it does not exist."""
        out = self.exec("import binascii\ntry:\n f = open(%r, 'rb')\nexcept OSError:\n print('-')\nelse:\n"
                        " while True:\n  b = f.read(%d)\n  if not b:\n   break\n"
                        "  print(binascii.b2a_base64(b).decode().strip())\n f.close()\n print('.')" % (path, CHUNK))
        lines = out.decode().split()
        if lines[:1] == ["-"]:
            return None
        return b"".join(binascii.a2b_base64(ln) for ln in lines[:-1])

    def remove(self, paths):
        """Remove files (missing ones are fine)."""
        if paths:
            self.exec("import os\nfor p in %r:\n try:\n  os.remove(p)\n except OSError:\n  pass" % list(paths))

    def free_bytes(self):
        return self.eval_json("(lambda s: s[0] * s[3])(__import__('os').statvfs('/'))")

    def soft_reset(self):
        """Ctrl-D in the raw REPL: a fresh interpreter (boot.py runs, main.py does not)."""
        from mpremote.transport import TransportError

        try:
            with _quiet():
                self.transport.enter_raw_repl(soft_reset=True, timeout_overall=self.timeout)
            self._hasher = False
            self._made = set()
        except TransportError as e:
            raise EnvironmentProblem("%s: the board did not come back from a soft reset (%s)" % (self.port, e))


_HASHER = """
def _h(paths):
    import hashlib, binascii
    out = []
    buf = bytearray(1024)
    for p in paths:
        try:
            f = open(p, 'rb')
        except OSError:
            out.append(None)
            continue
        h = hashlib.sha256()
        while True:
            n = f.readinto(buf)
            if not n:
                break
            h.update(buf[:n])
        f.close()
        out.append(binascii.hexlify(h.digest()).decode())
    return out
def _r(src, dst):
    import os
    try:
        os.remove(dst)
    except OSError:
        pass
    os.rename(src, dst)
def _t(root):
    import os
    files = []
    def walk(d):
        try:
            entries = list(os.ilistdir(d))
        except OSError:
            return
        for e in entries:
            p = d + '/' + e[0]
            if e[1] & 0x4000:
                walk(p)
            else:
                files.append(p)
    walk(root.rstrip('/'))
    return dict(zip(files, _h(files)))
"""

