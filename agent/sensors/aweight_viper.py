"""The fixed-point sound loops of agent/sensors/aweight.py for MicroPython's viper emitter.

A source text, not code: agent/sensors/aweight.py compiles it on the board at first use
(exec), so the module itself compiles everywhere (mpy-cross without a target architecture,
CPython, the WebAssembly port); where the port has no viper emitter the exec fails and the
Python loops of aweight.py run instead, computing the same integers.
"""

# The same loops for the viper emitter (machine code, no heap per sample), compiled on the
# board at first use: a port without it (WebAssembly, CPython) keeps the Python loops above.
# ctx (array 'i', each word + OFF): n, mean, the six coefficients, the 12 state words.
# out (array 'i'): six sums as (high, low) limbs of 2^29, e.g. a*a = out[0] * 2^29 + out[1]:
# the A-weighted energy's three, then the plain energy's three (d = a*256 + b).
VIPER_SRC = """
import micropython

@micropython.viper
def frame_sum(buf: ptr16, n: int) -> int:
    s = 0
    i = 0
    while i < n:
        d = int(buf[i])
        if d > 32767:
            d -= 65536
        s += d
        i += 1
    return s

@micropython.viper
def frame_parts(buf: ptr16, ctx: ptr32, out: ptr32) -> int:
    off = 0x20000000
    n = int(ctx[0]) - off
    mean = int(ctx[1]) - off
    e0 = int(ctx[2]) - off
    e1 = int(ctx[3]) - off
    e2 = int(ctx[4]) - off
    e3 = int(ctx[5]) - off
    a4 = int(ctx[6]) - off
    a5 = int(ctx[7]) - off
    s0 = int(ctx[8]) - off
    s1 = int(ctx[9]) - off
    s2 = int(ctx[10]) - off
    s3 = int(ctx[11]) - off
    s4 = int(ctx[12]) - off
    s5 = int(ctx[13]) - off
    s6 = int(ctx[14]) - off
    s7 = int(ctx[15]) - off
    s8 = int(ctx[16]) - off
    s9 = int(ctx[17]) - off
    s10 = int(ctx[18]) - off
    s11 = int(ctx[19]) - off
    ah = 0
    al = 0
    bh = 0
    bl = 0
    ch = 0
    cl = 0
    zah = 0
    zal = 0
    zbh = 0
    zbl = 0
    zch = 0
    zcl = 0
    i = 0
    while i < n:
        end = i + 16
        if end > n:
            end = n
        pa = 0
        pb = 0
        pc = 0
        za = 0
        zb = 0
        zc = 0
        while i < end:
            d = int(buf[i])
            if d > 32767:
                d -= 65536
            d -= mean
            if d > 32767:
                d = 32767
            elif d < -32767:
                d = -32767
            a = d >> 8
            b = d & 255
            za += a * a
            zb += a * b
            zc += b * b
            x = d << 4
            y = (x - s0) + s1 - (((e0 * (s1 >> 13)) >> 3) + ((e0 * (s1 & 8191)) >> 16))
            s0 = x
            s1 = y
            x = y
            y = (x - s2) + s3 - (((e1 * (s3 >> 13)) >> 3) + ((e1 * (s3 & 8191)) >> 16))
            s2 = x
            s3 = y
            x = y
            y = (x - s4) + s5 - (((e2 * (s5 >> 13)) >> 3) + ((e2 * (s5 & 8191)) >> 16))
            s4 = x
            s5 = y
            x = y
            y = (x - s6) + s7 - (((e3 * (s7 >> 13)) >> 3) + ((e3 * (s7 & 8191)) >> 16))
            s6 = x
            s7 = y
            x = y
            y = (x + s8) - (((a4 * (s9 >> 13)) >> 3) + ((a4 * (s9 & 8191)) >> 16))
            s8 = x
            s9 = y
            x = y
            y = (x + s10) - (((a5 * (s11 >> 13)) >> 3) + ((a5 * (s11 & 8191)) >> 16))
            s10 = x
            s11 = y
            a = y >> 12
            b = y & 4095
            pa += a * a
            pb += a * b
            pc += b * b
            i += 1
        al += pa
        while al >= off:
            al -= off
            ah += 1
        bl += pb
        while bl >= off:
            bl -= off
            bh += 1
        while bl < 0:
            bl += off
            bh -= 1
        cl += pc
        while cl >= off:
            cl -= off
            ch += 1
        zal += za
        while zal >= off:
            zal -= off
            zah += 1
        zbl += zb
        while zbl >= off:
            zbl -= off
            zbh += 1
        while zbl < 0:
            zbl += off
            zbh -= 1
        zcl += zc
        while zcl >= off:
            zcl -= off
            zch += 1
    ctx[8] = s0 + off
    ctx[9] = s1 + off
    ctx[10] = s2 + off
    ctx[11] = s3 + off
    ctx[12] = s4 + off
    ctx[13] = s5 + off
    ctx[14] = s6 + off
    ctx[15] = s7 + off
    ctx[16] = s8 + off
    ctx[17] = s9 + off
    ctx[18] = s10 + off
    ctx[19] = s11 + off
    out[0] = ah
    out[1] = al
    out[2] = bh
    out[3] = bl
    out[4] = ch
    out[5] = cl
    out[6] = zah
    out[7] = zal
    out[8] = zbh
    out[9] = zbl
    out[10] = zch
    out[11] = zcl
    return 0
"""
