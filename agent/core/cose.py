"""COSE_Sign1 (RFC 9052) with ES256, exactly as the wire contract says (pure).

    18([ h'A10126',            protected header {1: -7}  (alg: ES256)
         {4: h'<device_id>'},  unprotected header {4: kid}
         h'<payload>',         deterministic CBOR
         h'<r||s>' ])          64 bytes

The signature covers Sig_structure = ["Signature1", protected, h'', payload] (RFC 9052 §4.4).
Signing keys are any object with sign(message) -> 64 bytes; verifying keys any object with
verify(signature, message) that raises on failure (agent.crypto provides both).
"""
from agent.core import cbor
from agent.errors import DecodeError, SignatureError

TAG_SIGN1 = 18
ALG_ES256 = -7
HDR_ALG = 1
HDR_KID = 4
PROTECTED_ES256 = cbor.dumps({HDR_ALG: ALG_ES256})  # b'\xa1\x01\x26'
MAX_MESSAGE = 16384  # bytes; a summary is a few hundred


def sig_structure(protected, payload, external_aad=b""):
    """The bytes that are signed: CBOR of ["Signature1", protected, external_aad, payload]."""
    return cbor.dumps(["Signature1", protected, external_aad, payload])


def sign1(payload, key, kid):
    """A COSE_Sign1 message (bytes) over payload (bytes), signed by key, with kid (bytes)."""
    if not isinstance(payload, (bytes, bytearray)):
        raise TypeError("payload must be bytes (the deterministic CBOR of the summary)")
    signature = key.sign(sig_structure(PROTECTED_ES256, bytes(payload)))
    return cbor.dumps(cbor.Tag(TAG_SIGN1, [PROTECTED_ES256, {HDR_KID: bytes(kid)}, bytes(payload), signature]))


class Sign1:
    """A parsed COSE_Sign1 message. Nothing in it is trusted until verify() returns."""

    def __init__(self, protected, unprotected, payload, signature):
        self.protected = protected
        self.unprotected = unprotected
        self.payload = payload
        self.signature = signature

    @property
    def kid(self):
        return self.unprotected.get(HDR_KID)

    def kid_text(self):
        """The kid as text (our kids are device_ids), or raise DecodeError."""
        kid = self.kid
        if not isinstance(kid, bytes):
            raise DecodeError("COSE_Sign1: unprotected header has no kid (label 4)")
        try:
            return kid.decode()
        except Exception:
            raise DecodeError("COSE_Sign1: kid is not UTF-8")

    def verify(self, verifying_key):
        """Raise SignatureError unless the signature is valid for verifying_key; return the payload."""
        verifying_key.verify(self.signature, sig_structure(self.protected, self.payload))
        return self.payload


def decode1(message):
    """Parse a COSE_Sign1 message, checking its shape and algorithm; raise DecodeError naming the fault."""
    if not isinstance(message, (bytes, bytearray)):
        raise DecodeError("COSE_Sign1: message must be bytes")
    if len(message) > MAX_MESSAGE:
        raise DecodeError("COSE_Sign1: message of %d bytes exceeds %d" % (len(message), MAX_MESSAGE))
    try:
        obj = cbor.loads(bytes(message), max_depth=8)
    except DecodeError as e:
        raise DecodeError("not a COSE_Sign1 message (%s)" % e)
    if not isinstance(obj, cbor.Tag) or obj.tag != TAG_SIGN1:
        raise DecodeError("COSE_Sign1: expected CBOR tag 18")
    arr = obj.value
    if not isinstance(arr, list) or len(arr) != 4:
        raise DecodeError("COSE_Sign1: expected an array of 4 items")
    protected, unprotected, payload, signature = arr
    if not isinstance(protected, bytes):
        raise DecodeError("COSE_Sign1: protected header must be a byte string")
    if not isinstance(unprotected, dict):
        raise DecodeError("COSE_Sign1: unprotected header must be a map")
    if not isinstance(payload, bytes):
        raise DecodeError("COSE_Sign1: payload must be a byte string (detached payloads are not used)")
    if not isinstance(signature, bytes):
        raise DecodeError("COSE_Sign1: signature must be a byte string")
    prot = cbor.loads(protected, max_depth=4) if protected else {}
    if not isinstance(prot, dict) or prot.get(HDR_ALG) != ALG_ES256:
        raise DecodeError("COSE_Sign1: protected header must say alg ES256 (1: -7)")
    if HDR_ALG in unprotected:
        raise DecodeError("COSE_Sign1: alg must not appear in the unprotected header")
    if len(signature) != 64:
        raise SignatureError("COSE_Sign1: ES256 signature must be 64 bytes, got %d" % len(signature))
    return Sign1(protected, unprotected, payload, signature)


def verify1(message, verifying_key):
    """Decode and verify a COSE_Sign1; return the Sign1 (its payload now trusted) or raise."""
    msg = decode1(message)
    msg.verify(verifying_key)
    return msg
