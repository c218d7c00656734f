"""Test helpers: a scripted fake broker on a loopback socket, a spy stream, a paho subscriber."""
import socket
import threading
import time

from agent.net import mqtt_codec as mc


class FakeBroker:
    """Accepts TCP on a free loopback port; answers per `mode`:
    "silent": never sends anything; "no_puback": CONNACK, then never a PUBACK;
    "capture": records what clients send and answers CONNACK/PUBACK/SUBACK."""

    def __init__(self, mode="silent"):
        self.mode = mode
        self.srv = socket.socket()
        self.srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.srv.bind(("127.0.0.1", 0))
        self.srv.listen(8)
        self.port = self.srv.getsockname()[1]
        self.received = []  # raw bytes per packet, in order
        self.packets = []
        self.conns = []
        self._stop = False
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        self.srv.settimeout(0.1)
        while not self._stop:
            try:
                conn, _ = self.srv.accept()
            except OSError:
                continue
            self.conns.append(conn)
            threading.Thread(target=self._client, args=(conn,), daemon=True).start()

    def _client(self, conn):
        parser = mc.Parser(mc.SERVER)
        conn.settimeout(0.1)
        while not self._stop:
            try:
                data = conn.recv(4096)
            except socket.timeout:
                continue
            except OSError:
                return
            if not data:
                return
            self.received.append(data)
            parser.feed(data)
            for p in parser.events():
                self.packets.append(p)
                if self.mode == "silent":
                    continue
                if p.KIND == "connect":
                    conn.sendall(mc.connack(0, False))
                elif p.KIND == "publish" and p.qos and self.mode == "capture":
                    conn.sendall(mc.puback(p.packet_id))
                elif p.KIND == "subscribe":
                    conn.sendall(mc.suback(p.packet_id, [q for _, q in p.topics]))
                elif p.KIND == "pingreq":
                    conn.sendall(mc.pingresp())

    def close(self):
        self._stop = True
        for c in self.conns:
            c.close()
        self.srv.close()
        self.thread.join(2)


class SpyStream:
    """Wraps a stream; keeps every byte the client sent."""

    def __init__(self, inner, log):
        self.inner = inner
        self.log = log

    def send(self, data, timeout):
        self.log.append(bytes(data))
        self.inner.send(data, timeout)

    def recv(self, n, timeout):
        return self.inner.recv(n, timeout)

    def close(self):
        self.inner.close()


def sent_packets(log):
    p = mc.Parser(mc.SERVER)
    for chunk in log:
        p.feed(chunk)
    return p.events()


def drive(client, until, timeout=5.0, step=0.02):
    """Run the client's cooperative loop on the real clock until until(events) or timeout."""
    events = []
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        now = time.monotonic()
        client.connect(now)
        events += client.poll(now, wait=step)
        if until(events):
            return events
    raise AssertionError("timed out; events so far: %r; last error: %s" % (events, client.last_error))


class Subscriber:
    """A paho-mqtt 2.x subscriber (an independent MQTT implementation) collecting messages."""

    def __init__(self, port, topic):
        import paho.mqtt.client as paho

        self.messages = []
        self.ready = threading.Event()
        self.c = paho.Client(paho.CallbackAPIVersion.VERSION2, protocol=paho.MQTTv311)
        self.c.on_connect = lambda c, u, f, rc, p: c.subscribe(topic, 1)
        self.c.on_subscribe = lambda c, u, mid, rc, p: self.ready.set()
        self.c.on_message = lambda c, u, m: self.messages.append((m.topic, m.payload, m.retain))
        self.c.connect("127.0.0.1", port, 30)
        self.c.loop_start()
        assert self.ready.wait(5), "subscriber did not get its SUBACK"

    def wait_for(self, pred, timeout=5.0):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            for m in list(self.messages):
                if pred(m):
                    return m
            time.sleep(0.02)
        raise AssertionError("message not received; got %r" % self.messages)

    def close(self):
        self.c.loop_stop()
        self.c.disconnect()
