"""What a device trusts for updates (portable): the CA for orders, the pinned release keys for code.

    trust = Trust(ca_key, release_keys, key_from_sec1, classes=docs.device_classes())
    trust.check_order(message, dev, district, wall, last_seq) -> order map     (docs.check_order, and
                     docs.includes: a device neither named nor drawn is refused with not_member)
    trust.check_release(message, want, installed, refused, wall, limit) -> release map
    trust.last_seq   the seq of the last release whose signature verified (None if it did not)
    trust.status(key, dev, state, reason, rseq, release, off, size, sw, wall) -> status COSE

Refusals raise agent.ota.docs.Refused with the spec's reason code. wall: Unix seconds, 0 while
the device's clock is not valid (an order is then refused with clock_invalid).
"""
from agent.ota import docs

UNVERIFIED = ("no_release_keys", "wrong_signer", "bad_sig", "malformed", "bad_digest")


class Trust:
    def __init__(self, ca_key, release_keys, key_from_sec1, classes=None, state_formats=(docs.STATE_FORMAT,)):
        self.ca_key = ca_key
        self.release_keys = release_keys
        self.key_from_sec1 = key_from_sec1
        self.classes = classes if classes is not None else docs.device_classes()
        self.state_formats = state_formats
        self.last_seq = None

    @staticmethod
    def digest(message):
        return docs.doc_hash(message)

    def check_order(self, message, dev, district, wall, last_seq):
        o = docs.check_order(message, self.ca_key, self.key_from_sec1, dev, district, wall or None, last_seq or None)
        if not docs.includes(o, dev):
            raise docs.Refused("not_member", "order: this device is not named, and draws %d, not below %d" % (
                docs.member(dev, o["salt"]), o["pct"]))
        return o

    def check_release(self, message, want, installed, refused, wall, limit):
        self.last_seq = None
        try:
            r = docs.check_release(message, {"release": want}, self.release_keys, self.key_from_sec1, self.classes,
                                   installed, refused, wall or None, limit, self.state_formats)
        except docs.Refused as e:
            if e.reason not in UNVERIFIED:
                self.last_seq = _seq(message)  # the signature verified: this seq is never tried again
            raise
        self.last_seq = r["seq"]
        return r

    def status(self, key, dev, state, reason, rseq, release, off, size, sw, wall):
        return docs.make_status(key, dev, state, reason, rseq, release, off, size, sw, wall or 0)


def _seq(message):
    from agent.core import cbor, cose

    try:
        return cbor.loads(cose.decode1(bytes(message)).payload, max_depth=4)["seq"]
    except Exception:  # noqa: BLE001 - it verified, so it parses; never a crash over a status field
        return None


def open_trust(device_dir, ca_der, classes=None):
    """The Trust of a device: its CA certificate (DER, as for receipts) and its `release_keys` file."""
    from agent.core.receipt import ca_public_key
    from agent.crypto import verifying_key_from_sec1

    keys = docs.load_release_keys(device_dir + "/release_keys")
    return Trust(verifying_key_from_sec1(ca_public_key(ca_der)), keys, verifying_key_from_sec1, classes)
