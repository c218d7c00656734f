"""A Linux device's link to the broker, and the commissioning check that proves it (CPython only).

`open_transport` gives the agent its MQTT transport: paho-mqtt when it is installed, else the
agent's own MQTT 3.1.1 client (agent/net/mqtt_client.py, the one MicroPython boards run) over
CPython's socket and ssl modules. So a stock Python 3.11 with no pip packages (a fresh
Raspberry Pi OS image) runs the agent as it is shipped by `civicmote provision --target ssh://`.

`check` is `civicmote device check`: the device connects to its broker once with its own
certificate, the same code the service runs, and says whether the broker let it in. It uses a
client id of its own (DEVICE_ID-check, clean session, no will), so a running agent is not
knocked off the broker by the check.
"""
import os
import time

from provisioning.errors import EnvironmentProblem, StateError, UsageError

CHECK_ATTEMPTS = 3  # connection attempts a check makes (with the transport's backoff) before it says why not
TLS_FILES = (("cafile", "ca.crt"), ("certfile", "device.crt"), ("keyfile", "device.pem"))
# Reasons that mean the broker (or its CRL) refused this device, not that it was out of reach.
REFUSED_WORDS = ("refused the connection", "not authori", "bad user name", "revoked", "certificate unknown",
                 "bad certificate", "unknown ca", "certificate verify failed", "access denied",
                 "refuses the client certificate")


def transport_kind():
    """'paho' when paho-mqtt imports, else 'stdlib' (our own client on socket + ssl)."""
    try:
        import paho.mqtt.client  # noqa: F401
    except ImportError:
        return "stdlib"
    return "paho"


def tls_files(device_dir, config):
    """{cafile, certfile, keyfile} paths from config.json's "tls" (defaults beside), each checked to exist."""
    cfg = (config or {}).get("tls") or {}
    tls = {k: os.path.join(device_dir, cfg.get(k, default)) for k, default in TLS_FILES}
    for k, path in tls.items():
        if not os.path.exists(path):
            raise UsageError("%s: missing (%s for TLS); provision the device first: civicmote provision "
                             "--target %s ..." % (path, k, device_dir))
    return tls


def open_transport(device_dir, config, client_id, broker, status_topic, timeout=5.0, clean_session=False):
    """The transport for broker = (host, port, use_tls), with the device's own certificate for TLS."""
    host, port, use_tls = broker
    tls = tls_files(device_dir, config) if use_tls else None
    if transport_kind() == "paho":
        from agent.net.paho_transport import PahoTransport

        return Remembering(PahoTransport(host, port, client_id, tls=tls, status_topic=status_topic,
                                         timeout=timeout, clean_session=clean_session))
    from agent.net import socket_cpython
    from agent.net.mqtt_client import MQTTClient

    try:
        opener = socket_cpython.opener(tls)
    except (OSError, ValueError) as e:  # ssl.SSLError is an OSError: a file ssl cannot load
        raise UsageError("%s: the TLS files cannot be loaded (%s); re-run civicmote provision" % (device_dir, e))
    return Remembering(MQTTClient(host, port, client_id, opener, timeout=timeout, clean_session=clean_session,
                                  status_topic=status_topic))


class Remembering:
    """A transport that also remembers the last reason the broker *refused* the device.

    Over TLS 1.3 a broker that rejects the client certificate says so once (an alert); the
    retries after it end in a bare EOF. `refusal` keeps the telling reason for the exit code."""

    def __init__(self, transport):
        self._t = transport
        self.refusal = None

    def __getattr__(self, name):
        return getattr(self._t, name)

    def _note(self):
        if self._t.last_error and refused(self._t.last_error):
            self.refusal = self._t.last_error

    def connect(self, now):
        try:
            return self._t.connect(now)
        finally:
            self._note()

    def poll(self, now, wait=0):
        try:
            return self._t.poll(now, wait)
        finally:
            self._note()


def refused(reason):
    """True when a loss reason says the broker refused this device (exit 4), not that it was unreachable (3)."""
    text = (reason or "").lower()
    return any(w in text for w in REFUSED_WORDS)


def check(device_dir, dev, broker, url, config, timeout_s=15.0, clock=time.monotonic, sleep=time.sleep):
    """Connect once as DEVICE_ID-check; a record on success, else StateError (refused) / EnvironmentProblem."""
    t = open_transport(device_dir, config, dev + "-check", broker, None, timeout=min(5.0, timeout_s),
                       clean_session=True)
    start = clock()
    deadline = start + timeout_s
    try:
        while clock() < deadline:
            now = clock()
            if t.connect(now):
                return {"device_id": dev, "broker": url, "connected": True, "transport": transport_kind(),
                        "seconds": round(clock() - start, 3)}
            t.poll(now, wait=0.1)
            if t.refusal or getattr(getattr(t, "backoff", None), "failures", 0) >= CHECK_ATTEMPTS:
                break
            sleep(0.05)
    finally:
        t.close()
    reason = t.refusal or t.last_error or "no answer within %g s" % timeout_s
    if refused(reason):
        raise StateError("device %s: the broker %s refused it (%s); check that it is active in the registry and "
                         "that the broker's CRL and ACL are current (civicmote broker-config)" % (dev, url, reason))
    raise EnvironmentProblem("device %s: cannot reach the broker %s (%s); check the address, the network and "
                             "the firewall, then re-run" % (dev, url, reason))
