"""MQTT 3.1.1 parsing, sans-I/O: bytes in -> packets out (the decoding half of mqtt_codec).

The incremental `Parser` raises ProtocolError naming the fault when the *peer* breaks the
protocol; after that the parser stays failed (the connection is dead).
"""
import struct

from agent.net.mqtt_packets import (CLIENT, CONNACK, DISCONNECT, PINGREQ, PINGRESP, PUBACK, PUBLISH, SUBACK,
                                    SUBSCRIBE, ACCEPTS, PACKET_NAMES, Connack, Connect, Disconnect, Pingreq,
                                    Pingresp, Puback, Publish, Suback, Subscribe, ProtocolError)


def decode_length(buf, pos=1):
    """(value, end) of the varint at buf[pos:], or None if more bytes are needed."""
    value = 0
    shift = 0
    for i in range(4):
        if pos + i >= len(buf):
            return None
        b = buf[pos + i]
        value |= (b & 0x7F) << shift
        if not b & 0x80:
            return value, pos + i + 1
        shift += 7
    raise ProtocolError("remaining length: continuation bit set in its 4th byte (at most 4 bytes)")


BIG = 1024  # bytes: a packet larger than this is gathered in one buffer of its size, not by concatenation


class Parser:
    """Feed bytes, take packets: `feed(data)`, then `next_event()` until it returns None.

    role: CLIENT (parse what a broker sends) or SERVER (what a client sends).
    max_packet: largest whole packet accepted, in bytes; a larger one is a ProtocolError
    raised as soon as its length is known (nothing that big is buffered).
    reuse: a bytearray allocated once (a board's update block buffer, made while its heap is in
    one piece): a packet over BIG bytes that fits is gathered in it, and its PUBLISH payload is a
    memoryview into it, valid only until the next feed() (the caller handles each event before
    feeding more). Without it a large packet gets a buffer of its own size.
    """

    def __init__(self, role=CLIENT, max_packet=65536, reuse=None):
        self.role = role
        self.max_packet = max_packet
        self._buf = b""
        self._error = None
        self._reuse = reuse
        self._big = None  # a packet over BIG bytes, gathered into one buffer
        self._end = 0  # its length (the buffer may be longer: the reused one)
        self._fill = 0
        self._start = 0

    def feed(self, data):
        if self._error:
            raise self._error
        big = self._big
        if big is not None:  # into its own buffer: no growing copies of a 4 KB update block on a board
            k = self._end - self._fill
            if k > len(data):
                k = len(data)
            big[self._fill:self._fill + k] = data[:k]
            self._fill += k
            if k == len(data):
                return
            data = data[k:]
        self._buf += data  # a copy: data may be the stream's reused buffer

    def next_event(self):
        """The next whole packet, or None when more bytes are needed."""
        if self._error:
            raise self._error
        big = self._big
        if big is not None:
            if self._fill < self._end:
                return None
            self._big = None
            try:
                return _decode(self.role, big[0], memoryview(big)[self._start:self._end], big is self._reuse)
            except ProtocolError as e:
                self._error = e
                raise
        buf = self._buf
        if len(buf) < 2:
            return None
        try:
            got = decode_length(buf)
            if got is None:
                return None
            length, start = got
            if start + length > self.max_packet:
                raise ProtocolError("%s of %d bytes exceeds the %d-byte limit"
                                    % (PACKET_NAMES.get(buf[0] >> 4, "packet"), start + length, self.max_packet))
            if len(buf) < start + length:
                if start + length > BIG:
                    end = start + length
                    r = self._reuse
                    self._big = r if r is not None and len(r) >= end else bytearray(end)
                    self._big[:len(buf)] = buf
                    self._fill, self._start, self._end, self._buf = len(buf), start, end, b""
                return None
            body = buf[start:start + length]
            self._buf = buf[start + length:]
            return _decode(self.role, buf[0], body)
        except ProtocolError as e:
            self._error = e
            raise

    def events(self):
        """Every whole packet buffered so far."""
        out = []
        while True:
            ev = self.next_event()
            if ev is None:
                return out
            out.append(ev)


def _decode(role, first, body, view=False):
    kind = first >> 4
    flags = first & 0x0F
    name = PACKET_NAMES.get(kind)
    if name is None:
        raise ProtocolError("packet type %d is reserved" % kind)
    if kind not in ACCEPTS[role]:
        raise ProtocolError("%s is not a packet a %s may receive" % (name, role))
    want = 0x02 if kind == SUBSCRIBE else 0
    if kind != PUBLISH and flags != want:
        raise ProtocolError("%s: fixed-header flags 0x%x, must be 0x%x" % (name, flags, want))
    r = _Reader(body, name, view)
    if kind == CONNACK:
        r.exact(2)
        ack, rc = r.byte(), r.byte()
        if ack & 0xFE:
            raise ProtocolError("CONNACK: reserved acknowledge-flag bits set (0x%02x)" % ack)
        if rc > 5:
            raise ProtocolError("CONNACK: return code %d is reserved" % rc)
        if rc and ack:
            raise ProtocolError("CONNACK: session present with a refusal (return code %d)" % rc)
        return Connack(rc, bool(ack))
    if kind == PUBLISH:
        qos = (flags >> 1) & 3
        if qos == 3:
            raise ProtocolError("PUBLISH: QoS 3 is invalid")
        if qos == 2:
            raise ProtocolError("PUBLISH: QoS 2 was never requested")
        dup = bool(flags & 0x08)
        if dup and not qos:
            raise ProtocolError("PUBLISH: DUP set on a QoS 0 message")
        topic = r.string("topic")
        if not topic or "+" in topic or "#" in topic:
            raise ProtocolError("PUBLISH: topic %r is empty or holds a wildcard" % topic)
        pid = r.pid() if qos else 0
        return Publish(topic, r.rest(), qos, bool(flags & 1), dup, pid)
    if kind == PUBACK:
        r.exact(2)
        return Puback(r.pid())
    if kind == SUBACK:
        pid = r.pid()
        codes = list(r.rest())
        if not codes:
            raise ProtocolError("SUBACK: no return codes")
        for c in codes:
            if c not in (0, 1, 2, 0x80):
                raise ProtocolError("SUBACK: return code 0x%02x is invalid" % c)
        return Suback(pid, codes)
    if kind in (PINGREQ, PINGRESP, DISCONNECT):
        r.exact(0)
        return {PINGREQ: Pingreq, PINGRESP: Pingresp, DISCONNECT: Disconnect}[kind]()
    if kind == SUBSCRIBE:
        pid = r.pid()
        topics = []
        while not r.done():
            flt = r.string("topic filter")
            qos = r.byte()
            if qos > 2:
                raise ProtocolError("SUBSCRIBE: requested QoS %d for %r" % (qos, flt))
            topics.append((flt, qos))
        if not topics:
            raise ProtocolError("SUBSCRIBE: no topic filters")
        return Subscribe(pid, topics)
    return _decode_connect(r)


def _decode_connect(r):
    proto = r.string("protocol name")
    level = r.byte()
    if proto != "MQTT" or level != 4:
        raise ProtocolError("CONNECT: protocol %r level %d is not MQTT 3.1.1" % (proto, level))
    flags = r.byte()
    if flags & 0x01:
        raise ProtocolError("CONNECT: reserved flag bit 0 is set")
    keepalive = r.u16()
    client_id = r.string("client id")
    will = bool(flags & 0x04)
    will_qos = (flags >> 3) & 3
    will_retain = bool(flags & 0x20)
    if will_qos == 3 or (not will and (will_qos or will_retain)):
        raise ProtocolError("CONNECT: will QoS/retain flags inconsistent (flags 0x%02x)" % flags)
    if flags & 0x40 and not flags & 0x80:
        raise ProtocolError("CONNECT: password flag without user name flag")
    wt = r.string("will topic") if will else None
    wm = r.binary("will message") if will else None
    user = r.string("user name") if flags & 0x80 else None
    pw = r.binary("password") if flags & 0x40 else None
    if not r.done():
        raise ProtocolError("CONNECT: %d trailing bytes" % (len(r.buf) - r.pos))
    return Connect(client_id, keepalive, bool(flags & 0x02), wt, wm, will_qos, will_retain, user, pw)


class _Reader:
    def __init__(self, buf, name, view=False):
        self.buf = buf
        self.pos = 0
        self.name = name
        self.view = view  # rest() gives a view into buf, not a copy

    def exact(self, n):
        if len(self.buf) != n:
            raise ProtocolError("%s: remaining length %d, must be %d" % (self.name, len(self.buf), n))

    def done(self):
        return self.pos >= len(self.buf)

    def take(self, n, what):
        if self.pos + n > len(self.buf):
            raise ProtocolError("%s: %s runs past the end of the packet" % (self.name, what))
        b = self.buf[self.pos:self.pos + n]
        self.pos += n
        return b

    def byte(self):
        return self.take(1, "a flag byte")[0]

    def u16(self):
        return struct.unpack(">H", self.take(2, "a 2-byte field"))[0]

    def pid(self):
        pid = self.u16()
        if pid == 0:
            raise ProtocolError("%s: packet identifier 0" % self.name)
        return pid

    def binary(self, what):
        return bytes(self.take(self.u16(), what))

    def string(self, what):
        b = self.binary(what)
        if b"\x00" in b:
            raise ProtocolError("%s: %s holds U+0000" % (self.name, what))
        try:
            return b.decode("utf-8")
        except UnicodeError:
            raise ProtocolError("%s: %s is not valid UTF-8" % (self.name, what))

    def rest(self):
        b = self.buf[self.pos:] if self.view else bytes(self.buf[self.pos:])
        self.pos = len(self.buf)
        return b
