"""Receipts on the device (portable): every refusal keeps the data, a valid receipt retires exactly
[lo, hi], and after the first one a PUBACK no longer retires anything."""
from agent import crypto
from agent.core import receipt
from agent.errors import AgentError
from agent.runtime.receipts import Receipts, last_proof
from agent.store.outbox import Outbox
from support import raises, seeded_rng, tmpdir

CID = "civicmote-collector"
DEV = "cmaaaaaaaaaaaaaaaa"


def _keys(seed):
    rng = seeded_rng(seed)
    return crypto.generate_signing_key(rng), crypto.generate_signing_key(rng)


def _city(seed=b"city"):
    ca, col = _keys(seed)
    cert = receipt.make_cert(ca, CID, col.public_key().to_sec1(), 2000000000)
    return ca, col, cert


def _keeper(ca, d):
    v = receipt.Verifier(ca.public_key(), crypto.verifying_key_from_sec1)
    return Receipts(d + "/receipt", v, DEV)


def _outbox(d, n):
    ob = Outbox(d + "/outbox", 4 * 4096, 64, segment=4096)
    for seq in range(1, n + 1):
        ob.put(seq, b"summary %d" % seq)
    return ob


def test_refusals_keep_the_data_and_a_valid_receipt_retires_its_range():
    ca, col, cert = _city()
    other_ca, other_col, other_cert = _city(b"other")
    d = tmpdir()
    ob = _outbox(d, 5)
    k = _keeper(ca, d)
    bad = [
        receipt.make(other_col, other_cert, DEV, 1, 3, 1000, CID),  # another CA's collector
        receipt.make(other_col, cert, DEV, 1, 3, 1000, CID),  # the real certificate, another key
        receipt.make(col, cert, "cmbbbbbbbbbbbbbbbb", 1, 3, 1000, CID),  # another device's
        receipt.make(col, cert, DEV, 1, 9, 1000, CID),  # seqs never sent
        receipt.make(col, cert, DEV, 3, 2, 1000, CID),  # lo above hi
        b"\xd2\x84garbage",
    ]
    for msg in bad:
        assert k.accept(msg, ob, 0) == 0
    assert k.refused == len(bad) and not k.active and ob.seqs() == [1, 2, 3, 4, 5]
    assert k.accept(receipt.make(col, cert, DEV, 2, 3, 2000, CID), ob, 1) == 2
    assert ob.seqs() == [1, 4, 5] and k.active and k.hi == 3
    assert k.proof() == "the city has stored up to seq 3 at 1970-01-01T00:00:02Z"
    # A replay of an older (genuine) receipt, or of the same one, is refused.
    assert k.accept(receipt.make(col, cert, DEV, 1, 5, 2000, CID), ob, 2) == 0
    assert ob.seqs() == [1, 4, 5]
    assert k.accept(receipt.make(col, cert, DEV, 1, 5, 2001, CID), ob, 3) == 3
    assert ob.depth == 0 and ob.seqs() == []


def test_the_last_receipt_survives_a_restart_and_still_refuses_replays():
    ca, col, cert = _city()
    d = tmpdir()
    ob = _outbox(d, 3)
    k = _keeper(ca, d)
    first = receipt.make(col, cert, DEV, 1, 2, 5000, CID)
    assert k.accept(first, ob, 0) == 2
    k2 = _keeper(ca, d)  # a reboot
    assert k2.active and k2.hi == 2 and k2.t == 5000
    assert k2.accept(first, Outbox(d + "/outbox", 4 * 4096, 64, segment=4096), 0) == 0
    p = last_proof(d)
    assert p["seq"] == 2 and p["at"] == 5 and p["message"] == first


def test_peek_after_walks_the_queue_once_and_keeps_what_was_sent():
    d = tmpdir()
    ob = _outbox(d, 40)
    got, seq = [], 0
    while True:
        rec = ob.peek_after(seq)
        if not rec:
            break
        seq = rec[0][0]
        got.append(seq)
    assert got == list(range(1, 41)) and ob.depth == 40  # sending retires nothing
    assert ob.peek_after(10, skip=(11, 12))[0][0] == 13
    ob.retire(1, 20)
    assert ob.peek_after(-1)[0][0] == 21 and ob.head_seq == 21
    reopened = Outbox(d + "/outbox", 4 * 4096, 64, segment=4096)
    assert reopened.seqs() == list(range(21, 41))  # retired on flash too


def test_a_cert_for_another_role_is_refused():
    ca, col, _ = _city()
    from agent.core import cbor, cose

    wrong = cose.sign1(cbor.dumps({"v": 1, "role": "updates", "id": CID, "pk": col.public_key().to_sec1(),
                                   "exp": 2000000000}), ca, b"ca")
    assert raises(AgentError, receipt.open_cert, wrong, ca.public_key())


def test_a_full_outbox_still_drops_the_oldest_and_a_receipt_clears_its_announcement():
    # Summaries waiting for a receipt take the bound's room like any: the oldest goes, counted,
    # announced by the next one; the announcement is settled when a receipt covers that one.
    ca, col, cert = _city()
    d = tmpdir()
    ob = Outbox(d + "/outbox", 4 * 4096, 3, segment=4096)
    for seq in (1, 2, 3):
        ob.put(seq, b"summary %d" % seq)
    report = ob.drop_report()
    assert report is None
    assert ob.put(4, b"summary 4") == [1]  # full: the oldest is dropped, though it was sent
    report = ob.drop_report()
    assert report == (1, 1, 1)
    assert ob.put(5, b"summary 5 announcing 1", announced=report) == [2]
    k = _keeper(ca, d)
    assert k.accept(receipt.make(col, cert, DEV, 3, 4, 1000, CID), ob, 0) == 2
    assert ob.seqs() == [5] and ob.drop_report() == (2, 1, 2)  # 5 not stored yet: still pending
    assert k.accept(receipt.make(col, cert, DEV, 3, 5, 1001, CID), ob, 1) == 1
    assert ob.depth == 0 and ob.drop_report() == (1, 2, 2)  # 5 announced seq 1 only; 2 is still to announce
