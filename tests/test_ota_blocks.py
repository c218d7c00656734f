"""The city's block server (provisioning/city/ota_blocks.py): what it answers, what it leaves
unanswered, its hooks; and the portable tests' stand-in city (tests/portable/ota_city.py) answers
the same bytes."""
import hashlib
import sys
from pathlib import Path

from agent.core import cbor
from provisioning.city.ota_blocks import BLOCK, ArtefactStore, BlockServer, block_message, parse_request

sys.path.insert(0, str(Path(__file__).resolve().parent / "portable"))
import ota_city  # noqa: E402

DEV = ota_city.DEV
REQ = "civicmote/v1/north/%s/ota/req" % DEV
DOWN = "civicmote/v1/north/%s/ota/down" % DEV


def _server(tmp_path, data, **kw):
    rel = ota_city.release(data)
    order = ota_city.order(rel)
    store = ArtefactStore(tmp_path / "store")
    h = store.add(rel, data)
    assert h == hashlib.sha256(rel).digest() and store.release(h) == rel
    return BlockServer(store, lambda district, dev: order if district == "north" else None, **kw), h, rel, order


def test_orders_releases_and_blocks_are_answered_on_the_devices_own_topic(tmp_path):
    data = ota_city.artefact(3 * BLOCK + 100)
    srv, h, rel, order = _server(tmp_path, data)
    assert srv.handle(REQ, cbor.dumps({"op": "order"})) == [(DOWN, b"O" + order)]
    assert srv.handle(REQ, cbor.dumps({"op": "release", "r": h})) == [(DOWN, b"R" + rel)]
    out = srv.handle(REQ, cbor.dumps({"op": "blk", "r": h, "off": 0, "n": 4}))
    assert [t for t, _ in out] == [DOWN] * 4
    assert [len(p) for _, p in out] == [17 + BLOCK] * 3 + [17 + 100]
    assert out[3][1] == block_message(h, 3 * BLOCK, data[3 * BLOCK:])
    assert srv.served == {"O": 1, "R": 1, "B": 4} and srv.bytes_out == sum(len(p) for _, p in out) + len(order) + len(rel) + 2
    # The portable tests' stand-in answers byte for byte alike.
    city = ota_city.City(rel, data, order)
    for req in ({"op": "order"}, {"op": "release", "r": h}, {"op": "blk", "r": h, "off": BLOCK, "n": 3}):
        assert [p for _, p in srv.handle(REQ, cbor.dumps(req))] == city.answer(cbor.dumps(req)), req


def test_what_is_left_unanswered(tmp_path):
    data = ota_city.artefact(2 * BLOCK)
    srv, h, rel, order = _server(tmp_path, data)
    for topic, req in ((REQ, {"op": "blk", "r": h, "off": 2 * BLOCK, "n": 1}),       # past the end
                       (REQ, {"op": "blk", "r": b"\x01" * 32, "off": 0, "n": 1}),    # an unknown release
                       (REQ, {"op": "release", "r": b"\x01" * 32}),
                       ("civicmote/v1/south/%s/ota/req" % DEV, {"op": "order"}),     # no order there
                       ("civicmote/v1/north/ota/req", {"op": "order"})):             # not a device's topic
        assert srv.handle(topic, cbor.dumps(req)) == [], (topic, req)
    for bad in ({"op": "blk", "r": h, "off": 100, "n": 1}, {"op": "blk", "r": h, "off": 0, "n": 5},
                {"op": "blk", "r": h, "off": 0, "n": 0}, {"op": "blk", "r": h[:8], "off": 0, "n": 1},
                {"op": "nope"}, [1, 2]):
        assert srv.handle(REQ, cbor.dumps(bad)) == []
    assert srv.handle(REQ, b"\xff" * 20) == [] and srv.handle(REQ, b"x" * 200) == []
    assert srv.refused == 8


def test_the_admission_hook_holds_blocks_back_and_every_request_is_told(tmp_path):
    data = ota_city.artefact(BLOCK)
    seen = []
    srv, h, rel, order = _server(tmp_path, data, admit=lambda district, dev, r, off: False,
                                 on_request=lambda district, dev, req, now: seen.append((district, dev, req["op"], now)))
    assert srv.handle(REQ, cbor.dumps({"op": "blk", "r": h, "off": 0, "n": 1}), 5) == []
    assert srv.handle(REQ, cbor.dumps({"op": "release", "r": h}), 6) == [(DOWN, b"R" + rel)]
    assert seen == [("north", DEV, "blk", 5), ("north", DEV, "release", 6)]
    assert parse_request(cbor.dumps({"op": "blk", "r": h, "off": BLOCK, "n": 2}))["n"] == 2
