"""The outbox on the runtime's own filesystem (littlefs-like on MicroPython, POSIX on CPython):
order, bounds in real disk use, drop reporting, torn writes, corruption, memory per record."""
import os

from support import raises, tmpdir

from agent.errors import AgentError, DecodeError
from agent.store import atomic
from agent.store.outbox import OVERHEAD, Outbox
from agent.store.outbox import HDR


def _files(d):
    names = os.listdir(d)
    names.sort()
    return names


def test_put_peek_ack_oldest_first():
    d = tmpdir()
    box = Outbox(d, max_bytes=4096, max_count=10, segment=512)
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
    box = Outbox(d, 4096, 10, segment=512)
    box.put(1, b"a")
    box.put(2, b"bb")
    box.ack(1)
    box2 = Outbox(d, 4096, 10, segment=512)
    assert box2.seqs() == [2]
    assert box2.peek() == [(2, b"bb")]
    assert box2.quarantined == [] and box2.torn == 0
    e = raises(AgentError, box2.put, 2, b"again")
    assert "seq 2" in str(e)


def test_full_by_count_drops_oldest_and_reports_range():
    d = tmpdir()
    box = Outbox(d, 100000, 3, segment=512)
    for seq in range(10, 13):
        box.put(seq, b"x")
    assert box.drop_report() is None
    assert box.put(13, b"x") == [10]
    assert box.put(14, b"x") == [11]
    assert box.seqs() == [12, 13, 14]
    assert box.drop_report() == (2, 10, 11)
    # The report survives a reboot before it is announced.
    box = Outbox(d, 100000, 3, segment=512)
    report = box.drop_report()
    assert report == (2, 10, 11)
    # The summary that announces it drops 12 to make room. Everything stays pending until the
    # announcing summary is acknowledged: it could still be dropped itself, unsent.
    assert box.put(15, b"announces 10..11", announced=report) == [12]
    assert box.drop_report() == (3, 10, 12)
    assert box.ack(15)
    assert box.drop_report() == (1, 12, 12)  # 10..11 reached the city with 15
    assert Outbox(d, 100000, 3, segment=512).drop_report() == (1, 12, 12)


def test_an_announcing_record_that_is_dropped_unsent_takes_nothing_with_it():
    d = tmpdir()
    box = Outbox(d, 100000, 2, segment=512)
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




def _seg(d, i):
    return d + "/seg%03d" % i


def _flip(path, offset):
    with open(path, "r+b") as f:
        f.seek(offset)
        b = f.read(1)
        f.seek(offset)
        f.write(bytes((b[0] ^ 0x01,)))


def test_disk_use_is_the_bound_preallocated_in_segments():
    d = tmpdir()
    box = Outbox(d, max_bytes=8 * 512, max_count=1000, segment=512)
    files = [n for n in _files(d) if n.startswith("seg")]
    assert len(files) == 8 and all(os.stat(d + "/" + n)[6] == 512 for n in files)
    for seq in range(1, 200):
        box.put(seq, b"s" * 100)
    # the ring never grows: the same eight files, full size, and drops reported
    assert sorted(n for n in _files(d) if n.startswith("seg")) == sorted(files)
    assert all(os.stat(d + "/" + n)[6] == 512 for n in files)
    assert box.bytes <= 8 * 512 and box.depth >= 7 * (512 // (HDR + 100))  # all but the segment being refilled
    count, first, last = box.drop_report()
    assert first == 1 and last == box.seqs()[0] - 1 and count == last
    e = raises(AgentError, box.put, 500, b"z" * 600)
    assert "segment" in str(e)


def test_full_by_bytes_drops_the_oldest_segment_and_reports_it():
    d = tmpdir()
    box = Outbox(d, max_bytes=2 * 512, max_count=100, segment=512)
    per = (512 // (HDR + 100))  # records per segment
    for seq in range(1, 2 * per + 1):
        assert box.put(seq, b"r" * 100) == []
    dropped = box.put(2 * per + 1, b"r" * 100)
    assert dropped == list(range(1, per + 1))
    assert box.drop_report() == (per, 1, per)
    assert box.seqs() == list(range(per + 1, 2 * per + 2))


def test_restart_finds_queue_acks_and_drops():
    d = tmpdir()
    box = Outbox(d, 4 * 512, 100, segment=512)
    for seq in range(1, 30):
        box.put(seq, b"%d" % seq * 10)
    box.ack(box.seqs()[0])
    box.ack(box.seqs()[2])  # out of order: retired in place
    want, rep = box.seqs(), box.drop_report()
    again = Outbox(d, 4 * 512, 100, segment=512)
    assert again.seqs() == want and again.drop_report() == rep and again.depth == len(want)
    assert again.last_seq == 29 and [s for s, _ in again] == want
    raises(AgentError, again.put, 29, b"x")


def test_torn_and_corrupt_records_are_reported_as_drops_once():
    d = tmpdir()
    box = Outbox(d, 4096, 10, segment=512)
    for seq in (1, 2, 3):
        box.put(seq, b"summary number %d" % seq)
    size = HDR + len(b"summary number 1")
    _flip(_seg(d, 0), size + HDR + 3)  # a bit of record 2's data
    _flip(_seg(d, 0), 2 * size + HDR + 1)  # ... and of record 3's (as a torn last write leaves it)
    box = Outbox(d, 4096, 10, segment=512)
    assert box.seqs() == [1] and box.torn == 2 and box.quarantined == [2, 3]
    assert box.drop_report() == (2, 2, 3)
    box = Outbox(d, 4096, 10, segment=512)  # found again after a restart: not counted twice
    assert box.drop_report() == (2, 2, 3) and box.torn == 0
    raises(AgentError, Outbox(d, 4096, 10, segment=512).put, 3, b"x")
    box.put(4, b"fourth")
    assert box.peek(5) == [(1, b"summary number 1"), (4, b"fourth")]


def test_a_lost_index_resends_rather_than_loses():
    d = tmpdir()
    box = Outbox(d, 4096, 10, segment=512)
    for seq in (1, 2, 3):
        box.put(seq, b"r%d" % seq)
    box.ack(1)
    os.remove(d + "/index")
    box = Outbox(d, 4096, 10, segment=512)
    assert box.seqs() == [2, 3]  # 1 was retired in place: its flag survives


def test_peek_skips_what_is_in_flight_without_reading_it():
    d = tmpdir()
    box = Outbox(d, 4096, 10, segment=512)
    for seq in (1, 2, 3):
        box.put(seq, b"rec%d" % seq)
    _flip(_seg(d, 0), HDR + 1)  # record 1's data
    assert box.peek(1, skip={1}) == [(2, b"rec2")]
    assert box.peek(2, skip={1, 2}) == [(3, b"rec3")]
    assert box.drop_report() is None and box.depth == 3
    assert box.peek(1) == [(2, b"rec2")]  # read now: 1 is found corrupt, marked dead and reported
    assert box.drop_report() == (1, 1, 1) and box.depth == 2


def test_memory_does_not_grow_with_queued_records():
    # CPython: tracemalloc counts what stays allocated. The WebAssembly port's gc.collect() does
    # not reclaim reliably (a loop of crc32 calls alone "grows" ~100 bytes per call there), so
    # its heap is not measured here; the board-sized heap test on the native unix port is.
    try:
        import tracemalloc
    except ImportError:
        return
    d = tmpdir()
    box = Outbox(d, 64 * 512, 10000, segment=512)
    tracemalloc.start()
    try:
        for seq in range(1, 11):
            box.put(seq, b"x" * 80)
        before = tracemalloc.get_traced_memory()[0]
        for seq in range(11, 211):
            box.put(seq, b"x" * 80)
        after = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert box.depth == 210
    assert after - before < 2048, (before, after)  # 200 more records: no object per record
