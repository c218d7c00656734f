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
