"""MQTT 3.1.1 control packets as plain values: what mqtt_codec's parser hands out."""
from agent.errors import DecodeError

CONNECT = 1
CONNACK = 2
PUBLISH = 3
PUBACK = 4
SUBSCRIBE = 8
SUBACK = 9
PINGREQ = 12
PINGRESP = 13
DISCONNECT = 14

MAX_REMAINING = 268435455  # 4-byte varint limit (§2.2.3)
CLIENT = "client"  # parses what a server sends
SERVER = "server"  # parses what a client sends (fake brokers in tests)
PACKET_NAMES = {1: "CONNECT", 2: "CONNACK", 3: "PUBLISH", 4: "PUBACK", 5: "PUBREC", 6: "PUBREL", 7: "PUBCOMP",
                8: "SUBSCRIBE", 9: "SUBACK", 10: "UNSUBSCRIBE", 11: "UNSUBACK", 12: "PINGREQ", 13: "PINGRESP",
                14: "DISCONNECT"}
ACCEPTS = {CLIENT: (CONNACK, PUBLISH, PUBACK, SUBACK, PINGRESP),  # what each side may receive
           SERVER: (CONNECT, PUBLISH, PUBACK, SUBSCRIBE, PINGREQ, DISCONNECT)}


class ProtocolError(DecodeError):
    """The peer sent bytes that break MQTT 3.1.1; the message names the packet and the fault."""


# CONNACK return codes (MQTT 3.1.1 §3.2.2.3)
CONNACK_REASONS = (
    "accepted",
    "unacceptable protocol version",
    "identifier rejected",
    "server unavailable",
    "bad user name or password",
    "not authorized",
)


class Packet:
    """Base: KIND names the packet, FIELDS its attributes (for equality and repr)."""

    KIND = "packet"
    FIELDS = ()

    def __eq__(self, other):
        if type(self) is not type(other):
            return False
        for f in self.FIELDS:
            if getattr(self, f) != getattr(other, f):
                return False
        return True

    def __ne__(self, other):
        return not self.__eq__(other)

    def __repr__(self):
        return "%s(%s)" % (self.KIND, ", ".join("%s=%r" % (f, getattr(self, f)) for f in self.FIELDS))


class Connect(Packet):
    KIND = "connect"
    FIELDS = ("client_id", "keepalive", "clean_session", "will_topic", "will_message", "will_qos",
              "will_retain", "username", "password")

    def __init__(self, client_id, keepalive, clean_session, will_topic=None, will_message=None,
                 will_qos=0, will_retain=False, username=None, password=None):
        self.client_id = client_id
        self.keepalive = keepalive
        self.clean_session = clean_session
        self.will_topic = will_topic
        self.will_message = will_message
        self.will_qos = will_qos
        self.will_retain = will_retain
        self.username = username
        self.password = password


class Connack(Packet):
    KIND = "connack"
    FIELDS = ("return_code", "session_present")

    def __init__(self, return_code, session_present):
        self.return_code = return_code
        self.session_present = session_present


class Publish(Packet):
    KIND = "publish"
    FIELDS = ("topic", "payload", "qos", "retain", "dup", "packet_id")

    def __init__(self, topic, payload, qos=0, retain=False, dup=False, packet_id=0):
        self.topic = topic
        self.payload = payload
        self.qos = qos
        self.retain = retain
        self.dup = dup
        self.packet_id = packet_id


class Puback(Packet):
    KIND = "puback"
    FIELDS = ("packet_id",)

    def __init__(self, packet_id):
        self.packet_id = packet_id


class Subscribe(Packet):
    KIND = "subscribe"
    FIELDS = ("packet_id", "topics")

    def __init__(self, packet_id, topics):
        self.packet_id = packet_id
        self.topics = topics  # [(filter, qos)]


class Suback(Packet):
    KIND = "suback"
    FIELDS = ("packet_id", "codes")

    def __init__(self, packet_id, codes):
        self.packet_id = packet_id
        self.codes = codes


class Pingreq(Packet):
    KIND = "pingreq"


class Pingresp(Packet):
    KIND = "pingresp"


class Disconnect(Packet):
    KIND = "disconnect"
