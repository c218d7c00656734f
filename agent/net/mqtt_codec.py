"""MQTT 3.1.1 codec, sans-I/O: calls in -> bytes out, bytes in -> packets out.

Encoders (`connect`, `publish`, ...) raise ValueError naming the argument when the *caller*
misuses them. The incremental `Parser` raises ProtocolError naming the fault when the
*peer* breaks the protocol; after that the parser stays failed (the connection is dead).
Only QoS 0 and 1 exist here: a device never needs QoS 2.
"""
import struct

from agent.errors import DecodeError
from agent.net.mqtt_packets import (CONNACK, CONNECT, DISCONNECT, PINGREQ, PINGRESP, PUBACK, PUBLISH,
                                    SUBACK, SUBSCRIBE, Connack, Connect, Disconnect, Pingreq, Pingresp,
                                    Puback, Publish, Suback, Subscribe)

MAX_REMAINING = 268435455  # 4-byte varint limit (§2.2.3)
CLIENT = "client"  # parses what a server sends
SERVER = "server"  # parses what a client sends (fake brokers in tests)
_NAMES = {1: "CONNECT", 2: "CONNACK", 3: "PUBLISH", 4: "PUBACK", 5: "PUBREC", 6: "PUBREL", 7: "PUBCOMP",
          8: "SUBSCRIBE", 9: "SUBACK", 10: "UNSUBSCRIBE", 11: "UNSUBACK", 12: "PINGREQ", 13: "PINGRESP",
          14: "DISCONNECT"}
_ACCEPTS = {CLIENT: (CONNACK, PUBLISH, PUBACK, SUBACK, PINGRESP),
            SERVER: (CONNECT, PUBLISH, PUBACK, SUBSCRIBE, PINGREQ, DISCONNECT)}


class ProtocolError(DecodeError):
    """The peer sent bytes that break MQTT 3.1.1; the message names the packet and the fault."""


# -- encoding ---------------------------------------------------------------------------
def encode_length(n):
    """The Remaining Length varint for n (0 .. 268435455)."""
    if n < 0 or n > MAX_REMAINING:
        raise ValueError("remaining length %d outside 0..%d" % (n, MAX_REMAINING))
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | 0x80 if n else b)
        if not n:
            return bytes(out)


def _str(s, what):
    b = s.encode() if isinstance(s, str) else bytes(s)
    if len(b) > 65535:
        raise ValueError("%s is %d bytes; MQTT strings hold at most 65535" % (what, len(b)))
    return struct.pack(">H", len(b)) + b


def _pid(packet_id):
    if not 1 <= packet_id <= 65535:
        raise ValueError("packet_id %r outside 1..65535" % (packet_id,))
    return struct.pack(">H", packet_id)


def _packet(first, body):
    return bytes([first]) + encode_length(len(body)) + body


def connect(client_id, keepalive=60, clean_session=True, will_topic=None, will_message=b"", will_qos=0,
            will_retain=False, username=None, password=None):
    """CONNECT (§3.1). keepalive in seconds, 0..65535 (0 disables it)."""
    if not 0 <= keepalive <= 65535:
        raise ValueError("keepalive %r outside 0..65535 s" % (keepalive,))
    if will_qos not in (0, 1, 2):
        raise ValueError("will_qos %r is not 0, 1 or 2" % (will_qos,))
    if password is not None and username is None:
        raise ValueError("password given without username (MQTT 3.1.1 forbids it)")
    flags = 0x02 if clean_session else 0
    payload = _str(client_id, "client_id")
    if will_topic is not None:
        _check_topic(will_topic, "will_topic")
        flags |= 0x04 | (will_qos << 3) | (0x20 if will_retain else 0)
        payload += _str(will_topic, "will_topic") + _str(will_message, "will_message")
    if username is not None:
        flags |= 0x80
        payload += _str(username, "username")
    if password is not None:
        flags |= 0x40
        payload += _str(password, "password")
    head = _str("MQTT", "protocol name") + bytes([4, flags]) + struct.pack(">H", keepalive)
    return _packet(0x10, head + payload)


def connack(return_code=0, session_present=False):
    """CONNACK (§3.2), for fake brokers in tests."""
    return bytes([0x20, 2, 1 if session_present else 0, return_code])


def publish(topic, payload, qos=0, retain=False, dup=False, packet_id=0):
    """PUBLISH (§3.3). qos 0 or 1; packet_id 1..65535 is required for qos 1."""
    if qos not in (0, 1):
        raise ValueError("qos %r: only 0 and 1 are supported" % (qos,))
    _check_topic(topic, "topic")
    if qos == 0 and dup:
        raise ValueError("dup must be False for qos 0 (§3.3.1.1)")
    first = 0x30 | (0x08 if dup else 0) | (qos << 1) | (0x01 if retain else 0)
    body = _str(topic, "topic") + (_pid(packet_id) if qos else b"") + bytes(payload)
    return _packet(first, body)


def puback(packet_id):
    return b"\x40\x02" + _pid(packet_id)


def subscribe(packet_id, topics):
    """SUBSCRIBE (§3.8): topics is a non-empty list of (filter, qos)."""
    if not topics:
        raise ValueError("subscribe needs at least one topic filter")
    body = _pid(packet_id)
    for flt, qos in topics:
        if qos not in (0, 1, 2):
            raise ValueError("qos %r for %r is not 0, 1 or 2" % (qos, flt))
        if not flt:
            raise ValueError("empty topic filter")
        body += _str(flt, "topic filter") + bytes([qos])
    return _packet(0x82, body)


def suback(packet_id, codes):
    return _packet(0x90, _pid(packet_id) + bytes(codes))


def pingreq():
    return b"\xc0\x00"


def pingresp():
    return b"\xd0\x00"


def disconnect():
    return b"\xe0\x00"


def _check_topic(topic, what):
    if not topic:
        raise ValueError("%s is empty" % what)
    if "+" in topic or "#" in topic:
        raise ValueError("%s %r holds a wildcard" % (what, topic))


# -- decoding ---------------------------------------------------------------------------
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


class Parser:
    """Feed bytes, take packets: `feed(data)`, then `next_event()` until it returns None.

    role: CLIENT (parse what a broker sends) or SERVER (what a client sends).
    max_packet: largest whole packet accepted, in bytes; a larger one is a ProtocolError
    raised as soon as its length is known (nothing that big is buffered).
    """

    def __init__(self, role=CLIENT, max_packet=65536):
        self.role = role
        self.max_packet = max_packet
        self._buf = b""
        self._error = None

    def feed(self, data):
        if self._error:
            raise self._error
        self._buf += bytes(data)

    def next_event(self):
        """The next whole packet, or None when more bytes are needed."""
        if self._error:
            raise self._error
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
                                    % (_NAMES.get(buf[0] >> 4, "packet"), start + length, self.max_packet))
            if len(buf) < start + length:
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


def _decode(role, first, body):
    kind = first >> 4
    flags = first & 0x0F
    name = _NAMES.get(kind)
    if name is None:
        raise ProtocolError("packet type %d is reserved" % kind)
    if kind not in _ACCEPTS[role]:
        raise ProtocolError("%s is not a packet a %s may receive" % (name, role))
    want = 0x02 if kind == SUBSCRIBE else 0
    if kind != PUBLISH and flags != want:
        raise ProtocolError("%s: fixed-header flags 0x%x, must be 0x%x" % (name, flags, want))
    r = _Reader(body, name)
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
    def __init__(self, buf, name):
        self.buf = buf
        self.pos = 0
        self.name = name

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
        b = bytes(self.buf[self.pos:])
        self.pos = len(self.buf)
        return b
