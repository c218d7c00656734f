"""Shared helpers for the provisioning tests: a board profile, a CA, a provisioned device, a broker."""
import json
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

PASSPHRASE = "correct horse battery"

BOARD = {
    "board": "sim-linux", "runtime": "cpython", "chip": "sim", "window_s": 60,
    "buses": {"i2c0": {"type": "i2c", "backing": "emulated"}, "gpio": {"type": "pin", "backing": "emulated"}},
    "sensors": {"env": {"driver": "bme280", "bus": "i2c0"}, "pir": {"driver": "pir", "bus": "gpio", "refractory_s": 2}},
    "metrics": {
        "temperature": {"sensor": "env", "reading": "temperature_c", "unit": "degC", "class": "environmental",
                        "description": "air temperature"},
        "motion": {"sensor": "pir", "reading": "motion_events", "unit": "events", "class": "personal",
                   "description": "people passing by",
                   "dp": {"mechanism": "count", "epsilon": "1/2", "per_person": 2, "k": 5}},
    },
    "privacy": {"daily_epsilon": "4"},
}


def write_board(d):
    p = Path(d) / "board.json"
    p.write_text(json.dumps(BOARD))
    return p


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def signed_summary(device_dir, district, seq=1):
    """Act as the device: sign one summary with the key in device_dir (the test may read it; the host never does)."""
    from agent.core import cose, summary
    from agent.store import identity

    key = identity.load_key(str(device_dir))
    dev, _ = identity.public_identity(key)
    s = summary.build(dev, seq, 1700000000, 1700000060, {"temperature": {"mean": 21}}, b"\x00" * 8)
    return dev, "civicmote/v1/%s/%s/summary" % (district, dev), cose.sign1(summary.encode(s), key, dev.encode())


class Mosquitto:
    """A real Mosquitto started with a config that `civicmote broker-config` wrote."""

    def __init__(self, conf, port):
        self.conf, self.port = conf, port
        self.log = open(Path(conf).parent / "mosquitto.log", "w")
        self.proc = subprocess.Popen(["/usr/sbin/mosquitto", "-c", str(conf)], stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.time() + 10
        while time.time() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                return
            except OSError:
                if self.proc.poll() is not None:
                    raise RuntimeError("mosquitto exited: " + (Path(conf).parent / "mosquitto.log").read_text())
                time.sleep(0.05)
        raise RuntimeError("mosquitto did not listen on %d" % port)

    def reload(self):
        self.proc.send_signal(signal.SIGHUP)
        time.sleep(0.5)

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


class Client:
    """A paho-mqtt 2 client over mutual TLS; connect() says whether the broker let us in."""

    def __init__(self, port, cafile, certfile, keyfile, client_id):
        import threading

        import paho.mqtt.client as mqtt

        self.port = port
        self.got = []
        self.connected = threading.Event()
        self.done = threading.Event()
        self.c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id)
        if certfile:
            self.c.tls_set(ca_certs=str(cafile), certfile=str(certfile), keyfile=str(keyfile))
        self.c.on_connect = self._on_connect
        self.c.on_disconnect = lambda *a: self.done.set()
        self.c.on_message = lambda c, u, m: self.got.append((m.topic, m.payload))

    def _on_connect(self, client, userdata, flags, rc, props=None):
        if not rc.is_failure:
            self.connected.set()
        self.done.set()

    def connect(self, timeout=5):
        try:
            self.c.connect("localhost", self.port, keepalive=30)
        except OSError:  # ssl.SSLError is an OSError: the broker refused our certificate
            return False
        self.c.loop_start()
        self.done.wait(timeout)
        return self.connected.is_set()

    def subscribe(self, topic):
        import threading

        ev = threading.Event()
        self.c.on_subscribe = lambda *a: ev.set()
        self.c.subscribe(topic, qos=1)
        assert ev.wait(5), "no SUBACK"

    def publish(self, topic, payload):
        info = self.c.publish(topic, payload, qos=1)
        info.wait_for_publish(5)
        return info

    def close(self):
        try:
            self.c.disconnect()
        finally:
            self.c.loop_stop()


def wait_for(pred, timeout=5):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if pred():
            return True
        time.sleep(0.02)
    return pred()


def env(tmp_path):
    """Environment for run_cli: the CA passphrase and a registry under tmp_path."""
    e = dict(os.environ)
    e["CIVICMOTE_CA_PASSPHRASE"] = PASSPHRASE
    e["CIVICMOTE_REGISTRY"] = str(tmp_path / "registry.db")
    return e
