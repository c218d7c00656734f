"""Update documents and the bundle, on the device (portable): what a device must refuse is refused
with the reason it reports, and what it may act on passes."""
import hashlib

from agent import crypto
from agent.core import cbor, cose
from agent.errors import DecodeError
from agent.ota import bundle, docs
from support import raises, seeded_rng, tmpdir

DEV = "cmaaaaaaaaaaaaaaaa"
NOW = 1800000000
V = crypto.verifying_key_from_sec1


def _keys(seed, n):
    rng = seeded_rng(seed)
    return [crypto.generate_signing_key(rng) for _ in range(n)]


CA, ROLLOUT, REL1, REL2, DEVKEY, STRANGER = _keys(b"ota-docs", 6)
PINNED = [REL1.public_key().to_sec1(), REL2.public_key().to_sec1()]
CERT = docs.make_rollout_cert(CA, "city-rollout", ROLLOUT.public_key().to_sec1(), NOW + 86400)
ART = b"the new agent " * 100


def _release(key=REL1, seq=5, classes=None, **kw):
    pk = kw.pop("pk", key.public_key().to_sec1())
    return docs.make_release(key, pk, seq, "1.%d" % seq, "agent", classes or docs.device_classes(), len(ART),
                             hashlib.sha256(ART).digest(), docs.STATE_FORMAT, b"\x01" * 8, **kw)


def _order(rel, seq=3, district="north", pct=100, key=ROLLOUT, cert=CERT, **kw):
    return docs.make_order(key, cert, "city-rollout", seq, docs.doc_hash(rel) if rel else b"", district, pct,
                           b"saltsalt", kw.pop("nb", NOW - 60), kw.pop("exp", NOW + 3600), **kw)


def _refused(reason, fn, *args, **kw):
    try:
        fn(*args, **kw)
    except docs.Refused as e:
        assert e.reason == reason, (reason, e.reason, str(e))
        return str(e)
    raise AssertionError("not refused (expected %s)" % reason)


def _check(rel, order, **kw):
    o = docs.check_order(order, CA.public_key(), V, DEV, "north", kw.pop("now", NOW), kw.pop("last_seq", None))
    return docs.check_release(rel, o, PINNED, V, docs.device_classes(), kw.pop("installed", 0), now=NOW, **kw)


def test_a_release_under_an_order_passes_with_either_pinned_key():
    for key in (REL1, REL2):
        rel = _release(key)
        r = _check(rel, _order(rel))
        assert r["seq"] == 5 and r["size"] == len(ART) and r["sha256"] == hashlib.sha256(ART).digest()


def test_signers_that_must_be_refused():
    ca_rel = _release(CA)  # the provisioning CA, with its own kid
    _refused("wrong_signer", _check, ca_rel, _order(ca_rel))
    for key in (DEVKEY, STRANGER):
        rel = _release(key)
        _refused("wrong_signer", _check, rel, _order(rel))
    # A stranger who claims a pinned key's kid: the signature does not verify.
    forged = _release(STRANGER, pk=PINNED[0])
    _refused("bad_sig", _check, forged, _order(forged))
    # An order whose rollout key the CA never certified, or that the CA itself signs.
    rel = _release()
    other_cert = docs.make_rollout_cert(STRANGER, "city-rollout", STRANGER.public_key().to_sec1(), NOW + 86400)
    _refused("wrong_signer", _check, rel, _order(rel, key=STRANGER, cert=other_cert))
    _refused("bad_sig", _check, rel, _order(rel, key=CA))
    # A receipts certificate is not a rollout certificate.
    from agent.core import receipt
    rcert = receipt.make_cert(CA, "city-rollout", ROLLOUT.public_key().to_sec1(), NOW + 86400)
    _refused("wrong_signer", _check, rel, _order(rel, cert=rcert))


def test_a_flipped_bit_or_trailing_bytes_are_refused():
    rel = _release()
    order = _order(rel)
    for i in (12, len(rel) // 2, len(rel) - 3):
        bad = bytearray(rel)
        bad[i] ^= 0x10
        bad = bytes(bad)
        _refused("bad_digest", _check, bad, order)  # the order names the exact bytes
        try:
            docs.open_release(bad, PINNED, V)
            raise AssertionError("a flipped bit verified")
        except docs.Refused as e:
            assert e.reason in ("bad_sig", "malformed", "wrong_signer"), e.reason
    _refused("malformed", docs.open_release, rel + b"\x00", PINNED, V)
    _refused("malformed", docs.check_order, order + b"\x00", CA.public_key(), V, DEV, "north", NOW, None)


def test_replays_and_the_wrong_place_or_time_are_refused():
    rel = _release(seq=5)
    _refused("stale_seq", _check, rel, _order(rel), installed=5)
    _refused("stale_seq", _check, rel, _order(rel), installed=2, highest_refused=5)
    _refused("stale_order", _check, rel, _order(rel, seq=3), last_seq=3)
    _refused("expired", _check, rel, _order(rel, exp=NOW))
    _refused("not_yet", _check, rel, _order(rel, nb=NOW + 1))
    _refused("wrong_district", _check, rel, _order(rel, district="south"))
    _refused("clock_invalid", _check, rel, _order(rel), now=None)
    _refused("wrong_class", _check, _release(classes=["mpy999"]), _order(_release(classes=["mpy999"])))
    exp = _release(exp=NOW)
    _refused("expired", _check, exp, _order(exp))
    pre = _release(min_seq=4)
    _refused("min_seq", _check, pre, _order(pre), installed=3)
    assert _check(pre, _order(pre), installed=4)["seq"] == 5
    _refused("too_big", _check, rel, _order(rel), max_size=len(ART) - 1)


def test_membership_is_the_documented_hash_and_named_devices_are_always_in():
    d = hashlib.sha256(DEV.encode() + b"saltsalt").digest()
    assert docs.member(DEV, b"saltsalt") == int.from_bytes(d[:4], "big") % 100
    m = docs.member(DEV, b"saltsalt")
    o = {"salt": b"saltsalt", "pct": m}
    assert not docs.includes(o, DEV)
    o["pct"] = m + 1
    assert docs.includes(o, DEV)
    assert docs.includes({"salt": b"saltsalt", "pct": 0, "devices": [DEV]}, DEV)
    # Over many devices a percentage draws about that share.
    n = len([i for i in range(1000) if docs.member("cm%016d" % i, b"saltsalt") < 25])
    assert 180 < n < 320, n


def test_status_is_device_signed_and_checked_against_its_key():
    s = docs.make_status(DEVKEY, DEV, "downloading", rseq=5, release=b"\x02" * 32, off=4096, size=8192, sw=4, t=NOW)
    m = docs.open_status(s, DEVKEY.public_key(), DEV)
    assert m["state"] == "downloading" and m["off"] == 4096 and m["sw"] == 4
    _refused("bad_sig", docs.open_status, s, STRANGER.public_key(), DEV)
    _refused("wrong_signer", docs.open_status, s, DEVKEY.public_key(), "cmbbbbbbbbbbbbbbbb")
    assert raises(docs.Refused, docs.make_status, DEVKEY, DEV, "installed")  # not a state


def test_release_keys_file_round_trips_and_bad_files_name_themselves():
    d = tmpdir()
    assert docs.load_release_keys(d + "/release_keys") == []
    with open(d + "/release_keys", "wb") as f:
        f.write(docs.dump_release_keys(PINNED))
    assert docs.load_release_keys(d + "/release_keys") == PINNED
    with open(d + "/bad", "wb") as f:
        f.write(cbor.dumps([b"\x04" * 64]))
    try:
        docs.load_release_keys(d + "/bad")
        raise AssertionError("a 64-byte key was accepted")
    except DecodeError as e:
        assert "bad" in str(e)
    _refused("no_release_keys", docs.open_release, _release(), [], V)


class _Sink:
    def __init__(self, store, path):
        self.store, self.path, self.parts = store, path, []

    def write(self, b):
        self.parts.append(bytes(b))

    def close(self):
        self.store[self.path] = b"".join(self.parts)


def _unpack(data, limit=None):
    store = {}
    pos = [0]

    def read(n):
        b = data[pos[0]:pos[0] + n]
        pos[0] += len(b)
        return b

    files = bundle.unpack(read, lambda p: _Sink(store, p), limit=limit)
    return files, store


def test_a_bundle_round_trips_and_malformed_ones_are_refused():
    big = bytes(range(256)) * 40  # more than one CHUNK
    data = bundle.pack([("agent/__init__.py", b""), ("agent/core/x.mpy", big), ("main.py", b"import x\n")])
    files, store = _unpack(data, limit=len(data))
    assert files == [("agent/__init__.py", 0), ("agent/core/x.mpy", len(big)), ("main.py", 9)]
    assert store["agent/core/x.mpy"] == big
    for bad in (data[:-1], data + b"\x00", data[:40], b"CMBUNDLE2\n" + data[10:]):
        assert raises(DecodeError, _unpack, bad)
    assert raises(DecodeError, _unpack, data, len(data) - 1)  # larger than declared
    for path in ("../etc/passwd", "/abs", "a//b", "a/./b", ""):
        assert raises(DecodeError, bundle.pack, [(path, b"x")])
        p = path.encode()
        raw = bundle.MAGIC + len(p).to_bytes(2, "big") + p + b"\x00\x00\x00\x01x\x00\x00"
        assert raises(DecodeError, _unpack, raw)
