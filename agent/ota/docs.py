"""Signed update documents: release, rollout order and update status (pure; CDDL in
docs/wire-format.md, "Updates").

Three COSE_Sign1 ES256 documents (agent/core/cose.py), deterministic CBOR, each at most
MAX_DOC bytes:

    release  signed by a pinned release key (offline; never the provisioning CA, never a device
             key): WHAT code is genuine. {"kind": "release", "v": 1, "seq", "ver", "comp",
             "class", "size", "sha256", "state", "privacy", ?"min_seq", ?"exp"}
    order    signed by the city's online rollout key, which the provisioning CA certifies
             (role "rollout", carried in "rc"): WHO gets which release WHEN. {"kind": "order",
             "v": 1, "seq", "release", "district", ?"devices", "pct", "salt", "nb", "exp", "rc"}
    status   signed by the device key: how an update went. {"kind": "ota", "v": 1, "dev",
             "state", "reason", "rseq", "release", "off", "size", "sw", "t"}

A check that fails raises Refused, whose `reason` is one of REASONS (what the device reports in
its status) and whose text names the field. The CA can at most make an order, and an order only
points (by hash) at a release a release key signed: the CA is never trusted for code.
"""
import hashlib
import sys

from agent.core import cbor, cose, receipt
from agent.errors import DecodeError, SignatureError

VERSION = 1
MAX_DOC = 1024  # bytes; a release is about 250, an order with its certificate about 600
STATE_FORMAT = 1  # the device-state format (ledger, seq, progress, outbox) this software reads
ROLLOUT_ROLE = "rollout"
COMPS = ("agent", "fw")
STATES = ("queued", "downloading", "verifying", "trial", "confirmed", "rolled_back", "refused")
REASONS = ("", "bad_sig", "wrong_signer", "stale_seq", "stale_order", "expired", "not_yet", "clock_invalid",
           "wrong_district", "not_member", "wrong_class", "too_big", "bad_digest", "bad_size", "min_seq",
           "state_format", "stalled", "crash_loop", "health_timeout", "no_release_keys", "disk", "malformed",
           "stopped")
SALT_LEN = 8
HASH_LEN = 32
PRIVACY_LEN = 8


class Refused(Exception):
    """A document (or artefact) the device must not act on. reason: one of REASONS."""

    def __init__(self, reason, text):
        super().__init__(text)
        self.reason = reason


def _uint(v):
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


def _bytes(v, n=None):
    return isinstance(v, bytes) and (n is None or len(v) == n)


def _text(v):
    return isinstance(v, str) and 0 < len(v) <= 64


def _texts(v):
    return isinstance(v, list) and 0 < len(v) <= 64 and all(_text(x) for x in v)


# kind -> (required fields, optional fields); each field: (name, check, what it must be)
RELEASE_FIELDS = (("seq", _uint, "uint"), ("ver", _text, "text"), ("comp", lambda v: v in COMPS, "agent or fw"),
                  ("class", _texts, "a list of text"), ("size", _uint, "uint"),
                  ("sha256", lambda v: _bytes(v, HASH_LEN), "32 bytes"), ("state", _uint, "uint"),
                  ("privacy", lambda v: _bytes(v, PRIVACY_LEN), "8 bytes"))
RELEASE_OPTIONAL = (("min_seq", _uint, "uint"), ("exp", _uint, "uint"))
ORDER_FIELDS = (("seq", _uint, "uint"), ("release", lambda v: _bytes(v, HASH_LEN) or v == b"", "32 bytes or empty"),
                ("district", _text, "text"), ("pct", lambda v: _uint(v) and v <= 100, "0..100"),
                ("salt", lambda v: _bytes(v, SALT_LEN), "8 bytes"), ("nb", _uint, "uint"), ("exp", _uint, "uint"),
                ("rc", _bytes, "bytes"))
ORDER_OPTIONAL = (("devices", lambda v: isinstance(v, list) and len(v) <= 256 and all(_text(x) for x in v),
                   "a list of device ids"),)
STATUS_FIELDS = (("dev", _text, "text"), ("state", lambda v: v in STATES, "an update state"),
                 ("reason", lambda v: v in REASONS, "a reason code"), ("rseq", _uint, "uint"),
                 ("release", lambda v: _bytes(v, HASH_LEN) or v == b"", "32 bytes or empty"),
                 ("off", _uint, "uint"), ("size", _uint, "uint"), ("sw", _uint, "uint"), ("t", _uint, "uint"))


def _parse(payload, kind, fields, optional=()):
    """The payload's map after checking every field's type; Refused('malformed') naming the field."""
    try:
        m = cbor.loads(payload, max_depth=4, canonical=True)
    except DecodeError as e:
        raise Refused("malformed", "%s: payload is not deterministic CBOR (%s)" % (kind, e))
    if not isinstance(m, dict) or m.get("kind") != (kind if kind != "status" else "ota") or m.get("v") != VERSION:
        raise Refused("malformed", "%s: not a version %d %s document" % (kind, VERSION, kind))
    n = 2
    for name, ok, what in fields:
        if name not in m or not ok(m[name]):
            raise Refused("malformed", "%s: field %r must be %s" % (kind, name, what))
        n += 1
    for name, ok, what in optional:
        if name in m:
            if not ok(m[name]):
                raise Refused("malformed", "%s: field %r must be %s" % (kind, name, what))
            n += 1
    if len(m) != n:
        raise Refused("malformed", "%s: unexpected fields" % kind)
    return m


def _decode(message, kind):
    if not isinstance(message, (bytes, bytearray)) or len(message) > MAX_DOC:
        raise Refused("malformed", "%s: not bytes, or more than %d bytes" % (kind, MAX_DOC))
    try:
        return cose.decode1(bytes(message))
    except (DecodeError, SignatureError) as e:
        raise Refused("malformed", "%s: %s" % (kind, e))


def doc_hash(message):
    """SHA-256 of a document's exact COSE bytes (an order names its release by this)."""
    return hashlib.sha256(bytes(message)).digest()


def release_kid(public_sec1):
    """The kid of a release key: b"rel-" + the first 4 bytes of SHA-256(SEC1 key), in hex."""
    d = hashlib.sha256(bytes(public_sec1)).digest()[:4]
    return b"rel-" + "".join("%02x" % b for b in d).encode()


# -- making them (host side; keys are anything with sign(msg) -> 64 bytes) --------------------
def make_release(key, public_sec1, seq, ver, comp, classes, size, sha256, state, privacy, min_seq=None, exp=None):
    m = {"kind": "release", "v": VERSION, "seq": seq, "ver": ver, "comp": comp, "class": list(classes),
         "size": size, "sha256": bytes(sha256), "state": state, "privacy": bytes(privacy)}
    if min_seq is not None:
        m["min_seq"] = min_seq
    if exp is not None:
        m["exp"] = exp
    payload = cbor.dumps(m)
    _parse(payload, "release", RELEASE_FIELDS, RELEASE_OPTIONAL)  # what a device would refuse is never made
    return cose.sign1(payload, key, release_kid(public_sec1))


def make_rollout_cert(ca_key, rollout_id, public_sec1, exp):
    """The CA's certificate of the rollout key: the receipts certificate with role "rollout"."""
    return receipt.make_cert(ca_key, rollout_id, public_sec1, exp, role=ROLLOUT_ROLE)


def make_order(key, cert, rollout_id, seq, release_hash, district, pct, salt, nb, exp, devices=None):
    m = {"kind": "order", "v": VERSION, "seq": seq, "release": bytes(release_hash), "district": district,
         "pct": pct, "salt": bytes(salt), "nb": nb, "exp": exp, "rc": bytes(cert)}
    if devices:
        m["devices"] = list(devices)
    payload = cbor.dumps(m)
    _parse(payload, "order", ORDER_FIELDS, ORDER_OPTIONAL)
    return cose.sign1(payload, key, rollout_id.encode())


def make_status(key, dev, state, reason="", rseq=0, release=b"", off=0, size=0, sw=0, t=0):
    """A device-signed status (device key, kid = device id)."""
    payload = cbor.dumps({"kind": "ota", "v": VERSION, "dev": dev, "state": state, "reason": reason, "rseq": rseq,
                          "release": bytes(release), "off": off, "size": size, "sw": sw, "t": t})
    _parse(payload, "status", STATUS_FIELDS)
    return cose.sign1(payload, key, dev.encode())


# -- checking them -----------------------------------------------------------------------------
def member(dev, salt):
    """The device's place in a rollout, 0..99: SHA-256(device id ‖ salt), first 4 bytes, mod 100."""
    d = hashlib.sha256(dev.encode() + bytes(salt)).digest()
    return ((d[0] << 24) | (d[1] << 16) | (d[2] << 8) | d[3]) % 100


def includes(order, dev):
    """Whether an order (its checked map) names this device or draws it into its percentage."""
    return dev in order.get("devices", ()) or member(dev, order["salt"]) < order["pct"]


def open_release(message, keys, key_from_sec1):
    """(map, kid) of a release signed by one of the pinned keys (a list of SEC1 public keys), or
    raise Refused: no keys pinned, a kid that names none of them (the CA, a device, a stranger:
    'wrong_signer'), a signature that does not verify ('bad_sig'), a malformed payload."""
    if not keys:
        raise Refused("no_release_keys", "release: this device pins no release key")
    msg = _decode(message, "release")
    for pk in keys:
        if msg.kid == release_kid(pk):
            try:
                msg.verify(key_from_sec1(pk))
            except SignatureError:
                raise Refused("bad_sig", "release: the signature does not verify with release key %s" % msg.kid.decode())
            return _parse(msg.payload, "release", RELEASE_FIELDS, RELEASE_OPTIONAL), msg.kid
    raise Refused("wrong_signer", "release: signed by %r, which is not a pinned release key" % (msg.kid,))


def check_release(message, order, keys, key_from_sec1, classes, installed_seq, highest_refused=0, now=None,
                  max_size=None, state_formats=(STATE_FORMAT,)):
    """The release's map if this device may install it under `order` (a checked order map), else
    Refused. installed_seq: the running release's seq (0: factory); highest_refused: the highest
    seq ever refused or rolled back here (never retried automatically); now: Unix s, or None
    while the clock is invalid (only an expiry needs it); max_size: the slot, in bytes."""
    if order["release"] != doc_hash(message):
        raise Refused("bad_digest", "release: its hash is not the one the order names")
    r, kid = open_release(message, keys, key_from_sec1)
    if r["seq"] <= installed_seq or r["seq"] <= highest_refused:
        raise Refused("stale_seq", "release: seq %d is not above the installed %d (or one refused before, %d)" %
                      (r["seq"], installed_seq, highest_refused))
    if not [c for c in r["class"] if c in classes]:
        raise Refused("wrong_class", "release: for %s, and this device is %s" % (", ".join(r["class"]), ", ".join(classes)))
    if r["state"] not in state_formats:
        raise Refused("state_format", "release: state format %d; this device's is %s" %
                      (r["state"], ", ".join(str(s) for s in state_formats)))
    if installed_seq < r.get("min_seq", 0):
        raise Refused("min_seq", "release: needs release %d or later installed first (installed: %d)" %
                      (r["min_seq"], installed_seq))
    if "exp" in r:
        if now is None:
            raise Refused("clock_invalid", "release: has an expiry and the clock is not valid")
        if now >= r["exp"]:
            raise Refused("expired", "release: expired at %d" % r["exp"])
    if max_size is not None and r["size"] > max_size:
        raise Refused("too_big", "release: %d bytes, the slot holds %d" % (r["size"], max_size))
    return r


def check_order(message, ca_key, key_from_sec1, dev, district, now, last_seq):
    """The order's map if this device must act on it, else Refused. ca_key: the provisioning CA's
    verifying key; now: Unix s, or None while the clock is invalid (an order is then refused:
    its window cannot be judged); last_seq: the highest order seq accepted here (None: none)."""
    msg = _decode(message, "order")
    try:
        payload = cbor.loads(msg.payload, max_depth=4, canonical=True)
    except DecodeError as e:
        raise Refused("malformed", "order: payload is not deterministic CBOR (%s)" % e)
    cert = payload.get("rc") if isinstance(payload, dict) else None
    if not isinstance(cert, bytes):
        raise Refused("malformed", "order: field 'rc' must be bytes")
    try:
        rid, pk, cert_exp = receipt.open_cert(cert, ca_key, role=ROLLOUT_ROLE)
    except (DecodeError, SignatureError) as e:
        raise Refused("wrong_signer", "order: its rollout certificate is not the CA's (%s)" % e)
    if msg.kid != rid.encode():
        raise Refused("wrong_signer", "order: signed by %r, its certificate names %r" % (msg.kid, rid))
    try:
        msg.verify(key_from_sec1(pk))
    except SignatureError:
        raise Refused("bad_sig", "order: the signature does not verify with the certified rollout key")
    o = _parse(msg.payload, "order", ORDER_FIELDS, ORDER_OPTIONAL)
    if now is None:
        raise Refused("clock_invalid", "order: the clock is not valid, so its window cannot be judged")
    if now >= cert_exp:
        raise Refused("expired", "order: its rollout certificate expired at %d" % cert_exp)
    if o["district"] != district:
        raise Refused("wrong_district", "order: for district %s, this device is in %s" % (o["district"], district))
    if last_seq is not None and o["seq"] <= last_seq:
        raise Refused("stale_order", "order: seq %d is not above the last accepted (%d)" % (o["seq"], last_seq))
    if now < o["nb"]:
        raise Refused("not_yet", "order: not before %d" % o["nb"])
    if now >= o["exp"]:
        raise Refused("expired", "order: expired at %d" % o["exp"])
    return o


def open_status(message, verifying_key, dev):
    """The map of a status signed by the device `dev` (verifying_key: its registered key), or Refused."""
    msg = _decode(message, "status")
    if msg.kid != dev.encode():
        raise Refused("wrong_signer", "status: kid %r is not device %s" % (msg.kid, dev))
    try:
        msg.verify(verifying_key)
    except SignatureError:
        raise Refused("bad_sig", "status: the signature does not verify with %s's key" % dev)
    s = _parse(msg.payload, "status", STATUS_FIELDS)
    if s["dev"] != dev:
        raise Refused("wrong_signer", "status: about device %s, signed by %s" % (s["dev"], dev))
    return s


# -- this device -------------------------------------------------------------------------------
def device_classes():
    """The release classes this interpreter runs: "cpython3" on CPython; on MicroPython "mpyN"
    (N = sys.implementation._mpy: the .mpy version and native architecture, since some modules
    are native code), plus "fw-BOARD" on our own firmware (its frozen `civicmote_firmware`
    stamp names the board: tools/firmware.py)."""
    impl = sys.implementation
    if impl.name != "micropython":
        return ["cpython3"]
    out = ["mpy%d" % getattr(impl, "_mpy", 0)]
    try:
        import civicmote_firmware

        out.append("fw-" + civicmote_firmware.BOARD)
    except ImportError:
        pass
    return out


def dump_release_keys(keys):
    """The `release_keys` file's bytes: the CBOR array of one or two SEC1 public keys."""
    keys = [bytes(k) for k in keys]
    if not 1 <= len(keys) <= 2 or [k for k in keys if len(k) != 65 or k[0] != 4]:
        raise ValueError("release keys: one or two uncompressed P-256 public keys (65 bytes, 04...)")
    return cbor.dumps(keys)


def load_release_keys(path):
    """The pinned release keys (a list of SEC1 bytes) from the `release_keys` file; [] if there is
    none; DecodeError naming the file if it is not one or two 65-byte keys."""
    try:
        with open(path, "rb") as f:
            data = f.read(512)
    except OSError:
        return []
    try:
        keys = cbor.loads(data, max_depth=2, canonical=True)
    except DecodeError as e:
        raise DecodeError("%s: not a release key list (%s)" % (path, e))
    if not isinstance(keys, list) or not 1 <= len(keys) <= 2 or [k for k in keys if not _bytes(k, 65)]:
        raise DecodeError("%s: must hold one or two 65-byte release keys" % path)
    return keys
