"""Cross-check: the bytes paho-mqtt 2.2.0 writes equal our codec's for the same calls and the
vectors in tests/vectors/mqtt_codec.json (paho is an independent implementation)."""
import time

import paho.mqtt.client as paho

from agent.net import mqtt_codec as mc
from mqtt_fakes import FakeBroker
from support import load_vectors, unhex


def _vector(name):
    for v in load_vectors("mqtt_codec.json")["packets"]:
        if v["name"] == name:
            return unhex(v["hex"].replace(" ", ""))
    raise KeyError(name)


def test_paho_writes_the_same_bytes_as_our_codec():
    fake = FakeBroker("capture")
    c = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="dev", clean_session=False,
                    protocol=paho.MQTTv311)
    c.will_set("a/status", b"offline", 1, True)
    try:
        c.connect("127.0.0.1", fake.port, 30)
        c.loop_start()
        end = time.monotonic() + 5
        while not c.is_connected() and time.monotonic() < end:
            time.sleep(0.01)
        info = c.publish("a/b", b"hi", 1, True)
        info.wait_for_publish(5)
        c.subscribe("civicmote/v1/#", 1)
        time.sleep(0.2)
    finally:
        c.loop_stop()
        c.disconnect()
        fake.close()
    wire = b"".join(fake.received)
    ours = (mc.connect("dev", 30, False, "a/status", b"offline", 1, True)
            + mc.publish("a/b", b"hi", 1, True, False, info.mid)
            + mc.subscribe(info.mid + 1, [("civicmote/v1/#", 1)]))
    assert wire.startswith(ours), (wire.hex(), ours.hex())
    assert ours.startswith(_vector("connect persistent session with retained QoS 1 will"))
