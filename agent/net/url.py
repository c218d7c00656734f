"""Broker URLs (pure, portable): mqtt://HOST[:PORT] (plain, 1883) and mqtts://HOST[:PORT] (TLS, 8883)."""
from agent.errors import ConfigError

SCHEMES = {"mqtt": (False, 1883), "tcp": (False, 1883), "mqtts": (True, 8883), "ssl": (True, 8883)}


def parse_broker(url):
    """(host, port, tls) of a broker URL; ConfigError saying what is wrong and what is expected."""
    expect = "use mqtt://HOST[:PORT] or mqtts://HOST[:PORT]"
    if not isinstance(url, str) or "://" not in url:
        raise ConfigError("%r is not a broker URL; %s" % (url, expect))
    scheme, rest = url.split("://", 1)
    if scheme not in SCHEMES:
        raise ConfigError("%r: unknown scheme %r; %s" % (url, scheme, expect))
    tls, port = SCHEMES[scheme]
    rest = rest.split("/", 1)[0]
    if "@" in rest:
        raise ConfigError("%r: credentials in the URL are not used (devices authenticate with certificates)" % url)
    host = rest
    if rest.startswith("["):  # [IPv6]:port
        end = rest.find("]")
        if end < 0:
            raise ConfigError("%r: unclosed [ in the host" % url)
        host, tail = rest[1:end], rest[end + 1:]
        if tail:
            if not tail.startswith(":"):
                raise ConfigError("%r: unexpected %r after the host" % (url, tail))
            port = _port(url, tail[1:])
    elif ":" in rest:
        host, p = rest.rsplit(":", 1)
        port = _port(url, p)
    if not host:
        raise ConfigError("%r: no host; %s" % (url, expect))
    return host, port, tls


def _port(url, text):
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise ConfigError("%r: port %r is not a number from 1 to 65535" % (url, text))
    return int(text)
