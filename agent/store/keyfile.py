"""The device's private key on its own flash or disk (an I/O edge).

Format: a COSE_Key (RFC 9052 §7) in deterministic CBOR, the same on a board and on Linux:
    {1: 2 (kty EC2), 3: -7 (alg ES256), -1: 1 (crv P-256), -2: x, -3: y, -4: d}
The public coordinates are stored beside d so a flipped bit is caught at load (d*G must
equal (x, y)). On Linux the file is mode 0600. The key never leaves this file except as a
signature; nothing here prints or logs it.
"""
from agent import compat
from agent.core import cbor
from agent.errors import DecodeError

KEY_FILE = "device.key"
_KTY, _ALG, _CRV, _X, _Y, _D = 1, 3, -1, -2, -3, -4
_EC2, _ES256, _P256 = 2, -7, 1


def save(path, key):
    """Write key (an agent.crypto signing key) to path atomically, readable by its owner only."""
    pub = key.public_key().to_sec1()
    doc = {_KTY: _EC2, _ALG: _ES256, _CRV: _P256, _X: pub[1:33], _Y: pub[33:65], _D: key.to_bytes()}
    compat.write_file_atomic(path, cbor.dumps(doc), private=True)


def load(path):
    """Read the signing key at path; raise DecodeError naming the file if it is unreadable or corrupt."""
    from agent import crypto

    try:
        with open(path, "rb") as f:
            data = f.read(1024)
    except OSError as e:
        raise DecodeError("%s: cannot read the device key (%s)" % (path, e))
    try:
        doc = cbor.loads(data, max_depth=2)
    except DecodeError as e:
        raise DecodeError("%s: corrupt device key (%s)" % (path, e))
    if not isinstance(doc, dict) or doc.get(_KTY) != _EC2 or doc.get(_CRV) != _P256:
        raise DecodeError("%s: not a P-256 COSE_Key" % path)
    d, x, y = doc.get(_D), doc.get(_X), doc.get(_Y)
    if not (isinstance(d, bytes) and len(d) == 32 and isinstance(x, bytes) and len(x) == 32
            and isinstance(y, bytes) and len(y) == 32):
        raise DecodeError("%s: COSE_Key must hold 32-byte d, x and y" % path)
    try:
        key = crypto.signing_key_from_bytes(d)
    except Exception:
        raise DecodeError("%s: private scalar out of range (corrupt key)" % path)
    if key.public_key().to_sec1() != b"\x04" + x + y:
        raise DecodeError("%s: private and public parts disagree (corrupt key)" % path)
    return key
