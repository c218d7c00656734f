"""MQTT 3.1.1 codec, sans-I/O: calls in -> bytes out, bytes in -> packets out.

Encoders (`connect`, `publish`, ...) raise ValueError naming the argument when the *caller*
misuses them. The incremental `Parser` raises ProtocolError naming the fault when the
*peer* breaks the protocol; after that the parser stays failed (the connection is dead).
Only QoS 0 and 1 exist here: a device never needs QoS 2.

This module holds the encoders; the parser is agent/net/mqtt_parser.py (split at the natural
seam between the two directions), re-exported here so `mqtt_codec.Parser` keeps working.
"""
import struct

from agent.net.mqtt_packets import (CLIENT, CONNACK, CONNECT, DISCONNECT, MAX_REMAINING, PINGREQ, PINGRESP,  # noqa: F401
                                    PUBACK, PUBLISH, SERVER, SUBACK, SUBSCRIBE, ProtocolError)
# The decoding half lives in mqtt_parser; it is part of this codec's face for its users.
from agent.net.mqtt_parser import Parser, decode_length  # noqa: F401

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
    return publish_head(topic, len(payload), qos, retain, dup, packet_id) + bytes(payload)


def publish_head(topic, payload_len, qos=0, retain=False, dup=False, packet_id=0):
    """The PUBLISH packet up to its payload: sending it, then the payload as it is, costs no
    copy of the payload (a board's heap may not have a manifest's size in one piece twice)."""
    if qos not in (0, 1):
        raise ValueError("qos %r: only 0 and 1 are supported" % (qos,))
    _check_topic(topic, "topic")
    if qos == 0 and dup:
        raise ValueError("dup must be False for qos 0 (§3.3.1.1)")
    first = 0x30 | (0x08 if dup else 0) | (qos << 1) | (0x01 if retain else 0)
    var = _str(topic, "topic") + (_pid(packet_id) if qos else b"")
    return bytes([first]) + encode_length(len(var) + payload_len) + var


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
