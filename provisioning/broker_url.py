"""Broker URLs on the host: the agent's parser, with the option or file named in errors (CPython only)."""
from agent.errors import ConfigError
from agent.net.url import parse_broker
from provisioning.errors import UsageError


def parse(url, what="--broker"):
    """(host, port, tls) of a broker URL, or UsageError naming the option or file it came from."""
    try:
        return parse_broker(url)
    except ConfigError as e:
        raise UsageError("%s: %s" % (what, e))
