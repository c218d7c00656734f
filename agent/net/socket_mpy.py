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


def _tls_wrap(sock, host, tls):
    import ssl

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_cert_chain(tls["cert"], tls["key"])
    if tls.get("cadata"):
        ctx.load_verify_locations(cadata=tls["cadata"])
        ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx.wrap_socket(sock, server_hostname=host)


class MpyStream:
    def __init__(self, sock):
        self.sock = sock
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
            data = self.sock.read(n)
        except OSError as e:
            if e.args and e.args[0] in _EAGAIN:
                return b""
            raise TransportError("receive failed: %s" % e)
        if data is None:
            return b""  # non-blocking read with nothing there
        if not data:
            raise TransportError("the broker closed the connection")
        return data

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def opener(tls=None):
    def open_stream(host, port, timeout):
        try:
            addr = socket.getaddrinfo(host, port)[0][-1]
            sock = socket.socket()
            sock.settimeout(timeout)
            sock.connect(addr)
            if tls:
                sock = _tls_wrap(sock, host, tls)  # handshake bounded by the socket timeout
        except OSError as e:
            raise TransportError("cannot connect to %s:%d: %s" % (host, port, e))
        return MpyStream(sock)

    return open_stream
