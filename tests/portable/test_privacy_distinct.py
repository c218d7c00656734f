"""Distinct identifiers: fixed memory, salted per window, wiped, and never written or released."""
import hashlib
import json
import os

from support import seeded_rng, tmpdir, tohex

from agent.privacy import distinct
from agent.privacy.contributions import open_window
from agent.privacy.distinct import DistinctCounter, estimate, expected_occupied_fixed
from agent.privacy.ledger import PrivacyLedger
from agent.privacy.policy import parse_dp
from agent.privacy.release import release_window

NOW = 1767225600 + 3600  # 2026-01-01T01:00Z


def macs(count, seed=b"macs"):
    rng = seeded_rng(seed)
    return [rng(6) for _ in range(count)]


def test_estimate_inverts_expected_occupancy():
    m = 4096
    for n in (1, 2, 10, 100, 1000, 4096, 10000, 20000):
        occ = (expected_occupied_fixed(n, m) + (1 << 31)) >> 32  # nearest whole bit count
        est, sat = estimate(occ, m)
        assert not sat
        # rounding occupancy to whole bits costs at most m/(m - occ) items of resolution
        assert abs(est - n) <= m // (m - occ) + 1, (n, occ, est)
    assert estimate(0, m) == (0, False)
    assert estimate(-5, m) == (0, False)
    est, sat = estimate(m, m)
    assert sat and est == estimate(m - 1, m)[0] and est > 30000


def test_estimate_is_monotone():
    m = 256
    last = -1
    for occ in range(0, m):
        est, _ = estimate(occ, m)
        assert est >= last
        last = est


def test_counts_distinct_not_sightings():
    c = DistinctCounter(1024, seeded_rng(b"salt-a"))
    ids = macs(300)
    for _ in range(5):  # every device seen five times
        for i in ids:
            c.add(i)
    est, _ = estimate(c.occupied(), 1024)
    # 300 devices in 1024 bits: hashing error about sqrt(m (e^r - r - 1)) ~ 7; allow 7x that.
    assert abs(est - 300) < 50, est


def test_accuracy_at_load_one():
    m = 4096
    c = DistinctCounter(m, seeded_rng(b"salt-b"))
    for i in macs(4000, b"load-one"):
        c.add(i)
    est, _ = estimate(c.occupied(), m)
    assert abs(est - 4000) < 300, est  # standard error ~ 54


def test_memory_is_fixed():
    c = DistinctCounter(512, seeded_rng(b"salt-c"))
    before = len(c._map)
    for i in macs(5000, b"many"):
        c.add(i)
    assert len(c._map) == before == 64
    assert c.occupied() >= 500  # saturated, not grown


def test_salt_makes_windows_unlinkable():
    ids = macs(50)
    a = DistinctCounter(4096, seeded_rng(b"window-1"))
    b = DistinctCounter(4096, seeded_rng(b"window-2"))
    for i in ids:
        a.add(i)
        b.add(i)
    assert a._map != b._map


def test_wipe_overwrites_salt_and_bitmap_in_place():
    c = DistinctCounter(256, seeded_rng(b"salt-d"))
    salt_buf, map_buf = c._salt, c._map
    for i in macs(40):
        c.add(i)
    assert c.occupied() > 0 and any(salt_buf)
    c.wipe()
    assert c._salt is salt_buf and c._map is map_buf
    assert not any(salt_buf) and not any(map_buf)


def _walk(d):
    out = []
    for name in os.listdir(d):
        p = d + "/" + name
        if os.stat(p)[0] & 0x4000:
            out += _walk(p)
        else:
            out.append(p)
    return out


def test_no_identifier_or_salt_reaches_a_file_or_the_release():
    flash = tmpdir()
    handed_out = []

    def rng(n):
        b = os.urandom(n)
        handed_out.append(b)
        return b

    led = PrivacyLedger.create(flash + "/privacy.ledger", NOW)
    p = parse_dp("phones", {"mechanism": "distinct", "epsilon": "1", "rotation_s": 900, "k": 1,
                            "bits": 1024}, 3600)
    acc = open_window(p, rng)
    salt = handed_out[0]
    assert len(salt) == distinct.SALT_BYTES
    ids = macs(200, os.urandom(8))
    for i in ids:
        acc.add(i)
    out = release_window({"phones": (p, acc)}, led, NOW, rng, (24, 1))
    assert "n" in out["phones"]

    secrets = [salt] + ids + [hashlib.sha256(salt + i).digest()[:6] for i in ids]
    released = json.dumps(out).encode()
    files = _walk(flash)
    assert files  # the ledger was written
    blobs = [released]
    for f in files:
        with open(f, "rb") as fh:
            blobs.append(fh.read())
    for blob in blobs:
        for s in secrets:
            assert s not in blob
            assert tohex(s).encode() not in blob
    # and the RAM copy is gone too
    assert not any(acc._salt) and not any(acc._map)
