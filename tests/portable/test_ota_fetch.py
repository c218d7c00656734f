"""The device's update download (agent/ota/fetch.py, portable): orders and releases checked as the
spec says, blocks into a resumable part file with a running SHA-256, every bad artefact refused
with its reason, the device-signed status at each step."""
import hashlib

from agent.compat import file_exists as _exists
from agent.ota import docs
from agent.ota.fetch import Fetcher
from agent.ota.state import OtaState
from ota_city import (DEV, DEVKEY, DISTRICT, NOW, STRANGER, City, Installer, Wire, artefact, block, drive, order,
                      release, trust)
from support import tmpdir

SIZE = 80 * 1024 + 100  # 21 blocks, past one 64 KiB persist


def _setup(data=None, rel=None, order_msg=None, classes=None, d=None, **kw):
    data = artefact(SIZE) if data is None else data
    rel = release(data) if rel is None else rel
    city = City(rel, data, order(rel) if order_msg is None else order_msg)
    inst = Installer()
    d = d or tmpdir()
    f = Fetcher(d, DEV, DISTRICT, DEVKEY, trust(classes), inst, retry_s=kw.pop("retry_s", 10),
                misses=kw.pop("misses", 32))
    wire = Wire(city)
    f.connected()
    return f, wire, city, inst, d


def test_a_release_downloads_verifies_and_is_handed_to_the_installer():
    f, wire, city, inst, d = _setup()
    drive(f, wire, until=lambda: inst.installed)
    assert inst.installed == [(5, hashlib.sha256(city.data).digest())]
    states = [s for s, r in wire.states()]
    assert states[:2] == ["queued", "downloading"] and states[-1] == "verifying", states
    blk = [r for r in city.requests if r["op"] == "blk"]
    assert blk and max(r["n"] for r in blk) == 4 and blk[0]["off"] == 0
    assert f.bytes_in == SIZE and f.blocks == 21
    last = wire.statuses[-1]
    assert last["off"] == SIZE and last["size"] == SIZE and last["rseq"] == 5 and last["dev"] == DEV
    # The order seq is kept: the same order again (retained, or asked for at a connect) is no replay.
    assert OtaState(d).os == 3
    f.offer(f.order_topic, b"O" + city.order, 0)
    n = len(wire.statuses)
    drive(f, wire, steps=5)
    assert [s["state"] for s in wire.statuses[n:]] == []


def test_a_download_resumes_after_a_reboot_from_the_persisted_offset():
    f, wire, city, inst, d = _setup()
    drive(f, wire, until=lambda: f.part is not None and f.part.off >= 68 * 1024)
    assert OtaState(d).dl[1] == 64 * 1024  # persisted at 64 KiB; what came after may be lost in a cut
    # Power cut: the fetcher is gone without closing anything; a new boot resumes.
    f2 = Fetcher(d, DEV, DISTRICT, DEVKEY, trust(), inst)
    wire2 = Wire(city)
    city.requests = []
    f2.connected()
    drive(f2, wire2, until=lambda: inst.installed)
    assert inst.installed == [(5, hashlib.sha256(city.data).digest())]
    blk = [r for r in city.requests if r["op"] == "blk"]
    assert blk[0]["off"] == 64 * 1024 and f2.bytes_in == SIZE - 64 * 1024


def test_a_damaged_block_is_asked_again_and_a_wrong_artefact_is_refused():
    # A block whose CRC does not match is dropped and asked for again after retry_s.
    f, wire, city, inst, d = _setup(retry_s=3)
    real = city.answer

    def damaged(payload, first=[True]):
        out = real(payload)
        if out and out[0][:1] == b"B" and first[0]:
            first[0] = False
            b = bytearray(out[0])
            b[40] ^= 1
            out[0] = bytes(b)
        return out

    city.answer = damaged
    drive(f, wire, until=lambda: inst.installed)
    assert inst.installed and inst.installed[0][1] == hashlib.sha256(city.data).digest()
    # A flipped bit in the artefact itself (its CRC right): the digest check refuses it.
    data = artefact(SIZE)
    bad = bytearray(data)
    bad[5000] ^= 1
    rel = release(data)
    f, wire, city, inst, d = _setup(data=bytes(bad), rel=rel)
    drive(f, wire, until=lambda: wire.statuses and wire.statuses[-1]["state"] == "refused")
    assert wire.states()[-1] == ("refused", "bad_digest") and not inst.installed
    assert not _exists(d + "/ota/part") and OtaState(d).bad == 5 and OtaState(d).dl is None


def test_truncated_padded_and_endless_artefacts_are_refused():
    data = artefact(SIZE)
    for served, why in ((data[:SIZE - 50], "truncated"), (data + b"trailing", "larger than declared")):
        f, wire, city, inst, d = _setup(data=served, rel=release(data))
        drive(f, wire, until=lambda: wire.statuses and wire.statuses[-1]["state"] == "refused")
        assert wire.states()[-1] == ("refused", "bad_size"), (why, wire.states())
        assert not inst.installed and not _exists(d + "/ota/part")
    # Endless: blocks nobody asked for, past the declared end.
    f, wire, city, inst, d = _setup(data=data)
    drive(f, wire, until=lambda: f.part is not None)
    f.offer(city.down, block(city.h, SIZE + 4096 - SIZE % 4096, b"x" * 4096), 0)
    drive(f, wire, steps=3)
    assert wire.states()[-1] == ("refused", "bad_size") and f.part is None


def test_releases_that_must_be_refused():
    data = artefact(9000)
    cases = (
        (release(data, key=STRANGER), "wrong_signer"),
        (release(data, classes=["mpy-other"]), "wrong_class"),
        (release(data, size=600 * 1024), "too_big"),
        (release(data, exp=NOW - 1), "expired"),
    )
    for rel, reason in cases:
        f, wire, city, inst, d = _setup(data=data, rel=rel)
        drive(f, wire, until=lambda: wire.statuses and wire.statuses[-1]["state"] == "refused")
        assert wire.states()[-1] == ("refused", reason), (reason, wire.states())
    # An older release than the installed one, and one refused before: never retried.
    f, wire, city, inst, d = _setup(data=data, rel=release(data, seq=4))
    s = OtaState(d)
    s.sw = 4
    s.save()
    f, wire, city, inst, d = _setup(data=data, rel=release(data, seq=4), d=d)
    drive(f, wire, until=lambda: wire.statuses and wire.statuses[-1]["state"] == "refused")
    assert wire.states()[-1] == ("refused", "stale_seq")


def test_orders_that_must_be_refused_or_waited_for():
    data = artefact(9000)
    rel = release(data)
    for o, reason in ((order(rel, district="south"), "wrong_district"), (order(rel, exp=NOW - 5), "expired")):
        f, wire, city, inst, d = _setup(data=data, rel=rel, order_msg=o)
        drive(f, wire, steps=10)
        assert wire.states() and wire.states()[-1] == ("refused", reason), (reason, wire.states())
        assert not [r for r in city.requests if r["op"] != "order"]
    # Not a member of this stage: nothing fetched and nothing reported.
    f, wire, city, inst, d = _setup(data=data, rel=rel, order_msg=order(rel, pct=0))
    drive(f, wire, steps=10)
    assert wire.states() == [] and len(city.requests) == 1
    # An older order than the one accepted: a replay.
    f, wire, city, inst, d = _setup(data=data, rel=rel, order_msg=order(rel, seq=7))
    drive(f, wire, until=lambda: inst.installed)
    f.offer(f.order_topic, b"O" + order(rel, seq=6), 0)
    drive(f, wire, steps=3)
    assert wire.states()[-1] == ("refused", "stale_order")
    # The clock is not valid: the order waits, and is taken once the clock is.
    f, wire, city, inst, d = _setup(data=data, rel=rel)
    now = drive(f, wire, steps=10, wall=0)
    assert wire.states() == [] and not [r for r in city.requests if r["op"] != "order"]
    drive(f, wire, start=now, steps=200, until=lambda: inst.installed)
    assert inst.installed


def test_a_stop_order_abandons_the_download():
    data = artefact(SIZE)
    f, wire, city, inst, d = _setup(data=data)
    drive(f, wire, until=lambda: f.part is not None and f.part.off > 8192)
    f.offer(f.order_topic, b"O" + order(None, seq=9), 0)
    drive(f, wire, steps=5)
    assert wire.states()[-1] == ("refused", "stopped") and f.part is None and not _exists(d + "/ota/part")


def test_unanswered_requests_are_repeated_then_reported_stalled():
    f, wire, city, inst, d = _setup(retry_s=2, misses=4)
    now = drive(f, wire, until=lambda: f.part is not None and f.part.off > 0)
    city.silent = True
    wire.inbox = []  # the answer to the request in flight is lost too
    n = len(city.requests)
    now = drive(f, wire, steps=9, start=now)
    asked = [r for r in city.requests[n:] if r["op"] == "blk"]
    assert len(asked) == 3, asked  # asked again every 2 s; the 4th unanswered request is the last
    assert wire.states()[-1] == ("downloading", "stalled")
    city.silent = False  # after retry_s * misses it asks again, and finishes
    drive(f, wire, steps=100, start=now, until=lambda: inst.installed)
    assert inst.installed


def test_a_trial_is_confirmed_by_the_health_gate():
    f, wire, city, inst, d = _setup()
    h = docs.doc_hash(city.rel)
    inst._trial = f.trial = (5, h)  # as the installer says at the start of a trial boot
    ok = [False]
    f.gate = lambda: ok[0]
    drive(f, wire, steps=3)
    assert inst.confirmed == 0
    # Another release ordered while this one is on trial waits for the confirmation.
    other = release(artefact(5000), seq=6)
    city.rel, city.data, city.h = other, artefact(5000), docs.doc_hash(other)
    f.offer(f.order_topic, b"O" + order(other, seq=4), 0)
    drive(f, wire, steps=3)
    assert f.want is None and f.later is not None and OtaState(d).os == 3
    ok[0] = True
    drive(f, wire, steps=3)
    assert inst.confirmed == 1 and wire.states()[-1] == ("confirmed", "")
    s = OtaState(d)
    assert s.sw == 5 and s.d == h
