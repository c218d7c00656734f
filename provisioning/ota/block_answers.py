"""Answers to a device's `ota/req` for a release and its blocks (CPython only).

An interim, minimal block server for the rollout service, written to the spec's topics table
(docs/wire-format.md, "Updates") until provisioning/city/ota_blocks.py (the device side's own,
issue 23d) is merged; the rollout service calls only `answer(req)`, so either fits.

    answers = BlockAnswers(lookup)          # lookup(release hash) -> (release COSE, artefact path) or None
    for payload in answers.answer(req): publish(PREFIX/{district}/{dev}/ota/down, payload)

    {"op": "release", "r": hash32}              -> b"R" + release COSE
    {"op": "blk", "r": hash32, "off": o, "n": k} -> k blocks (1..4) of 4096 bytes from o, each
        b"B" + hash[:8] + u32 BE offset + u32 BE CRC32 of data + data; none past the artefact's end
An unknown release, or a request out of range, gets no answer (the device re-requests, then
reports `stalled`).
"""
import struct
import zlib

BLOCK = 4096
MAX_BLOCKS = 4


class BlockAnswers:
    def __init__(self, lookup):
        self.lookup = lookup
        self.bytes_sent = 0
        self.blocks_sent = 0

    def answer(self, req):
        op, r = req.get("op"), req.get("r")
        if not isinstance(r, bytes) or len(r) != 32:
            return []
        found = self.lookup(r)
        if found is None:
            return []
        cose, path = found
        if op == "release":
            return [b"R" + bytes(cose)]
        off, n = req.get("off"), req.get("n")
        if op != "blk" or not _uint(off) or not _uint(n) or not 1 <= n <= MAX_BLOCKS:
            return []
        out = []
        with open(path, "rb") as f:
            f.seek(off)
            for i in range(n):
                data = f.read(BLOCK)
                if not data:
                    break
                out.append(b"B" + r[:8] + struct.pack(">II", off + i * BLOCK, zlib.crc32(data)) + data)
                self.bytes_sent += len(data)
                self.blocks_sent += 1
        return out


def _uint(v):
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0
