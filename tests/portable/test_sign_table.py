"""agent/crypto/table_file.py: signing from the fixed-base table on flash (portable)."""
import os

from support import tmpdir

from agent.crypto import ecdsa, p256, table_file

SECRET = bytes(range(1, 33))
K = 0x1234567890ABCDEF1234567890ABCDEF1234567890ABCDEF1234567890ABCDEF


def _size(path):
    return os.stat(path)[6]


def test_flash_table_signs_byte_for_byte_as_the_ram_table():
    key = ecdsa.SigningKey.from_bytes(SECRET)
    msgs = [b"", b"summary", bytes(range(256))]
    p256.use_table(None)
    in_ram = [key.sign(m) for m in msgs]
    path = tmpdir() + "/p256.table"
    table = table_file.open_table(path)
    try:
        p256.use_table(table)
        assert [key.sign(m) for m in msgs] == in_ram  # RFC 6979: the same nonce, the same bytes
        assert p256.to_affine(p256.mul_base(K)) == p256.to_affine(p256.mul(K, p256.G))
        for m, sig in zip(msgs, in_ram):
            key.public_key().verify(sig, m)
    finally:
        p256.use_table(None)
        table.close()
    assert _size(path) == len(table_file.MAGIC) + 1 + p256.WINDOWS * p256.ROW_BYTES + 32


def test_a_damaged_table_is_rebuilt_not_used():
    path = tmpdir() + "/p256.table"
    table_file.open_table(path).close()
    assert table_file._valid(path)
    with open(path, "r+b") as f:  # one flipped byte in row 3
        f.seek(len(table_file.MAGIC) + 1 + 3 * p256.ROW_BYTES + 7)
        b = f.read(1)
        f.seek(-1, 1)
        f.write(bytes((b[0] ^ 1,)))
    assert not table_file._valid(path)
    with open(path + "x", "wb") as f:  # a torn write: half the file
        f.write(b"CMT1")
    assert not table_file._valid(path + "x") and not table_file._valid(path + "-missing")
    table = table_file.open_table(path)
    try:
        p256.use_table(table)
        assert table_file._valid(path)
        assert p256.to_affine(p256.mul_base(K)) == p256.to_affine(p256.mul(K, p256.G))
    finally:
        p256.use_table(None)
        table.close()
