"""agent/net/tls_files.py: the DER a board's TLS stack is handed (portable)."""
import binascii

from support import raises, tmpdir

from agent.errors import ConfigError
from agent.net import tls_files

BODY = bytes(range(200))


def _pem(label, body):
    b64 = binascii.b2a_base64(body).decode().strip()
    lines = [b64[i:i + 64] for i in range(0, len(b64), 64)]
    return ("-----BEGIN %s-----\n%s\n-----END %s-----\n" % (label, "\n".join(lines), label)).encode()


def test_der_decodes_pem_and_passes_der_through():
    assert tls_files.der(_pem("CERTIFICATE", BODY)) == BODY
    assert tls_files.der(_pem("EC PRIVATE KEY", BODY).replace(b"\n", b"\r\n")) == BODY
    assert tls_files.der(BODY) == BODY


def test_der_names_the_file_when_pem_is_broken():
    e = raises(ConfigError, tls_files.der, b"-----BEGIN CERTIFICATE-----\nAAAA\n", "/civicmote/ca.crt")
    assert "/civicmote/ca.crt" in str(e) and "END" in str(e)


def _write(path, data):
    with open(path, "wb") as f:
        f.write(data)


def test_load_prefers_der_twins_and_falls_back_to_pem():
    d = tmpdir()
    _write(d + "/ca.crt", _pem("CERTIFICATE", b"ca-pem"))
    _write(d + "/device.crt", _pem("CERTIFICATE", b"cert-pem"))
    _write(d + "/device.pem", _pem("EC PRIVATE KEY", b"key"))
    _write(d + "/ca.der", b"ca-der")
    names = {"cafile": "ca.crt", "certfile": "device.crt", "keyfile": "device.pem",
             "cafile_der": "ca.der", "certfile_der": "device.der"}  # device.der is missing
    creds = tls_files.load(d, names)
    assert creds == {"cadata": b"ca-der", "cert": b"cert-pem", "key": b"key"}
    assert tls_files.load(d, None)["cadata"] == b"ca-pem"  # no names: the PEM defaults


def test_load_names_a_missing_file():
    d = tmpdir()
    e = raises(ConfigError, tls_files.load, d, {})
    assert d + "/ca.crt" in str(e) and "provision" in str(e)
