# CPython only
"""The demo's stand-in for the city's Mosquitto when Mosquitto cannot be had: amqtt (CPython only).

    python -m provisioning.city.embedded_broker --dir OUT --port PORT [--bind 127.0.0.1]

OUT is a folder written by `civicmote broker-config`; this broker reads the same files
Mosquitto would and enforces the same rules:
  - TLS 1.2 or later, a client certificate required, chained to ca.crt and not on crl.pem;
  - the certificate's CN is the MQTT username (what the CONNECT says is ignored), as
    Mosquitto's use_identity_as_username; no anonymous clients;
  - the `acl` file, read with Mosquitto's rules for the lines broker-config writes (user,
    topic and pattern lines, %u and %c, denials before grants): checked on every PUBLISH,
    SUBSCRIBE and delivery.
Known differences, said plainly: amqtt checks a retained message sent at SUBSCRIBE time only
against the subscription (Mosquitto checks each message); it re-reads nothing on SIGHUP; it
keeps sessions only in memory. It is for `make demo`, never for the city: the real city
broker is Mosquitto with `civicmote broker-config`.

It runs until SIGTERM or SIGINT, logging to stderr.
"""
import argparse
import asyncio
import logging
import signal
import ssl
import sys
from dataclasses import dataclass
from pathlib import Path

from amqtt.broker import Broker
from amqtt.contexts import Action
from amqtt.plugins.base import BaseAuthPlugin, BaseTopicPlugin

log = logging.getLogger("civicmote.embedded_broker")

READ, WRITE = "read", "write"
ACCESS = {"read": {READ}, "write": {WRITE}, "readwrite": {READ, WRITE}, "deny": set()}
NEED = {Action.PUBLISH: WRITE, Action.SUBSCRIBE: READ, Action.RECEIVE: READ}


class Acl:
    """A Mosquitto acl_file: Acl(text).allowed(username, client_id, topic, need) with need 'read'|'write'.

    `topic` is a topic name (publish, delivery) or a subscription filter; an ACL entry must
    cover it whole ('+' covers one level, '#' the rest). A matching deny wins over any grant.
    `topic` lines before the first `user` line are for anonymous clients, whom we never admit.
    """

    def __init__(self, text):
        self.rules = []  # (user or None, is_pattern, access, topic)
        user = None
        for n, raw in enumerate(text.splitlines(), 1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            word, _, rest = line.partition(" ")
            rest = rest.strip()
            if word == "user" and rest:
                user = rest
            elif word in ("topic", "pattern") and rest:
                access, _, topic = rest.partition(" ")
                if access not in ACCESS:
                    access, topic = "readwrite", rest
                topic = topic.strip()
                if not topic:
                    raise ValueError("acl line %d: %s %s has no topic" % (n, word, access))
                self.rules.append((user, word == "pattern", access, topic))
            else:
                raise ValueError("acl line %d: cannot read %r" % (n, line))

    def allowed(self, username, client_id, topic, need):
        if not username:
            return False
        granted = False
        for user, is_pattern, access, entry in self.rules:
            if is_pattern:
                entry = _substitute(entry, username, client_id)
                if entry is None:
                    continue
            elif user != username:
                continue
            if not covers(entry, topic):
                continue
            if access == "deny":
                return False
            granted = granted or need in ACCESS[access]
        return granted


def _substitute(entry, username, client_id):
    """%u and %c filled in; None when a value could widen the entry (it holds '/', '+' or '#')."""
    for key, value in (("%u", username), ("%c", client_id)):
        if key in entry:
            if not value or any(ch in value for ch in "/+#"):
                return None
            entry = entry.replace(key, value)
    return entry


def covers(entry, topic):
    """True when every topic that `topic` (a name or filter) can stand for also matches `entry`."""
    a, t = entry.split("/"), topic.split("/")
    for i, level in enumerate(a):
        if level == "#":
            return True
        if i >= len(t) or t[i] == "#" or (level != "+" and (level != t[i])):
            return False
    return len(a) == len(t)


def peer_cn(ssl_object):
    """The CN of the client certificate that TLS verified on this connection, or None."""
    if ssl_object is None:
        return None
    der = ssl_object.getpeercert(binary_form=True)
    if not der:
        return None
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    names = x509.load_der_x509_certificate(der).subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return names[0].value if names else None


class CertIdentity(BaseAuthPlugin):
    """Admit only clients with a verified certificate; its CN becomes the session's username."""

    async def authenticate(self, *, session):
        cn = peer_cn(session.ssl_object)
        if not cn:
            log.warning("refused %s: no client certificate", session.client_id)
            return False
        session.username = cn
        log.info("%s connected with the certificate of %s", session.client_id, cn)
        return True


class AclFile(BaseTopicPlugin):
    """broker-config's acl file applied to every PUBLISH, SUBSCRIBE and delivery."""

    @dataclass
    class Config:
        acl_file: str = ""

    def __init__(self, context):
        super().__init__(context)
        self.acl = Acl(Path(self.config.acl_file).read_text())

    async def topic_filtering(self, *, session=None, topic=None, action=None):
        if session is None or not topic or action not in NEED:
            return False
        ok = self.acl.allowed(session.username, session.client_id, topic, NEED[action])
        if not ok:
            log.warning("acl: %s (user %s) may not %s %s", session.client_id, session.username, action, topic)
        return ok


class CityBroker(Broker):
    """amqtt's Broker with a client certificate required and each connection's own identity.

    Both overrides touch amqtt internals (pinned amqtt==0.12.1, proved by tests/test_demo.py):
    amqtt verifies a client certificate only if one is offered (CERT_OPTIONAL) and, when a
    client resumes a session (clean_session=False), keeps the TLS object of the session's
    first connection, so the identity would be the old connection's, not this one's.
    """

    def __init__(self, config, crlfile=None):
        super().__init__(config)
        self.crlfile = crlfile

    def _create_ssl_context(self, listener):
        ctx = Broker._create_ssl_context(listener)
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        if self.crlfile:
            ctx.load_verify_locations(cafile=self.crlfile)
            ctx.verify_flags |= ssl.VERIFY_CRL_CHECK_LEAF
        return ctx

    async def _initialize_client_session(self, reader, writer, remote_address, remote_port):
        handler, session = await super()._initialize_client_session(reader, writer, remote_address, remote_port)
        session.ssl_object = writer.get_ssl_info()
        return handler, session


def config(broker_dir, port, bind="127.0.0.1"):
    """The amqtt configuration for broker-config's folder `broker_dir`."""
    d = Path(broker_dir).absolute()
    for name in ("ca.crt", "server.crt", "server.key", "crl.pem", "acl"):
        if not (d / name).is_file():
            raise FileNotFoundError("%s: missing; run civicmote broker-config --out %s first" % (d / name, d))
    listener = {"type": "tcp", "bind": "%s:%d" % (bind, port), "ssl": True, "cafile": str(d / "ca.crt"),
                "certfile": str(d / "server.crt"), "keyfile": str(d / "server.key")}
    return {"listeners": {"default": listener},
            "plugins": {"provisioning.city.embedded_broker.CertIdentity": {},
                        "provisioning.city.embedded_broker.AclFile": {"acl_file": str(d / "acl")}}}


async def serve(broker_dir, port, bind="127.0.0.1"):
    broker = CityBroker(config(broker_dir, port, bind), crlfile=str(Path(broker_dir).absolute() / "crl.pem"))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await broker.start()
    log.info("embedded broker listening on %s:%d (mutual TLS, acl %s)", bind, port, Path(broker_dir) / "acl")
    await stop.wait()
    await broker.shutdown()
    log.info("embedded broker stopped")


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m provisioning.city.embedded_broker", description=__doc__.split("\n")[0])
    p.add_argument("--dir", required=True, help="a folder written by civicmote broker-config")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--bind", default="127.0.0.1")
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    logging.getLogger("transitions").setLevel(logging.WARNING)
    try:
        asyncio.run(serve(a.dir, a.port, a.bind))
    except FileNotFoundError as e:
        print("embedded broker: %s" % e, file=sys.stderr)
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
