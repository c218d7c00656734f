"""NIST P-256 field and group arithmetic in pure Python integers (portable primitives).

Points are projective triples (X, Y, Z) meaning the affine point (X/Z, Y/Z); the identity is
(0, 1, 0). Additions use the complete formulas of Renes, Costello and Batina (2016, a = -3),
so doubling, adding the identity and P + (-P) need no special case: P-256 has prime order.
Reductions are lazy: sums and differences stay unreduced until the next product is reduced.

This module is the primitive layer: scalars are plain ints and nothing here hashes or checks
signatures. Python big-int arithmetic is not constant time; see agent/crypto/ecdsa.py.
"""
from agent.compat import ECC_TABLE_BITS
from agent.errors import SignatureError

P = 0xFFFFFFFF00000001000000000000000000000000FFFFFFFFFFFFFFFFFFFFFFFF
N = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
B = 0x5AC635D8AA3A93E7B3EBBD55769886BC651D06B0CC53B0F63BCE3C3E27D2604B
GX = 0x6B17D1F2E12C4247F8BCE6E563A440F277037D812DEB33A0F4A13945D898C296
GY = 0x4FE342E2FE1A7F9B8EE7EB4A7C0F9E162BCE33576B315ECECBB6406837BF51F5
IDENTITY = (0, 1, 0)
G = (GX, GY, 1)

# Fixed-base table: window i holds the odd multiples (2j+1)·2^(W·i)·G, j < 2^(W-1), affine,
# packed as 64 bytes per point (x‖y), one bytes object per window (256 bytes at W=3), so no
# allocation is larger than a window: a board's fragmented heap has room for many small
# blocks long after it has none of 22 KB. W trades RAM for speed (compat.ECC_TABLE_BITS):
# W=3 keeps 22 KB on a board (86 additions a signature), W=4 33 KB on Linux (65 additions).
# A board keeps it on flash instead and reads one row per addition (use_table): no RAM at all.
_W = ECC_TABLE_BITS
_HALF = 1 << (_W - 1)
_WINDOWS = 257 // _W + 1  # digits of an odd scalar below 2^257 in regular recoding
ROW_BYTES = 64 * _HALF
WINDOWS = _WINDOWS
_table = []  # [rows]: the table in RAM once built, or a stand-in from use_table(); a list so no global is rebound


def _probe_pow_inverse():
    # pow(x, -1, m) is a C extended-Euclid on CPython 3.8+ (60x faster than Fermat there);
    # MicroPython returns a wrong value instead of raising, so check the answer.
    try:
        return pow(3, -1, 7) == 5
    except (ValueError, TypeError):
        return False


_POW_INVERSE = _probe_pow_inverse()


def inverse_mod(x, m):
    """x^-1 mod m for prime m and x not divisible by m (Fermat, or pow(x, -1, m) when correct)."""
    if x % m == 0:
        raise ZeroDivisionError("0 has no inverse")
    if _POW_INVERSE:
        return pow(x, -1, m)
    return pow(x, m - 2, m)


# The RCB a = -3 addition, regrouped so each output is one reduction of two products:
#   t0 = X1X2, t1 = Y1Y2, t2 = Z1Z2, t3 = X1Y2 + X2Y1, t4 = Y1Z2 + Y2Z1, u = X1Z2 + X2Z1,
#   v = 3(u - b·t2), w = 3(b·u - 3·t2 - t0), a = t1 + v, c = t1 - v, t0' = 3(t0 - t2),
#   X3 = t3·a - t4·w,  Y3 = a·c + t0'·w,  Z3 = t4·c + t3·t0'.
def add(p1, p2):
    """Complete projective addition p1 + p2 (any inputs, the identity included)."""
    p, b = P, B
    X1, Y1, Z1 = p1
    X2, Y2, Z2 = p2
    t0 = X1 * X2
    t1 = Y1 * Y2
    t2 = Z1 * Z2
    t3 = ((X1 + Y1) * (X2 + Y2) - t0 - t1) % p  # X1Y2 + X2Y1
    t4 = ((Y1 + Z1) * (Y2 + Z2) - t1 - t2) % p  # Y1Z2 + Y2Z1
    u = ((X1 + Z1) * (X2 + Z2) - t0 - t2) % p  # X1Z2 + X2Z1
    t0 %= p
    t1 %= p
    t2 %= p
    v = 3 * ((u - b * t2) % p)
    w = 3 * ((b * u - 3 * t2 - t0) % p)
    a = t1 + v
    c = t1 - v
    t0 = 3 * (t0 - t2)
    return ((t3 * a - t4 * w) % p, (a * c + t0 * w) % p, (t4 * c + t3 * t0) % p)


def double(p1):
    """Complete projective doubling 2·p1 (the addition formulas with p2 = p1, simplified)."""
    p, b = P, B
    X, Y, Z = p1
    t0 = X * X % p
    t1 = Y * Y % p
    t2 = Z * Z % p
    t3 = 2 * X * Y % p
    t4 = 2 * Y * Z % p
    u = 2 * X * Z
    v = 3 * ((u - b * t2) % p)
    w = 3 * ((b * u - 3 * t2 - t0) % p)
    a = t1 + v
    c = t1 - v
    t0 = 3 * (t0 - t2)
    return ((t3 * a - t4 * w) % p, (a * c + t0 * w) % p, (t4 * c + t3 * t0) % p)


def negate(p1):
    X, Y, Z = p1
    return (X, (P - Y) % P, Z)


def to_affine(p1):
    """(x, y) ints in [0, P), or None for the identity."""
    X, Y, Z = p1
    if Z % P == 0:
        return None
    zi = inverse_mod(Z, P)
    return (X * zi % P, Y * zi % P)


def is_on_curve(x, y):
    """True when 0 <= x, y < P and y^2 = x^3 - 3x + b (mod P)."""
    if not (0 <= x < P and 0 <= y < P):
        return False
    return (y * y - (x * x * x - 3 * x + B)) % P == 0


def _recode(k):
    """k mod N as W-bit signed odd digits d_i (sum(d_i·2^(W·i))·G = k·G, |d_i| < 2^W), least
    significant first, each returned as d_i >> 1: the table index j of |d_i| = 2j+1 when
    d_i > 0, and ~j when d_i < 0. No digit is zero, so every window costs one addition.

    An even k gets N added to make it odd (N·G = O). Digit i is then ((k >> W·i) mod 2^(W+1),
    low bit forced to 1) - 2^W and the last one (k >> W·(WINDOWS-1)) | 1, so each comes from
    W+1 bits of k, read here with small ints."""
    k %= N
    if not k & 1:
        k += N
    kb = k.to_bytes(33, "big")
    mask = (1 << (_W + 1)) - 1
    half = 1 << (_W - 1)
    digits = [0] * _WINDOWS  # sized once: a growing list leaves its old arrays as holes
    acc = 0
    nbits = 0
    pos = 32
    for i in range(_WINDOWS - 1):
        while nbits <= _W:
            acc |= kb[pos] << nbits
            nbits += 8
            pos -= 1
        digits[i] = ((acc & mask) >> 1) - half
        acc >>= _W
        nbits -= _W
    while pos >= 0:
        acc |= kb[pos] << nbits
        nbits += 8
        pos -= 1
    digits[_WINDOWS - 1] = acc >> 1
    return digits


def _odd_multiples(p1):
    """[p1, 3·p1, 5·p1, ..., (2^W - 1)·p1] projective, plus 2^W·p1 (the next window's base)."""
    two = double(p1)
    out = [p1]
    for _ in range(_HALF - 1):
        out.append(add(out[-1], two))
    return out, add(out[-1], p1)


def table_rows():
    """The fixed-base table, one window at a time: _WINDOWS rows of ROW_BYTES bytes (x‖y per
    odd multiple, affine, big-endian). A generator, so a caller can write each row to flash
    and hold none of them (agent/crypto/table_file.py)."""
    base = G
    for _ in range(_WINDOWS):
        buf = bytearray(ROW_BYTES)
        pts, base = _odd_multiples(base)
        # Montgomery's trick: one inversion per window instead of one per point.
        acc = [1]
        for q in pts:
            acc.append(acc[-1] * q[2] % P)
        inv = inverse_mod(acc[-1], P)
        for j in range(len(pts) - 1, -1, -1):
            X, Y, Z = pts[j]
            zi = inv * acc[j] % P
            inv = inv * Z % P
            buf[64 * j:64 * j + 32] = (X * zi % P).to_bytes(32, "big")
            buf[64 * j + 32:64 * j + 64] = (Y * zi % P).to_bytes(32, "big")
        yield buf


def _build_table():
    # Every row is allocated before any arithmetic, so the rows sit side by side and the
    # big-integer garbage of the build is freed as one hole, not as holes between rows.
    rows = [bytearray(ROW_BYTES) for _ in range(_WINDOWS)]
    for i, row in enumerate(table_rows()):
        rows[i][:] = row
    _table.append(rows)


def use_table(rows):
    """Sign from rows instead of a table in RAM: any object whose rows[i] (0 <= i < WINDOWS)
    is row i of table_rows(), e.g. a file on flash read a row at a time. Each row is used
    before the next is asked for, so rows[i] may return one reused buffer. None: back to the
    table in RAM (built on next use)."""
    _table[:] = [rows] if rows is not None else []


def mul_base(k):
    """k·G (projective) from the fixed-base table: built in RAM on first use (22-33 KB in small
    blocks, kept) unless use_table() gave another source."""
    if not _table:
        _build_table()
    tbl = _table[0]
    p, b = P, B
    digits = _recode(k)
    e = digits[0]
    o = (e if e >= 0 else ~e) << 6
    row = tbl[0]
    X1 = int.from_bytes(row[o:o + 32], "big")
    Y1 = int.from_bytes(row[o + 32:o + 64], "big")
    if e < 0:
        Y1 = p - Y1
    Z1 = 1
    for i in range(1, _WINDOWS):
        row = tbl[i]
        e = digits[i]
        if e >= 0:
            o = e << 6
            x2 = int.from_bytes(row[o:o + 32], "big")
            y2 = int.from_bytes(row[o + 32:o + 64], "big")
        else:
            o = ~e << 6
            x2 = int.from_bytes(row[o:o + 32], "big")
            y2 = p - int.from_bytes(row[o + 32:o + 64], "big")
        # Complete mixed addition (Z2 = 1): add() with Z2 = 1, inlined for speed.
        t0 = X1 * x2
        t1 = Y1 * y2
        t3 = ((X1 + Y1) * (x2 + y2) - t0 - t1) % p
        t4 = (y2 * Z1 + Y1) % p
        u = x2 * Z1 + X1
        t0 %= p
        t1 %= p
        v = 3 * ((u - b * Z1) % p)
        w = 3 * ((b * u - 3 * Z1 - t0) % p)
        a = t1 + v
        c = t1 - v
        t0 = 3 * (t0 - Z1)
        X1 = (t3 * a - t4 * w) % p
        Y1 = (a * c + t0 * w) % p
        Z1 = (t4 * c + t3 * t0) % p
    return (X1, Y1, Z1)


def mul(k, p1):
    """k·p1 for any point p1 (projective): the same recoding, W doublings per digit."""
    pts, _ = _odd_multiples(p1)
    digits = _recode(k)
    i = len(digits) - 1
    acc = pts[digits[i]]  # the top digit is positive
    while i > 0:
        i -= 1
        for _ in range(_W):
            acc = double(acc)
        e = digits[i]
        acc = add(acc, pts[e] if e >= 0 else negate(pts[~e]))
    return acc


def mul_double_base(u1, u2, q):
    """u1·G + u2·q (projective). The G part comes from the fixed-base table, which needs no
    doublings, so interleaving it with q's doublings (Shamir/Straus) would save nothing."""
    return add(mul_base(u1), mul(u2, q))


def decode_sec1(data):
    """SEC1 uncompressed 0x04‖X‖Y (65 bytes) -> affine (x, y), checked; SignatureError if not."""
    if not isinstance(data, (bytes, bytearray)):
        raise SignatureError("public key must be bytes, got %s" % type(data).__name__)
    if bytes(data) == b"\x00":
        raise SignatureError("public key is the point at infinity (SEC1 0x00)")
    if len(data) != 65:
        raise SignatureError("public key must be 65 bytes (SEC1 uncompressed), got %d" % len(data))
    if data[0] != 4:
        raise SignatureError("public key prefix must be 0x04 (uncompressed), got 0x%02x" % data[0])
    x = int.from_bytes(data[1:33], "big")
    y = int.from_bytes(data[33:65], "big")
    if x >= P:
        raise SignatureError("public key x coordinate is not below the field prime p")
    if y >= P:
        raise SignatureError("public key y coordinate is not below the field prime p")
    if not is_on_curve(x, y):
        raise SignatureError("public key point is not on the P-256 curve")
    return (x, y)


def decode_signature(signature, digest):
    """(r, s) of a 64-byte r‖s ES256 signature over a 32-byte digest, after every shape and
    range check both backends must make; SignatureError naming what is wrong."""
    if not isinstance(signature, (bytes, bytearray)):
        raise SignatureError("signature must be bytes")
    if len(signature) != 64:
        raise SignatureError("signature must be 64 bytes (r‖s), got %d" % len(signature))
    if len(digest) != 32:
        raise SignatureError("digest must be 32 bytes (SHA-256), got %d" % len(digest))
    r = int.from_bytes(signature[:32], "big")
    s = int.from_bytes(signature[32:], "big")
    if not 1 <= r < N:
        raise SignatureError("signature r is out of range [1, n-1]")
    if not 1 <= s < N:
        raise SignatureError("signature s is out of range [1, n-1]")
    return r, s


def encode_sec1(x, y):
    """Affine (x, y) -> 65 bytes 0x04‖X‖Y."""
    return b"\x04" + x.to_bytes(32, "big") + y.to_bytes(32, "big")
