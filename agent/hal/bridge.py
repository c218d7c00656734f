"""Emulated chips outside the board: buses whose other end is a chip server on the network.

On a board a chip is outside the microcontroller; its registers cost the heap nothing. A sim
board whose config.json names a chip server ("chips": "tcp://host:port") gets these buses
instead of the in-process emulators (agent/emulators/, agent/hal/emulated.py), so its heap holds
only what a real board's does. The server (provisioning/field/chip_server.py) runs the same
emulators for the same profile and seed, moved to the board's time on every call.

Wire format, one request at a time over one TCP connection:
    request   u16 length | CBOR [bus name, method, now_ms, arg, ...]
    response  u16 length | CBOR [0, value] or [errno]; for readinto, [0, n] then n raw bytes
An errno is raised here as OSError(errno), as the bus itself would (5 EIO, 19 ENODEV, 110
ETIMEDOUT); a lost connection is OSError(EIO) and the next call reconnects.
"""
import socket
import struct

from agent.core import cbor
from agent.errors import AgentError

EIO = 5


class Bridge:
    """The connection to the chip server; also the "street" whose clock the sensors move."""

    def __init__(self, host, port, timeout=5.0):
        self.host, self.port, self.timeout = host, port, timeout
        self.now_ms = 0
        self._sock = None
        self._head = bytearray(2)

    def set_now(self, now_ms):
        self.now_ms = now_ms

    def bus(self, name):
        return BridgeBus(self, name)

    def call(self, name, method, args, into=None):
        try:
            if self._sock is None:
                self._connect()
            req = cbor.dumps([name, method, self.now_ms] + list(args))
            self._sock.write(struct.pack(">H", len(req)) + req)
            self._read(self._head)
            body = bytearray(struct.unpack(">H", self._head)[0])
            self._read(body)
            got = cbor.loads(bytes(body))
            if got[0] == 0 and into is not None:
                self._read(memoryview(into)[:got[1]])
        except (OSError, ValueError, IndexError, AgentError) as e:  # a garbled answer is a broken bus too
            self.close()
            raise OSError(EIO) from e
        if got[0]:
            raise OSError(got[0])
        return got[1]

    def _connect(self):
        s = socket.socket()
        try:
            s.settimeout(self.timeout)
            s.connect(socket.getaddrinfo(self.host, self.port)[0][-1])
        except OSError:
            s.close()
            raise
        self._sock = s

    def _read(self, buf):
        mv = memoryview(buf)
        while len(mv):
            n = self._sock.readinto(mv)
            if not n:
                raise OSError(EIO)
            mv = mv[n:]

    def close(self):
        if self._sock is not None:
            try:
                self._sock.close()
            except OSError:
                pass
            self._sock = None


class BridgeBus:
    """Any bus (I2C, UART, pin, samples, BLE): each method call is one request to the server."""

    def __init__(self, bridge, name):
        self._bridge = bridge
        self._name = name

    def __getattr__(self, method):
        if method == "rate_hz":  # an attribute of a microphone bus
            return self._bridge.call(self._name, method, ())

        def call(*args):
            return self._bridge.call(self._name, method, args)

        return call

    def readinto(self, buf):
        """Microphone: fill buf (array of int16) with samples; their count. The server sends
        them raw (little-endian, as an I2S DMA buffer holds them), read straight into buf."""
        return self._bridge.call(self._name, "readinto", (len(buf),), into=_bytes_of(buf)) // 2

    def drain(self, fn):
        """BLE: fn(address) for every advertisement heard since the last drain; their count."""
        n, addrs = self._bridge.call(self._name, "drain", ())
        for a in addrs:
            fn(a)
        return n

    def close(self):
        self._bridge.close()


def _bytes_of(samples):
    """The bytes under an array('h') (MicroPython's memoryview has no cast; uctypes does it)."""
    try:
        return memoryview(samples).cast("B")
    except AttributeError:
        import uctypes

        return uctypes.bytearray_at(uctypes.addressof(samples), 2 * len(samples))
