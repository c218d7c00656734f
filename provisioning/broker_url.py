"""Broker URLs: mqtt://HOST[:PORT] (plain, 1883) and mqtts://HOST[:PORT] (TLS, 8883) (CPython only)."""
from urllib.parse import urlsplit

from provisioning.errors import UsageError

SCHEMES = {"mqtt": (False, 1883), "tcp": (False, 1883), "mqtts": (True, 8883), "ssl": (True, 8883)}


def parse(url, what="--broker"):
    """(host, port, tls) of a broker URL, or UsageError naming the option."""
    try:
        u = urlsplit(url)
        port = u.port
    except ValueError as e:
        raise UsageError("%s: %r is not a broker URL (%s)" % (what, url, e))
    if u.scheme not in SCHEMES or not u.hostname:
        raise UsageError("%s: %r is not a broker URL; use mqtt://HOST:PORT or mqtts://HOST:PORT" % (what, url))
    tls, default_port = SCHEMES[u.scheme]
    return u.hostname, port or default_port, tls
