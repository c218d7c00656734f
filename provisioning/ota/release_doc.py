"""The release document: signed offline by a release key, shown and checked by the city (CPython only).

    cose = sign(key, public_sec1, fields)           # fields: seq, ver, comp, classes, size, sha256, state, privacy, ...
    rel, digest, kid = read(cose)                   # its payload (shape checked), SHA-256 of the bytes, kid
    verify(cose, release_keys, ca_sec1, device_keys)  # raise Refused naming the signer when not a release key

The city's tools refuse what a device refuses (agent/ota/docs.py checks the same on the device):
a document not signed by one of the pinned release keys, and by name the provisioning CA or a
device key as signer (neither may ever say what code is genuine), a flipped bit, trailing bytes.
"""
import hashlib

from agent.errors import AgentError


class Refused(Exception):
    """A release the city must not roll out; str(e) starts with the device's reason code."""


def sign(key, public_sec1, fields):
    from agent.ota import docs

    return docs.make_release(key, public_sec1, **fields)


def read(cose):
    """(release map, SHA-256 of the document, kid bytes); Refused("bad_sig: ...") if not a release."""
    from agent.core import cose as cose_mod
    from agent.ota import docs

    try:
        if len(cose) > docs.MAX_DOC:
            raise docs.Refused("malformed", "release: more than %d bytes" % docs.MAX_DOC)
        msg = cose_mod.decode1(bytes(cose))
        rel = docs._parse(msg.payload, "release", docs.RELEASE_FIELDS, docs.RELEASE_OPTIONAL)
    except docs.Refused as e:
        raise Refused("%s: %s" % (e.reason, e))
    except AgentError as e:
        raise Refused("malformed: not a release document (%s)" % e)
    return rel, hashlib.sha256(bytes(cose)).digest(), msg.kid


def _verifies(cose, sec1):
    from agent.core import cose as cose_mod
    from agent.crypto import verifying_key_from_sec1

    try:
        cose_mod.decode1(bytes(cose)).verify(verifying_key_from_sec1(sec1))
        return True
    except AgentError:
        return False


def verify(cose, release_keys, ca_sec1=None, device_keys=None):
    """The release map if one of release_keys (SEC1) signed cose; else raise Refused naming why.
    ca_sec1 / device_keys ({device_id: SEC1}): named as the wrong signer when they did sign it."""
    from agent.crypto import verifying_key_from_sec1
    from agent.ota import docs

    rel, digest, kid = read(cose)
    if ca_sec1 is not None and _verifies(cose, ca_sec1):
        raise Refused("wrong_signer: signed by the provisioning CA, which may never say what code is genuine")
    for dev, sec1 in sorted((device_keys or {}).items()):
        if _verifies(cose, sec1):
            raise Refused("wrong_signer: signed by device %s's key" % dev)
    try:
        return docs.open_release(bytes(cose), list(release_keys), verifying_key_from_sec1)[0]
    except docs.Refused as e:
        raise Refused("%s: %s" % (e.reason, e))
