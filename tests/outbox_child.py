"""Child process for tests/test_outbox_crash.py: writes to an outbox until it is killed.

Prints one line per fact *after* it is durable ("put SEQ") or *before* it is attempted
("ack SEQ", "announce COUNT FIRST LAST"), so the parent can check that nothing that was
reported as enqueued is ever lost.
"""
import sys

from agent.store.outbox import Outbox
from agent.store.seq import SeqAllocator


def payload(seq):
    return (b"summary %d " % seq) * (1 + seq % 7)


def main(d):
    box = Outbox(d + "/outbox", max_bytes=8 * 512, max_count=30, segment=512)
    floor = (box.seqs()[-1] + 1) if box.depth else 1
    alloc = SeqAllocator(d + "/seq", block=16, floor=floor)
    print("ready", flush=True)
    n = 0
    while True:
        n += 1
        seq = alloc.next()
        announced = None
        if n % 10 == 0:
            announced = box.drop_report()
            if announced:
                print("announce %d %d %d" % announced, flush=True)
        box.put(seq, payload(seq), announced=announced)
        print("put %d" % seq, flush=True)
        if n % 3 == 0 and box.depth:
            oldest = box.seqs()[0]
            print("ack %d" % oldest, flush=True)
            box.ack(oldest)


if __name__ == "__main__":
    main(sys.argv[1])
