"""A chip server: a sim board's emulated chips, outside the board (CPython only).

    python -m provisioning.field.chip_server --board DEVICE/board.json [--port 0] [--seed 1]

A MicroPython board whose config.json says "chips": "tcp://HOST:PORT" reads its emulated
buses through agent/hal/bridge.py instead of running the emulators in its own heap: the chips
sit outside the microcontroller, as real ones do, and the board's heap holds only what a real
board's holds. This server runs the same emulators (agent/emulators/, agent/hal/emulated.py)
for the same profile and seed (the board uses seed 1), and moves the scripted street to the
board's time on every call. It prints one line, `chip server: listening on HOST:PORT`, then
serves until stopped. Wire format: agent/hal/bridge.py.
"""
import argparse
import socket
import socketserver
import struct
import sys
import threading
from array import array

from agent.board import load_profile
from agent.core import cbor
from agent.emulators.street import Street
from agent.sensors.assembly import emulated_bus, sensors_on

# What a board may call, per bus kind (anything else is refused, never looked up by name).
METHODS = {"readfrom_mem", "writeto_mem", "readfrom", "writeto", "scan", "delay_ms", "any", "read", "write",
           "take_count", "start"}
EINVAL = 22


class Chips:
    """The emulated buses of one board profile, and their street."""

    def __init__(self, board, seed=1):
        self.street = Street(seed)
        self.buses = {}
        for name in sorted(board.buses):
            spec = board.buses[name]
            if spec["backing"] == "emulated":
                self.buses[name] = emulated_bus(spec, sensors_on(board, name), self.street)
        self.lock = threading.Lock()
        self.calls = 0

    def handle(self, request):
        """(CBOR response, raw bytes to send after it) for one decoded request."""
        name, method, now_ms, args = request[0], request[1], request[2], request[3:]
        bus = self.buses.get(name)
        with self.lock:
            self.calls += 1
            if bus is None:
                return [EINVAL], b""
            self.street.set_now(now_ms)
            try:
                if method == "rate_hz":
                    return [0, bus.rate_hz], b""
                if method == "readinto":
                    buf = array("h", bytes(2 * int(args[0])))
                    n = bus.readinto(buf)
                    if sys.byteorder != "little":
                        buf.byteswap()  # the wire carries little-endian samples, as I2S DMA does
                    raw = buf.tobytes()[:2 * n]
                    return [0, len(raw)], raw
                if method == "drain":
                    seen = []
                    n = bus.drain(lambda a: seen.append(bytes(a)))
                    return [0, [n, seen]], b""
                if method not in METHODS:
                    return [EINVAL], b""
                got = getattr(bus, method)(*args)
                return [0, bytes(got) if isinstance(got, (bytes, bytearray)) else got], b""
            except OSError as e:
                return [e.args[0] if e.args and isinstance(e.args[0], int) else 5], b""


class _Handler(socketserver.BaseRequestHandler):
    def handle(self):
        chips = self.server.chips
        sock = self.request
        self.server.conns.add(sock)
        while True:
            head = _read(sock, 2)
            if head is None:
                return
            body = _read(sock, struct.unpack(">H", head)[0])
            if body is None:
                return
            try:
                resp, raw = chips.handle(cbor.loads(body))
            except (ValueError, IndexError, TypeError):
                resp, raw = [EINVAL], b""
            out = cbor.dumps(resp)
            sock.sendall(struct.pack(">H", len(out)) + out + raw)


def _read(sock, n):
    buf = bytearray()
    while len(buf) < n:
        b = sock.recv(n - len(buf))
        if not b:
            return None
        buf += b
    return bytes(buf)


class ChipServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, board, host="127.0.0.1", port=0, seed=1):
        super().__init__((host, port), _Handler)
        self.chips = Chips(board, seed)
        self.conns = set()  # open connections, closed by stop() (a board then sees its chips gone)

    @property
    def url(self):
        return "tcp://%s:%d" % self.server_address[:2]

    def start(self):
        """Serve in a background thread; returns self."""
        threading.Thread(target=self.serve_forever, daemon=True).start()
        return self

    def stop(self):
        self.shutdown()
        self.server_close()
        for sock in list(self.conns):
            try:
                sock.shutdown(socket.SHUT_RDWR)
                sock.close()
            except OSError:
                pass
        self.conns.clear()


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m provisioning.field.chip_server",
                                 description="Serve a sim board's emulated chips over TCP (agent/hal/bridge.py).")
    ap.add_argument("--board", required=True, help="the board profile (the device's board.json)")
    ap.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    ap.add_argument("--port", type=int, default=0, help="TCP port (default: a free one, printed)")
    ap.add_argument("--seed", type=int, default=1, help="the street's seed (a board uses 1)")
    args = ap.parse_args(argv)
    srv = ChipServer(load_profile(args.board), args.host, args.port, args.seed)
    print("chip server: listening on %s:%d" % srv.server_address[:2], flush=True)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
