"""Broker URLs, parsed the same on a board and on the host."""
from agent.errors import ConfigError
from agent.net.url import parse_broker
from support import raises


def test_good_urls():
    assert parse_broker("mqtts://broker.city.example") == ("broker.city.example", 8883, True)
    assert parse_broker("mqtt://10.0.0.2:1884") == ("10.0.0.2", 1884, False)
    assert parse_broker("mqtts://localhost:8883/") == ("localhost", 8883, True)
    assert parse_broker("mqtts://[::1]:9883") == ("::1", 9883, True)
    assert parse_broker("ssl://b") == ("b", 8883, True) and parse_broker("tcp://b") == ("b", 1883, False)


def test_bad_urls_say_what_is_wrong():
    for url, needle in (("broker:1883", "not a broker URL"), ("http://b", "unknown scheme"),
                        ("mqtt://b:99999", "port"), ("mqtt://b:x", "port"), ("mqtt://:1883", "no host"),
                        ("mqtt://u:p@b", "credentials"), ("mqtt://[::1", "unclosed"), (None, "not a broker URL")):
        e = raises(ConfigError, parse_broker, url)
        assert needle in str(e), (url, str(e))
