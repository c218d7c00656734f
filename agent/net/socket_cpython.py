# CPython only: socket/TLS streams for agent/net/mqtt_client.py (never imported on MicroPython).
"""Streams over CPython sockets, plain or mutual TLS with the device certificate.

`opener(tls=None)` returns the `open_stream(host, port, timeout)` factory MQTTClient takes.
tls: None, an ssl.SSLContext, or a dict {cafile, certfile, keyfile} (PEM files; the broker's
certificate is verified against cafile, and our certificate is presented to it).
"""
import socket
import ssl

from agent.net.transport import TransportError


def tls_context(cafile, certfile=None, keyfile=None):
    """A client SSLContext: verifies the broker against cafile; presents certfile/keyfile."""
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=cafile)
    if certfile:
        ctx.load_cert_chain(certfile, keyfile)
    return ctx


def client_context(tls):
    """tls: None, an ssl.SSLContext, or {cafile, certfile, keyfile} -> None or an SSLContext."""
    if not tls:
        return None
    if isinstance(tls, dict):
        return tls_context(tls["cafile"], tls.get("certfile"), tls.get("keyfile"))
    return tls


# A TLS 1.3 server that rejects the client certificate sends its alert after the handshake; when the
# client writes first it sees only the closed session. Said plainly, so it is not taken for an outage.
TLS_CLOSED_EARLY = ("the broker closed the TLS session before answering (%s): it refuses the client "
                    "certificate (revoked, unknown CA, expired) or drops clients it does not know")


class SocketStream:
    """send/recv with a timeout on each call; errors become TransportError."""

    def __init__(self, sock):
        self.sock = sock
        self.answered = False  # has the peer sent anything on this connection yet?

    def _closed_early(self, e):
        return isinstance(e, ssl.SSLEOFError) or (isinstance(e, ssl.SSLError) and not self.answered
                                                  and "alert" in str(e))

    def send(self, data, timeout):
        try:
            self.sock.settimeout(timeout)
            self.sock.sendall(data)
        except socket.timeout:
            raise TransportError("send timed out after %ss" % timeout)
        except OSError as e:
            if not self.answered and self._closed_early(e):
                raise TransportError(TLS_CLOSED_EARLY % e)
            raise TransportError("send failed: %s" % e)

    def recv(self, n, timeout):
        """Up to n bytes; b"" when nothing arrived within timeout seconds (0: do not wait)."""
        try:
            if timeout:
                self.sock.settimeout(timeout)
            else:
                self.sock.setblocking(False)
            data = self.sock.recv(n)
        except (socket.timeout, BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
            return b""
        except OSError as e:
            if not self.answered and self._closed_early(e):
                raise TransportError(TLS_CLOSED_EARLY % e)
            raise TransportError("receive failed: %s" % e)
        if not data:
            raise TransportError("the broker closed the connection")
        self.answered = True
        return data

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def opener(tls=None):
    """The open_stream(host, port, timeout) factory for MQTTClient."""
    tls = client_context(tls)

    def open_stream(host, port, timeout):
        try:
            sock = socket.create_connection((host, port), timeout=timeout)
        except OSError as e:
            raise TransportError("cannot connect to %s:%d: %s" % (host, port, e))
        if tls is not None:
            try:
                sock.settimeout(timeout)
                sock = tls.wrap_socket(sock, server_hostname=host)
            except (OSError, ssl.SSLError) as e:
                sock.close()
                raise TransportError("TLS handshake with %s:%d failed: %s" % (host, port, e))
        return SocketStream(sock)

    return open_stream
