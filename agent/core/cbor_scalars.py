"""The scalar encodings CBOR borrows from other standards: IEEE 754 floats and UTF-8.

Split from agent/core/cbor.py (a natural seam: these know nothing of CBOR's structure).
    shortest_float(x) -> bytes         preferred serialisation of float x (f9/fa/fb + bits)
    shortest_double_bits(raw) -> bytes the same for 8 big-endian IEEE 754 double bytes
    half_to_float(h) -> float          the value of binary16 bits h (exact)
    utf8_ok(b) -> bool                 well-formed UTF-8 per RFC 3629 (MicroPython's decoder is lax)
Integer work on the bits throughout: MicroPython's struct has no 'e', and ESP32 builds have no
double floats.
"""
import struct


def _narrow(sign, e, sig, mbits, bias, sbit):
    """Bits of sign * sig * 2**(e-52) (sig a 53-bit significand) in a binary format with mbits
    fraction bits and exponent bias `bias`, or None if that format cannot hold it exactly."""
    emin = 1 - bias
    if emin <= e <= bias:
        drop = 52 - mbits
        if sig & ((1 << drop) - 1):
            return None
        return (sign << sbit) | ((e + bias) << mbits) | ((sig >> drop) & ((1 << mbits) - 1))
    if emin - mbits <= e < emin:  # a subnormal of the narrow format
        drop = 52 + emin - mbits - e
        if sig & ((1 << drop) - 1):
            return None
        return (sign << sbit) | (sig >> drop)
    return None


def shortest_float(x):
    """Shortest exact encoding of float x (see _shortest)."""
    return shortest_double_bits(struct.pack(">d", x))


def shortest_double_bits(raw):
    """Shortest exact encoding of the IEEE 754 double whose 8 big-endian bytes are raw. Integer
    work on the bits: MicroPython's struct has no 'e', and ESP32 builds have no double floats."""
    bits = int.from_bytes(raw, "big")
    sign = bits >> 63
    exp = (bits >> 52) & 0x7FF
    frac = bits & 0xFFFFFFFFFFFFF
    if exp == 0x7FF:
        return b"\xf9\x7e\x00" if frac else (b"\xf9\xfc\x00" if sign else b"\xf9\x7c\x00")
    if exp == 0 and frac == 0:
        return b"\xf9\x80\x00" if sign else b"\xf9\x00\x00"
    if exp:  # double subnormals are far below the single range: they stay double
        e = exp - 1023
        sig = frac | (1 << 52)
        h = _narrow(sign, e, sig, 10, 15, 15)
        if h is not None:
            return struct.pack(">BH", 0xF9, h)
        s = _narrow(sign, e, sig, 23, 127, 31)
        if s is not None:
            return struct.pack(">BI", 0xFA, s)
    return b"\xfb" + raw


def half_to_float(h):
    """The float whose IEEE 754 binary16 bits are h (exact: powers of two are exact)."""
    exp = (h >> 10) & 0x1F
    frac = h & 0x3FF
    if exp == 31:
        v = float("nan") if frac else float("inf")
    elif exp:
        v = (1024 + frac) * 2.0 ** (exp - 25)
    else:
        # Not `frac * 2.0 ** -24`: MicroPython 1.28 folds that constant at compile time, and
        # frozen firmware (mpy-tool) stores folded floats to 16 digits, one ulp off 2^-24.
        v = frac / 16777216
    return -v if h & 0x8000 else v


def utf8_ok(b):
    """True if b is well-formed UTF-8 (RFC 3629: no overlongs, surrogates or > U+10FFFF)."""
    i = 0
    n = len(b)
    while i < n:
        c = b[i]
        if c < 0x80:
            i += 1
            continue
        if 0xC2 <= c <= 0xDF:
            k, lo, hi = 1, 0x80, 0xBF
        elif 0xE0 <= c <= 0xEF:
            k, lo, hi = 2, (0xA0 if c == 0xE0 else 0x80), (0x9F if c == 0xED else 0xBF)
        elif 0xF0 <= c <= 0xF4:
            k, lo, hi = 3, (0x90 if c == 0xF0 else 0x80), (0x8F if c == 0xF4 else 0xBF)
        else:
            return False
        if i + k >= n or not lo <= b[i + 1] <= hi:
            return False
        for j in range(i + 2, i + k + 1):
            if not 0x80 <= b[j] <= 0xBF:
                return False
        i += k + 1
    return True
