"""A device that holds its own key and signs whatever it likes cannot stop, mislead or fill the city side.

Every message here is validly signed by a registered device (the attacker owns its key), so it
gets past the signature and only the strict decoder and the schema check stand between it and
the store. Each test also checks that an honest device's data keeps flowing afterwards.
"""
import os
import random
import sqlite3
import time

import pytest

from agent import crypto
from agent.core import cbor, cose, summary
from agent.store import identity
from provisioning.city import store as store_mod
from provisioning.city.collector import Collector
from provisioning.city.verifier import KeyRing, verify_message

T0 = 1750000000
NOW = T0 + 10 ** 6


class Signer:
    def __init__(self, district="north"):
        self.key = crypto.generate_signing_key(os.urandom)
        self.dev, self.pub = identity.public_identity(self.key)
        self.district = district

    def topic(self, kind="summary", district=None):
        return "civicmote/v1/%s/%s/%s" % (district or self.district, self.dev, kind)

    def fields(self, seq=1, **over):
        s = {"v": 1, "dev": self.dev, "seq": seq, "t0": T0 + 300 * seq, "t1": T0 + 300 * (seq + 1),
             "m": {"temperature": [215, 212, 219]}, "mh": b"\0" * 8, "h": {"up": 10, "boot": 1}}
        s.update(over)
        return s

    def sign_payload(self, payload, protected=cose.PROTECTED_ES256, unprotected=None):
        sig = self.key.sign(cose.sig_structure(protected, payload))
        return cbor.dumps(cbor.Tag(18, [protected, unprotected or {4: self.dev.encode()}, payload, sig]))

    def sign(self, obj):
        return self.sign_payload(cbor.dumps(obj))

    def honest(self, seq):
        s = summary.build(self.dev, seq, T0 + 300 * seq, T0 + 300 * (seq + 1), {"temperature": [215, 212, 219]},
                          b"\0" * 8, health={"up": 1})
        return cose.sign1(summary.encode(s), self.key, self.dev.encode())


@pytest.fixture
def city(tmp_path):
    bad, good = Signer(), Signer("south")
    ring = KeyRing()
    ring.add_public_key(bad.pub, "north")
    ring.add_public_key(good.pub, "south")
    c = Collector(ring, str(tmp_path / "city.db"), clock=lambda: NOW)
    yield c, bad, good
    c.close()


def _raw_map(pairs):
    """A CBOR map with these already-encoded (key, value) pairs, in this order."""
    return bytes([0xA0 | len(pairs)]) + b"".join(k + v for k, v in pairs)


def hostile_payloads(s):
    """(what, payload bytes) pairs: every one well-formed CBOR, every one wrong for a summary."""
    d = s.fields()
    yield "seq at 2**63", cbor.dumps(dict(d, seq=2 ** 63))
    yield "seq at 2**64-1", cbor.dumps(dict(d, seq=2 ** 64 - 1))
    yield "t1 below -2**63", cbor.dumps(dict(d, t1=-2 ** 64))
    yield "metric value 2**64-1", cbor.dumps(dict(d, m={"temperature": [2 ** 64 - 1]}))
    yield "boot as a list", cbor.dumps(dict(d, h={"boot": [1, 2]}))
    yield "boot as text", cbor.dumps(dict(d, h={"boot": "1"}))
    yield "boot true", cbor.dumps(dict(d, h={"boot": True}))
    yield "v true", cbor.dumps(dict(d, v=True))
    yield "v 1.0", cbor.dumps(dict(d, v=1.0))
    yield "seq 5.0", cbor.dumps(dict(d, seq=5.0))
    yield "tag in a metric", cbor.dumps(dict(d, m={"temperature": [cbor.Tag(18, 1)]}))
    yield "tag around the payload", cbor.dumps(cbor.Tag(18, d))
    yield "bytes map key in m", cbor.dumps(dict(d, m={b"temperature": [1]}))
    yield "int map key in h", cbor.dumps(dict(d, h={1: 2}))
    yield "mixed keys at top", cbor.dumps(dict(d, **{"x": 1})).replace(b"ax\x01", b"ax\x01")  # unknown field
    yield "int key at top", cbor.dumps({**d, 7: 1})
    yield "gap beyond seq", cbor.dumps(dict(d, gap=[1, 5, 9]))
    yield "gap count beyond its range", cbor.dumps(dict(s.fields(seq=9), gap=[5, 1, 2]))
    yield "nested too deep", cbor.dumps(dict(d, m={"temperature": [[[[[[[[[1]]]]]]]]]}))
    yield "dev of another device", cbor.dumps(dict(d, dev="cm" + "a" * 16))
    yield "future window", cbor.dumps(dict(d, t0=NOW + 10 ** 6, t1=NOW + 10 ** 6 + 300))
    yield "window of a year", cbor.dumps(dict(d, t0=T0, t1=T0 + 365 * 86400))
    yield "too many metrics", cbor.dumps(dict(d, m={"m%d" % i: [i] for i in range(65)}))
    yield "huge text in a release", cbor.dumps(dict(d, m={"people": {"mean": "x" * 5000}}))
    yield "float in a release", cbor.dumps(dict(d, m={"people": {"n": 1.5}}))
    yield "mh of 9 bytes", cbor.dumps(dict(d, mh=b"\0" * 9))
    yield "not a map", cbor.dumps([1, 2, 3])
    yield "a bare integer", cbor.dumps(2 ** 64 - 1)
    pairs = [(cbor.dumps(k), cbor.dumps(d[k])) for k in sorted(d, key=lambda k: cbor.dumps(k))]
    yield "keys out of order", _raw_map(list(reversed(pairs)))
    yield "duplicate key", _raw_map(pairs + [pairs[-1]])
    yield "non-shortest seq", cbor.dumps(d).replace(b"cseq\x01", b"cseq\x18\x01")
    yield "indefinite map", b"\xbf" + b"".join(k + v for k, v in pairs) + b"\xff"
    yield "half float 0", cbor.dumps(dict(d, seq=0.0))
    yield "undefined", cbor.dumps(dict(d, m={"temperature": [None]})).replace(b"\x81\xf6", b"\x81\xf7")
    yield "bignum tag", cbor.dumps(d).replace(b"cseq\x01", b"cseq\xc2\x41\x01")


def test_every_hostile_summary_is_rejected_with_a_reason_and_honest_data_flows(city):
    c, bad, good = city
    cases = list(hostile_payloads(bad))
    assert len(cases) >= 30
    for i, (what, payload) in enumerate(cases):
        events = c.handle(bad.topic(), bad.sign_payload(payload))
        assert [e["event"] for e in events] == ["rejected"], (what, events)
        assert events[0]["reason"] and events[0]["device_id"] == bad.dev, what
        assert [e["event"] for e in c.handle(good.topic(), good.honest(i + 1))] == ["summary"], what
    assert c.seqs(good.dev) == list(range(1, len(cases) + 1))
    assert c.seqs(bad.dev) == []
    assert c.devices()[bad.dev]["rejected"] == len(cases)


def test_protected_headers_other_than_a10126_are_refused(city):
    c, bad, good = city
    payload = summary.encode(summary.build(bad.dev, 1, T0, T0 + 300, {"t": [1]}, b"\0" * 8))
    for protected in (cbor.dumps({1: -7, 4: b"x"}), cbor.dumps({1: -7, 2: [99]}), cbor.dumps({True: -7}),
                      cbor.dumps({1: -7.0}), b"\xa1\x01\x38\x06", b"", cbor.dumps({1: -35})):
        msg = bad.sign_payload(payload, protected=protected)
        [ev] = c.handle(bad.topic(), msg)
        assert ev["event"] == "rejected" and "protected header" in ev["reason"], protected.hex()
    for unprotected in ({4: bad.dev.encode(), 1: -7}, {4: bad.dev.encode(), 5: b"x"}, {4: bad.dev}):
        [ev] = c.handle(bad.topic(), bad.sign_payload(payload, unprotected=unprotected))
        assert ev["event"] == "rejected" and "COSE_Sign1" in ev["reason"], unprotected
    good_msg = cose.sign1(payload, bad.key, bad.dev.encode())
    assert verify_message(good_msg, c.keyring).ok


def test_hostile_manifests_are_rejected_and_a_good_one_is_kept(city):
    c, bad, good = city
    base = {"kind": "manifest", "v": 1, "dev": bad.dev, "board": "sim",
            "metrics": [{"name": "a", "unit": "x", "window": 300, "class": "environmental", "stats": ["mean"]},
                        {"name": "b", "unit": "x", "window": 300, "class": "environmental", "stats": ["mean"]}]}
    bad_ones = [dict(base, v=True), dict(base, v=3), dict(base, dev=good.dev), dict(base, board=b"sim"),
                dict(base, metrics=list(reversed(base["metrics"]))), dict(base, metrics=[base["metrics"][0]] * 2),
                dict(base, extra=2 ** 64 - 1), dict(base, extra={"k": 1.5}), dict(base, extra=cbor.Tag(18, 0)),
                dict(base, metrics=[dict(base["metrics"][0], window=0)]),
                dict(base, metrics=[dict(base["metrics"][0], **{"class": "secret"})]),
                dict(base, description="x" * 2000), {"kind": "manifest"}]
    for m in bad_ones:
        [ev] = c.handle(bad.topic("manifest"), bad.sign(m))
        assert ev["event"] == "rejected" and ev["reason"], m
    non_canonical = cbor.dumps(base).replace(b"av\x01", b"av\x18\x01")
    [ev] = c.handle(bad.topic("manifest"), bad.sign_payload(non_canonical))
    assert ev["event"] == "rejected" and "non-shortest" in ev["reason"]
    [ev] = c.handle(bad.topic("manifest"), bad.sign(base))
    assert ev["event"] == "manifest" and ev["new"] is True
    assert [e["event"] for e in c.handle(good.topic(), good.honest(1))] == ["summary"]


def test_a_device_cannot_refile_itself_under_another_district(city):
    c, bad, good = city
    [ev] = c.handle(bad.topic(district="south"), bad.honest(1))
    assert ev["event"] == "rejected" and "district 'north'" in ev["reason"]
    [ev] = c.handle(bad.topic(), bad.honest(2))
    assert ev["event"] == "summary" and ev["district"] == "north"
    assert c.devices()[bad.dev]["district"] == "north"


def test_rejected_messages_are_bounded_per_device(city, tmp_path):
    c, bad, good = city
    big = bad.sign_payload(cbor.dumps(bad.fields(m={"x": [1] * 6000})))
    assert len(big) > store_mod.MAX_STORED_MESSAGE
    for _ in range(store_mod.MAX_REJECTED_PER_DEVICE + 50):
        c.handle(bad.topic(), big)
    c.handle(good.topic(), b"junk")
    db = sqlite3.connect(str(tmp_path / "city.db"))
    rows = db.execute("SELECT device_id, COUNT(*), MAX(length(message)) FROM rejected GROUP BY device_id").fetchall()
    assert dict((r[0], r[1]) for r in rows) == {bad.dev: store_mod.MAX_REJECTED_PER_DEVICE, good.dev: 1}
    assert max(r[2] for r in rows) <= store_mod.MAX_STORED_MESSAGE
    assert c.devices()[bad.dev]["rejected"] == store_mod.MAX_REJECTED_PER_DEVICE + 50


def test_a_summary_of_a_device_not_yet_registered_is_held_then_stored(tmp_path):
    late = Signer()
    c = Collector(KeyRing(), str(tmp_path / "city.db"), clock=lambda: NOW)
    for seq in (1, 2, 3):
        [ev] = c.handle(late.topic(), late.honest(seq))
        assert ev["event"] == "held"
    assert c.seqs(late.dev) == []
    c.close()
    c = Collector(KeyRing(), str(tmp_path / "city.db"), clock=lambda: NOW)  # survives a restart too
    ring = KeyRing()
    ring.add_public_key(late.pub, "north")
    events = c.update_keyring(ring)
    assert [e["event"] for e in events] == ["summary"] * 3
    assert c.seqs(late.dev) == [1, 2, 3] and c.store.held_devices() == {}
    assert [e["event"] for e in c.handle(late.topic(), late.honest(4))] == ["summary"]


def test_a_defect_in_judging_is_a_rejection_not_a_crash(city, monkeypatch):
    c, bad, good = city

    def broken(*a, **k):
        raise KeyError("boom")

    monkeypatch.setattr(c, "_summary", broken)
    [ev] = c.handle(bad.topic(), bad.honest(1))
    assert ev["event"] == "rejected" and "could not judge" in ev["reason"] and "KeyError" in ev["reason"]


def _mutate(data, rng):
    b = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        op = rng.randrange(5)
        i = rng.randrange(len(b)) if b else 0
        if op == 0 and b:
            b[i] = rng.randrange(256)
        elif op == 1 and b:
            b[i] ^= 1 << rng.randrange(8)
        elif op == 2:
            b[i:i] = bytes([rng.choice((0x18, 0x19, 0x1B, 0x38, 0x5F, 0x7F, 0x9F, 0xBF, 0xC2, 0xD2, 0xF9, 0xFB,
                                        0xFF, 0xF7, 0xA1, 0x81))])
        elif op == 3 and b:
            del b[i:i + rng.randint(1, 3)]
        else:
            j = rng.randrange(len(b)) if b else 0
            b[i:i] = b[j:j + rng.randint(1, 8)]
    return bytes(b)


def _fuzz(n, seed):
    """n signed mutants of real summaries and manifests through the collector's real handler."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec, utils

    bad, good = Signer(), Signer("south")
    ring = KeyRing()
    ring.add_public_key(bad.pub, "north")
    ring.add_public_key(good.pub, "south")
    c = Collector(ring, None, clock=lambda: NOW)
    fast = ec.derive_private_key(int.from_bytes(bad.key.to_bytes(), "big"), ec.SECP256R1())
    algo = ec.ECDSA(hashes.SHA256())
    seeds = [cbor.dumps(bad.fields(seq=s, gap=[1, 0, 0], m={"t": [1, None, [2, 3]], "p": {"n": 3, "mean": "1.5"}}))
             for s in (1, 2)]
    seeds.append(cbor.dumps({"kind": "manifest", "v": 1, "dev": bad.dev, "metrics": [
        {"name": "t", "unit": "c", "window": 300, "class": "environmental", "resolution": "1/10"}]}))
    rng = random.Random(seed)
    outcomes = {"rejected": 0, "summary": 0, "manifest": 0, "duplicate": 0, "gap": 0}
    head = bytes.fromhex("d28443a10126a10452") + bad.dev.encode()
    tbs_head = cose.sig_structure(cose.PROTECTED_ES256, b"")[:-1]  # ["Signature1", h'A10126', h'', ...
    honest_seq = 0
    for i in range(n):
        payload = _mutate(rng.choice(seeds), rng)
        bstr = cbor.dumps(payload)
        r, s = utils.decode_dss_signature(fast.sign(tbs_head + bstr, algo))
        msg = head + bstr + b"\x58\x40" + r.to_bytes(32, "big") + s.to_bytes(32, "big")
        events = c.handle(bad.topic("manifest" if i % 7 == 0 else "summary"), msg)
        for ev in events:
            outcomes[ev["event"]] += 1
            assert ev["event"] != "rejected" or ev["reason"]
        if i % 1000 == 0:
            honest_seq += 1
            assert [e["event"] for e in c.handle(good.topic(), good.honest(honest_seq))] == ["summary"]
    c.close()
    return outcomes


def test_signed_payload_fuzzer_through_the_collector():
    n = int(os.environ.get("CIVICMOTE_FUZZ_N", "100000"))
    start = time.monotonic()
    outcomes = _fuzz(n, seed=13)
    took = time.monotonic() - start
    print("fuzz: %d signed mutants in %.1f s: %r" % (n, took, outcomes))
    assert outcomes["rejected"] > n // 2
    assert sum(outcomes[k] for k in ("rejected", "summary", "manifest", "duplicate")) == n


def test_strict_decoder_agrees_with_the_canonical_decoder_on_mutants():
    """Whatever the city's strict decoder accepts, agent.core.cbor in canonical mode decodes to the
    same value (the strict one only refuses more: floats, tags, non-text keys, big integers)."""
    from agent.errors import DecodeError
    from provisioning.city.strict_cbor import PayloadError, decode

    s = Signer()
    seeds = [cbor.dumps(s.fields(gap=[1, 0, 0], m={"t": [1, None, [2, 3]], "p": {"n": -3, "mean": "1.5"}}))]
    rng = random.Random(7)
    accepted = 0
    for _ in range(20000):
        data = _mutate(rng.choice(seeds), rng)
        try:
            mine = decode(data)
        except PayloadError:
            continue
        accepted += 1
        try:
            theirs = cbor.loads(data, canonical=True, max_depth=8)
        except DecodeError as e:
            raise AssertionError("strict accepted what the canonical decoder refuses: %s (%s)" % (data.hex(), e))
        assert mine == theirs and type(mine) is type(theirs)
    assert accepted > 100
