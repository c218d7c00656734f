"""Streams over MicroPython sockets, plain or mutual TLS through `ssl` (MicroPython 1.23+).

`opener(tls=None)` returns the `open_stream(host, port, timeout)` factory MQTTClient takes.
tls: None or a dict {cadata, cert, key} of DER bytes (agent.net.tls_files.load: the device
certificate and its key as provisioned to flash; cadata is the city CA that signed the
broker's certificate). DER because many MicroPython builds' mbedTLS parse nothing else.

After connecting, the socket is non-blocking and every wait goes through select.poll with
a timeout, so a silent broker costs at most `timeout` per call. The WebAssembly port has no
sockets; tests/test_board_native.py runs this module on the native unix port against a real
Mosquitto over mutual TLS (its mbedTLS parses only DER, as on rp2 boards).
"""
import select
import socket

from agent.net.transport import TransportError

_EAGAIN = (11, 110, 115, 116)  # EAGAIN, ETIMEDOUT, EINPROGRESS, and lwIP's variants


def _tls_context(tls):
    import ssl

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_cert_chain(tls["cert"], tls["key"])
    if tls.get("cadata"):
        ctx.load_verify_locations(cadata=tls["cadata"])
        ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


class MpyStream:
    def __init__(self, sock, rbuf=None):
        self.sock = sock
        self._rbuf = rbuf if rbuf is not None else bytearray(1024)  # reads land here: no new bytes per read
        self.poller = select.poll()
        self.poller.register(sock, select.POLLIN)
        sock.setblocking(False)

    def _wait(self, mask, timeout):
        self.poller.modify(self.sock, mask)
        for _, ev in self.poller.poll(int(timeout * 1000)):
            if ev & (select.POLLERR | select.POLLHUP) and not ev & select.POLLIN:
                raise TransportError("the connection to the broker broke")
            return True
        return False

    def send(self, data, timeout):
        mv = memoryview(data)
        while len(mv):
            if not self._wait(select.POLLOUT, timeout):
                raise TransportError("send timed out after %ss" % timeout)
            try:
                n = self.sock.write(mv)
            except OSError as e:
                if e.args and e.args[0] in _EAGAIN:
                    continue
                raise TransportError("send failed: %s" % e)
            if n:
                mv = mv[n:]

    def recv(self, n, timeout):
        if timeout and not self._wait(select.POLLIN, timeout):
            return b""
        try:
            k = self.sock.readinto(memoryview(self._rbuf)[:n])
        except OSError as e:
            if e.args and e.args[0] in _EAGAIN:
                return b""
            raise TransportError("receive failed: %s" % e)
        if k is None:
            return b""  # non-blocking read with nothing there
        if not k:
            raise TransportError("the broker closed the connection")
        return memoryview(self._rbuf)[:k]  # valid until the next recv: the caller copies it

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def opener(tls=None):
    # The TLS context (credentials parsed, the random generator seeded) is made once, here at
    # start-up while the heap is in one piece, and serves every connection: it is the largest
    # TLS object in the heap (3 KB on the unix port), and after a day of windows a board's
    # heap may no longer have 3 KB in one piece for a new one at each reconnection.
    ctx = _tls_context(tls) if tls else None
    rbuf = bytearray(1024)  # one receive buffer for every connection (one at a time), made now

    def open_stream(host, port, timeout):
        sock = None
        try:
            addr = socket.getaddrinfo(host, port)[0][-1]
            sock = socket.socket()
            sock.settimeout(timeout)
            sock.connect(addr)
            if ctx is not None:
                sock = ctx.wrap_socket(sock, server_hostname=host)  # handshake bounded by the socket timeout
        except Exception as e:  # noqa: BLE001 - OSError, or MemoryError in a handshake
            # A failed attempt gives its socket back: a board has a handful (lwIP), and an
            # outage of a day is a thousand attempts.
            if sock is not None:
                try:
                    sock.close()
                except OSError:
                    pass
            raise TransportError("cannot connect to %s:%d: %s" % (host, port, e))
        return MpyStream(sock, rbuf)

    return open_stream
