"""The device's identity where it lives: its key file and the device_id derived from it (I/O edge)."""
from agent import compat, crypto
from agent.core.identity import device_id
from agent.store import keyfile


def key_path(device_dir):
    return device_dir + "/" + keyfile.KEY_FILE


def ensure_key(device_dir, rng=None):
    """Load the device key, or generate one with rng (default os.urandom) if there is none.

    Returns (key, created). An existing key is never replaced: identity is for life, and a
    corrupt key file raises DecodeError rather than being silently regenerated.
    """
    path = key_path(device_dir)
    if compat.file_exists(path):
        return keyfile.load(path), False
    key = crypto.generate_signing_key(rng or compat.urandom)
    keyfile.save(path, key)
    return key, True


def load_key(device_dir):
    return keyfile.load(key_path(device_dir))


def public_identity(key):
    """(device_id, SEC1 public key bytes) of a signing key."""
    pub = key.public_key().to_sec1()
    return device_id(pub), pub


# -- the device's side of provisioning (runs where the key lives: a Pi, a board, a sim folder) --

POP_DOMAIN = b"civicmote-pop-v1\x00"  # a PoP signature can never pass as a COSE one, nor vice versa
POP_CHALLENGE_LEN = 32
TLS_KEY_FILE = "device.pem"
# SEC1 ECPrivateKey (RFC 5915) DER for P-256 is a fixed frame around d and the public point.
_DER_HEAD = b"\x30\x77\x02\x01\x01\x04\x20"
_DER_MID = b"\xa0\x0a\x06\x08\x2a\x86\x48\xce\x3d\x03\x01\x07\xa1\x44\x03\x42\x00"


def pop_message(challenge, dev):
    """The bytes a device signs to prove it holds its key: domain || challenge || device_id."""
    if len(challenge) != POP_CHALLENGE_LEN:
        raise ValueError("challenge: expected %d bytes, got %d" % (POP_CHALLENGE_LEN, len(challenge)))
    return POP_DOMAIN + bytes(challenge) + dev.encode()


def tls_key_pem(key):
    """The key as PEM 'EC PRIVATE KEY' (SEC1), the form TLS stacks load for mutual TLS.
    Built by hand: boards and minimal Linux images have no `cryptography` to do it."""
    import binascii

    der = _DER_HEAD + key.to_bytes() + _DER_MID + key.public_key().to_sec1()
    b64 = binascii.b2a_base64(der).decode().strip()
    lines = [b64[i:i + 64] for i in range(0, len(b64), 64)]
    return ("-----BEGIN EC PRIVATE KEY-----\n" + "\n".join(lines) + "\n-----END EC PRIVATE KEY-----\n").encode()


def write_tls_key(device_dir, key):
    """device_dir/device.pem (owner-only): the same key for TLS. Rewritten only if it differs."""
    path = device_dir + "/" + TLS_KEY_FILE
    data = tls_key_pem(key)
    try:
        with open(path, "rb") as f:
            if f.read() == data:
                return path
    except OSError:
        pass
    compat.write_file_atomic(path, data, private=True)
    return path


def answer_pop(device_dir, challenge):
    """Sign a provisioning challenge with the device key; make sure device.pem exists.

    Returns {device_id, public_key, signature} (hex): only public values leave this function.
    """
    import binascii

    key = load_key(device_dir)
    dev, pub = public_identity(key)
    sig = key.sign(pop_message(challenge, dev))
    write_tls_key(device_dir, key)
    return {"device_id": dev, "public_key": binascii.hexlify(pub).decode(), "signature": binascii.hexlify(sig).decode()}
