"""The CA's private key at rest: scrypt (memory-hard) and AES-256-GCM around its PKCS#8 DER (CPython only).

    -----BEGIN CIVICMOTE ENCRYPTED PRIVATE KEY-----
    base64 of JSON {"v": 1, "kdf": "scrypt", "n": 32768, "r": 8, "p": 3, "salt": hex,
                    "aead": "aes-256-gcm", "nonce": hex, "ct": base64}
    -----END CIVICMOTE ENCRYPTED PRIVATE KEY-----

scrypt with N=2**15, r=8, p=3 is OWASP's minimum (32 MiB per guess, about a second on a
provisioning host), against 2,048 PBKDF2 iterations in the PKCS#8 PEM that `cryptography`
writes. The KDF parameters are authenticated as the AEAD's associated data, and bounded on
reading so a crafted file cannot make unlocking take hours. An empty passphrase is refused on
both sides: a key is never written or read unencrypted.
"""
import base64
import json
import os

BEGIN = b"-----BEGIN CIVICMOTE ENCRYPTED PRIVATE KEY-----"
END = b"-----END CIVICMOTE ENCRYPTED PRIVATE KEY-----"
N, R, P = 1 << 15, 8, 3
MAX_N, MAX_R, MAX_P = 1 << 20, 16, 16


class KeyFileError(ValueError):
    """The file is not a sealed key, or the passphrase does not open it (str says which)."""


def _aad(params):
    return json.dumps({k: params[k] for k in ("v", "kdf", "n", "r", "p", "salt", "aead", "nonce")},
                      sort_keys=True, separators=(",", ":")).encode()


def _kek(passphrase, params):
    from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

    return Scrypt(salt=bytes.fromhex(params["salt"]), length=32, n=params["n"], r=params["r"],
                  p=params["p"]).derive(passphrase.encode())


def seal(private_key, passphrase, n=N, r=R, p=P):
    """PEM-armoured bytes of private_key (a cryptography private key) under passphrase."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    if not passphrase:
        raise KeyFileError("an empty passphrase would leave the key unprotected")
    params = {"v": 1, "kdf": "scrypt", "n": n, "r": r, "p": p, "salt": os.urandom(16).hex(),
              "aead": "aes-256-gcm", "nonce": os.urandom(12).hex()}
    der = private_key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption())
    ct = AESGCM(_kek(passphrase, params)).encrypt(bytes.fromhex(params["nonce"]), der, _aad(params))
    params["ct"] = base64.b64encode(ct).decode()
    body = base64.encodebytes(json.dumps(params, sort_keys=True).encode())
    return BEGIN + b"\n" + body + END + b"\n"


def is_sealed(data):
    return data.lstrip().startswith(BEGIN)


def unseal(data, passphrase):
    """The private key in a sealed file; KeyFileError if malformed or the passphrase is wrong."""
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    if not passphrase:
        raise KeyFileError("empty passphrase")
    try:
        inner = data.strip()[len(BEGIN):-len(END)]
        params = json.loads(base64.b64decode(inner, validate=False))
        ok = (params.get("v") == 1 and params.get("kdf") == "scrypt" and params.get("aead") == "aes-256-gcm"
              and all(type(params.get(k)) is int for k in "nrp") and 1 < params["n"] <= MAX_N
              and params["n"] & (params["n"] - 1) == 0 and 1 <= params["r"] <= MAX_R and 1 <= params["p"] <= MAX_P)
        if not ok or not data.strip().endswith(END):
            raise ValueError("parameters")
        ct = base64.b64decode(params["ct"])
        nonce = bytes.fromhex(params["nonce"])
    except (ValueError, TypeError, KeyError, AttributeError):
        raise KeyFileError("not a civicmote sealed key (damaged, or parameters out of bounds)")
    try:
        der = AESGCM(_kek(passphrase, params)).decrypt(nonce, ct, _aad(params))
    except InvalidTag:
        raise KeyFileError("wrong CA passphrase") from None
    return serialization.load_der_private_key(der, None)
