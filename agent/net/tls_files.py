"""The device's TLS credentials as a board's TLS stack takes them: DER bytes (portable).

MicroPython's `ssl` on mbedTLS parses DER everywhere, PEM only where the build enables it
(ESP32 does; rp2 boards such as the Pico W and the unix port did not before mid-2026:
`load_cert_chain` raises "invalid key" for PEM). So the board always hands DER to `ssl`:
- provisioning writes each certificate in both forms (config.json "tls": cafile/certfile
  name the PEM files Linux uses, cafile_der/certfile_der the DER twins boards use);
- the key is written on the device, as PEM (device.pem); its DER is the base64 inside,
  decoded here in RAM, so the private key is never written a second time.
A file that is already DER is used as it is; a device provisioned before the DER twins
existed still connects (its PEM files are decoded the same way).
"""
import binascii

from agent.errors import ConfigError

# field of the credentials dict -> (config.json "tls" name of the DER file, of the PEM file, default PEM file)
FILES = (
    ("cadata", "cafile_der", "cafile", "ca.crt"),
    ("cert", "certfile_der", "certfile", "device.crt"),
    ("key", None, "keyfile", "device.pem"),
)
_BEGIN = b"-----BEGIN "


def der(data, name="credential"):
    """DER bytes of data: the first PEM block decoded, or data itself if it is not PEM."""
    start = data.find(_BEGIN)
    if start < 0:
        return bytes(data)
    body_at = data.find(b"\n", start)
    end = data.find(b"-----END ", body_at)
    if body_at < 0 or end < 0:
        raise ConfigError("%s: a PEM block without its END line" % name)
    try:
        return binascii.a2b_base64(data[body_at + 1:end].replace(b"\r", b"").replace(b"\n", b""))
    except ValueError:
        raise ConfigError("%s: the PEM block is not base64" % name)


def _read(path):
    with open(path, "rb") as f:
        return f.read()


def load(device_dir, tls_names=None):
    """{cadata, cert, key} as DER for socket_mpy. tls_names: config.json's "tls" object (or None).

    Prefers the DER file where one is named and present; else reads the PEM file and decodes it.
    Raises ConfigError naming the file if none can be read.
    """
    names = tls_names or {}
    out = {}
    for field, der_name, pem_name, default in FILES:
        data = None
        if der_name and names.get(der_name):
            try:
                data = _read(device_dir + "/" + names[der_name])
            except OSError:
                data = None  # fall back to the PEM form
        if data is None:
            path = device_dir + "/" + names.get(pem_name, default)
            try:
                data = _read(path)
            except OSError as e:
                raise ConfigError("%s: cannot read the TLS %s (%s); re-run civicmote provision" % (path, field, e))
            data = der(data, path)
        out[field] = data
    return out
