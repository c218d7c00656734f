"""The outbox and the sequence allocator on the runtime's own filesystem (littlefs-like on
MicroPython, POSIX on CPython): order, bounds, drop reporting, torn writes, corruption."""
import os

from support import raises, tmpdir

from agent.errors import AgentError, DecodeError
from agent.store import atomic
from agent.store.outbox import OVERHEAD, Outbox
from agent.store.seq import SeqAllocator


def _files(d):
    names = os.listdir(d)
    names.sort()
    return names


def test_put_peek_ack_oldest_first():
    d = tmpdir()
    box = Outbox(d, max_bytes=4096, max_count=10)
    for seq in (3, 4, 9):
        assert box.put(seq, b"summary-%d" % seq) == []
    assert box.depth == 3
    assert box.bytes == 3 * OVERHEAD + len(b"summary-3") * 3
    assert box.peek(2) == [(3, b"summary-3"), (4, b"summary-4")]
    assert [s for s, _ in box] == [3, 4, 9]
    assert box.ack(3) is True
    assert box.ack(3) is False
    assert box.peek(5) == [(4, b"summary-4"), (9, b"summary-9")]
    assert box.depth == 2


def test_restart_recovers_queue_and_rejects_old_seq():
    d = tmpdir()
    box = Outbox(d, 4096, 10)
    box.put(1, b"a")
    box.put(2, b"bb")
    box.ack(1)
    box2 = Outbox(d, 4096, 10)
    assert box2.seqs() == [2]
    assert box2.peek() == [(2, b"bb")]
    assert box2.quarantined == [] and box2.torn == 0
    e = raises(AgentError, box2.put, 2, b"again")
    assert "seq 2" in str(e)


def test_full_by_count_drops_oldest_and_reports_range():
    d = tmpdir()
    box = Outbox(d, 100000, 3)
    for seq in range(10, 13):
        box.put(seq, b"x")
    assert box.drop_report() is None
    assert box.put(13, b"x") == [10]
    assert box.put(14, b"x") == [11]
    assert box.seqs() == [12, 13, 14]
    assert box.drop_report() == (2, 10, 11)
    # The report survives a reboot before it is announced.
    box = Outbox(d, 100000, 3)
    report = box.drop_report()
    assert report == (2, 10, 11)
    # The summary that announces it drops 12 to make room. Everything stays pending until the
    # announcing summary is acknowledged: it could still be dropped itself, unsent.
    assert box.put(15, b"announces 10..11", announced=report) == [12]
    assert box.drop_report() == (3, 10, 12)
    assert box.ack(15)
    assert box.drop_report() == (1, 12, 12)  # 10..11 reached the city with 15
    assert Outbox(d, 100000, 3).drop_report() == (1, 12, 12)


def test_an_announcing_record_that_is_dropped_unsent_takes_nothing_with_it():
    d = tmpdir()
    box = Outbox(d, 100000, 2)
    box.put(1, b"x")
    box.put(2, b"x")
    assert box.put(3, b"x") == [1]
    report = box.drop_report()
    assert report == (1, 1, 1)
    assert box.put(4, b"announces 1", announced=report) == [2]
    assert box.put(5, b"announces 1..2", announced=box.drop_report()) == [3]
    assert box.put(6, b"x", announced=box.drop_report()) == [4]  # 4, which announced 1, is gone
    assert box.drop_report() == (4, 1, 4)  # so 1 is still announced, with 2..4
    assert box.ack(5)  # 5 announced 1..2 and was delivered
    assert box.drop_report() == (2, 3, 4)


def test_full_by_bytes_drops_as_many_as_needed():
    d = tmpdir()
    box = Outbox(d, max_bytes=3 * (OVERHEAD + 10), max_count=100)
    for seq in (1, 2, 3):
        box.put(seq, b"0123456789")
    dropped = box.put(4, b"0123456789" * 2)  # needs two records' room
    assert dropped == [1, 2]
    assert box.seqs() == [3, 4]
    assert box.bytes <= box.max_bytes
    assert box.drop_report() == (2, 1, 2)
    e = raises(AgentError, box.put, 5, b"z" * (3 * (OVERHEAD + 10)))
    assert "max_bytes" in str(e)


def test_clear_drop_report_keeps_later_drops():
    d = tmpdir()
    box = Outbox(d, 100000, 1)
    box.put(1, b"a")
    box.put(2, b"b")  # drops 1
    rep = box.drop_report()
    box.put(3, b"c")  # drops 2
    box.clear_drop_report(rep)
    assert box.drop_report() == (1, 2, 2)


def test_torn_tmp_is_discarded_and_truncated_record_quarantined():
    d = tmpdir()
    box = Outbox(d, 4096, 10)
    box.put(1, b"first summary")
    box.put(2, b"second summary")
    box.put(3, b"third summary")
    # A cut mid-write before the rename: a partial tmp file.
    with open(d + "/4.rec.tmp", "wb") as f:
        f.write(atomic.frame(b"\x00" * 8 + b"never committed")[:9])
    # Media damage: record 2 truncated mid-record, record 3 with one flipped bit.
    with open(d + "/2.rec", "rb") as f:
        raw = f.read()
    with open(d + "/2.rec", "wb") as f:
        f.write(raw[: len(raw) - 5])
    with open(d + "/3.rec", "rb") as f:
        raw = bytearray(f.read())
    raw[-1] ^= 0x01
    with open(d + "/3.rec", "wb") as f:
        f.write(raw)
    box = Outbox(d, 4096, 10)
    assert box.seqs() == [1]
    assert box.torn == 1
    assert sorted(box.quarantined) == ["2.rec", "3.rec"]
    assert "2.rec.bad" in _files(d) and "3.rec.bad" in _files(d)
    assert "4.rec.tmp" not in _files(d)
    # Lost summaries are never silent: they are reported as dropped.
    assert box.drop_report() == (2, 2, 3)
    # ... and the next seq must still be above the quarantined ones.
    raises(AgentError, box.put, 3, b"x")
    box.put(4, b"fourth")
    assert box.peek(5) == [(1, b"first summary"), (4, b"fourth")]


def test_record_under_wrong_name_and_garbage_file_are_quarantined():
    d = tmpdir()
    box = Outbox(d, 4096, 10)
    box.put(5, b"five")
    os.rename(d + "/5.rec", d + "/6.rec")
    with open(d + "/x7.rec", "wb") as f:
        f.write(b"junk")
    box = Outbox(d, 4096, 10)
    assert box.depth == 0
    assert sorted(box.quarantined) == ["6.rec", "x7.rec"]


def test_corrupt_drop_file_is_quarantined_not_fatal():
    d = tmpdir()
    box = Outbox(d, 100000, 1)
    box.put(1, b"a")
    box.put(2, b"b")
    with open(d + "/dropped", "wb") as f:
        f.write(b"CMf1garbage")
    box = Outbox(d, 100000, 1)
    assert box.quarantined == ["dropped"]
    assert box.seqs() == [2]


def test_interrupted_drop_is_rolled_forward():
    d = tmpdir()
    box = Outbox(d, 100000, 10)
    for seq in (1, 2, 3):
        box.put(seq, b"r")
    # A cut right after the drop intent was written, before the victims were removed.
    import struct

    atomic.write_file(d + "/dropped", struct.pack(">q", 2) + struct.pack(">QQI", 1, 2, 2))
    box = Outbox(d, 100000, 10)
    assert box.seqs() == [3]
    assert box.drop_report() == (2, 1, 2)


def test_shrunk_bounds_apply_at_start_up():
    d = tmpdir()
    box = Outbox(d, 100000, 10)
    for seq in range(1, 6):
        box.put(seq, b"r")
    box = Outbox(d, 100000, 2)
    assert box.seqs() == [4, 5]
    assert box.drop_report() == (3, 1, 3)


def test_quarantined_files_are_bounded():
    d = tmpdir()
    box = Outbox(d, 4096, 10, keep_bad=2)
    for seq in range(1, 6):
        box.put(seq, b"r")
    for seq in range(1, 6):
        with open(d + "/%d.rec" % seq, "wb") as f:
            f.write(b"bad")
    Outbox(d, 4096, 10, keep_bad=2)
    assert len([n for n in _files(d) if n.endswith(".bad")]) == 2


def test_atomic_frame_rejects_torn_and_flipped():
    good = atomic.frame(b"payload")
    assert atomic.unframe(good, "f") == b"payload"
    for bad, word in ((good[:5], "shorter"), (good[:-1], "torn"), (b"XXXX" + good[4:], "magic"),
                      (good[:-1] + b"P", "CRC")):
        e = raises(DecodeError, atomic.unframe, bad, "the-file")
        assert "the-file" in str(e) and word in str(e), str(e)


def test_atomic_read_falls_back_to_complete_tmp():
    d = tmpdir()
    p = d + "/value"
    atomic.write_file(p, b"one")
    atomic.write_file(p, b"two")
    assert atomic.read_file(p) == b"two"
    # A FAT-style replace cut between remove and rename: only the complete tmp is left.
    os.rename(p, p + ".tmp")
    assert atomic.read_file(p) == b"two"
    assert "value" in _files(d)
    assert atomic.read_file(d + "/none") is None


def test_seq_strictly_increases_across_reboots_with_one_write_per_block():
    d = tmpdir()
    p = d + "/seq"
    a = SeqAllocator(p, block=4)
    got = [a.next() for _ in range(6)]
    assert got == [1, 2, 3, 4, 5, 6]
    b = SeqAllocator(p, block=4)  # "reboot": 7 and 8 were reserved, so they are skipped
    assert b.next() == 9
    c = SeqAllocator(p, block=4)
    assert c.next() == 13
    assert c.first == 13


def test_seq_writes_only_at_block_boundaries():
    d = tmpdir()
    p = d + "/seq"
    a = SeqAllocator(p, block=64)
    a.next()
    with open(p, "rb") as f:
        first = f.read()
    for _ in range(62):
        a.next()
    with open(p, "rb") as f:
        assert f.read() == first  # no write within the block
    a.next()
    a.next()  # 65: a new block
    with open(p, "rb") as f:
        assert f.read() != first


def test_seq_corrupt_file_falls_back_to_floor():
    d = tmpdir()
    p = d + "/seq"
    with open(p, "wb") as f:
        f.write(b"CMf1\x00\x00\x00\x08garbage!")
    a = SeqAllocator(p, block=8, floor=500)
    assert a.recovered is False
    assert a.next() == 500
    assert "seq.bad" in _files(d)


def test_peek_skips_what_is_in_flight_without_reading_it():
    d = tmpdir()
    box = Outbox(d, 100000, 10)
    for seq in (1, 2, 3):
        box.put(seq, b"rec%d" % seq)
    # Corrupt record 1 on flash: skipping it must not read it (no quarantine, no drop).
    with open(d + "/1.rec", "r+b") as f:
        f.seek(14)
        f.write(b"\xff")
    assert box.peek(1, skip={1}) == [(2, b"rec2")]
    assert box.peek(2, skip={1, 2}) == [(3, b"rec3")]
    assert box.drop_report() is None and box.depth == 3
    assert box.peek(1) == [(2, b"rec2")]  # read now: 1 is found corrupt, quarantined and reported
    assert box.drop_report() == (1, 1, 1) and box.depth == 2
