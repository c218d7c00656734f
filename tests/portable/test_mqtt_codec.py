"""The MQTT 3.1.1 codec, byte for byte against hand-derived vectors (tests/vectors/mqtt_codec.json)."""
from support import load_vectors, raises, unhex

from agent.errors import AgentError
from agent.net import mqtt_codec as mc
from agent.net import mqtt_packets as mp

V = load_vectors("mqtt_codec.json")
CLASSES = {"connect": mp.Connect, "connack": mp.Connack, "publish": mp.Publish, "puback": mp.Puback,
           "subscribe": mp.Subscribe, "suback": mp.Suback, "pingreq": mp.Pingreq, "pingresp": mp.Pingresp,
           "disconnect": mp.Disconnect}


def _hex(v, key="hex"):
    b = unhex(v[key].replace(" ", ""))
    if v.get("hex_tail"):
        b += unhex(v["hex_tail"]) * v["hex_tail_repeat"]
    return b


def _args(v):
    a = {}
    for k, val in v["args"].items():
        if k.endswith("_hex"):
            a[k[:-4]] = unhex(val) * v["args"].get(k[:-4] + "_repeat", 1)
        elif k.endswith("_repeat"):
            continue
        elif k == "topics":
            a[k] = [(t, q) for t, q in val]
        else:
            a[k] = val
    return a


def _encode(kind, a):
    if kind == "connack":
        return mc.connack(a["return_code"], a["session_present"])
    if kind in ("pingreq", "pingresp", "disconnect"):
        return getattr(mc, kind)()
    return getattr(mc, kind)(**a)


def _expected(kind, a):
    if kind == "connect":
        return mp.Connect(a["client_id"], a["keepalive"], a["clean_session"], a.get("will_topic"),
                          a.get("will_message"), a.get("will_qos", 0), a.get("will_retain", False),
                          a.get("username"), a.get("password"))
    return CLASSES[kind](**a)


def test_remaining_length_encodes_and_decodes_spec_boundaries():
    for v in V["remaining_length"]:
        b = unhex(v["hex"])
        assert mc.encode_length(v["value"]) == b, v
        assert mc.decode_length(b"\x30" + b) == (v["value"], 1 + len(b)), v
        assert mc.decode_length(b"\x30" + b[:-1]) is None  # incomplete: more bytes needed
    for n in V["remaining_length_too_big"]:
        raises(ValueError, mc.encode_length, n)


def test_every_packet_encodes_to_its_vector_bytes():
    for v in V["packets"]:
        got = _encode(v["kind"], _args(v))
        assert got == _hex(v), "%s: %s" % (v["name"], got)


def test_every_packet_parses_back_to_its_fields():
    for v in V["packets"]:
        p = mc.Parser(v["role"])
        p.feed(_hex(v))
        ev = p.next_event()
        assert ev == _expected(v["kind"], _args(v)), "%s: %r" % (v["name"], ev)
        assert ev.KIND == v["kind"]
        assert p.next_event() is None


def test_parser_accepts_input_one_byte_at_a_time_and_many_packets_at_once():
    stream = b""
    want = []
    for v in V["packets"]:
        if v["role"] == "client":
            stream += _hex(v)
            want.append(_expected(v["kind"], _args(v)))
    p = mc.Parser(mc.CLIENT)
    got = []
    for i in range(len(stream)):
        p.feed(stream[i:i + 1])
        got.extend(p.events())
    assert got == want
    p = mc.Parser(mc.CLIENT)
    p.feed(stream)
    assert p.events() == want


def test_peer_faults_raise_protocol_error_naming_the_fault():
    for v in V["errors"]:
        p = mc.Parser(v["role"], v.get("max_packet", 65536))
        p.feed(_hex(v))
        e = raises(mc.ProtocolError, p.next_event)
        assert isinstance(e, AgentError)
        assert v["match"] in str(e), "%s: %s" % (v["name"], e)
        # The parser stays failed: the connection is dead.
        raises(mc.ProtocolError, p.next_event)
        raises(mc.ProtocolError, p.feed, b"\xd0\x00")


def test_caller_misuse_raises_value_error_naming_the_argument():
    for v in V["encode_errors"]:
        e = raises(ValueError, _encode, v["kind"], _args(v))
        assert v["match"] in str(e), "%s: %s" % (v["name"], e)


def test_oversized_packet_is_refused_before_it_is_buffered():
    p = mc.Parser(mc.CLIENT, max_packet=100)
    p.feed(b"\x30\xff\xff\x7f")  # announces ~2 MB
    e = raises(mc.ProtocolError, p.next_event)
    assert "exceeds the 100-byte limit" in str(e)


def test_a_large_publish_split_anywhere_parses_with_what_follows_it():
    # An update block (4 KB) is gathered in one buffer of its size; the bytes after it in the same
    # read are the next packets.
    payload = bytes(range(256)) * 17 + b"end"
    big = mc.publish("civicmote/v1/north/cmaaaaaaaaaaaaaaaa/ota/down", payload, 1, False, False, 7)
    stream = big + mc.puback(9) + big + mc.pingresp()
    for step in (1, 7, 1024, 4000, len(stream)):
        p = mc.Parser(mc.CLIENT, 16384)
        got = []
        for i in range(0, len(stream), step):
            p.feed(memoryview(stream)[i:i + step])
            got += p.events()
        assert [e.KIND for e in got] == ["publish", "puback", "publish", "pingresp"], (step, got)
        assert got[0].payload == payload and got[2].payload == payload and got[0].packet_id == 7
        assert got[1].packet_id == 9 and got[0].topic.endswith("/ota/down")
