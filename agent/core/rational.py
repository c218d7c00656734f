"""Exact non-negative rationals as (numerator, denominator) tuples of ints.

Privacy parameters (epsilon, budget shares) are rationals so that the noise scale, the ledger
and the manifest are exact and identical on every runtime: MicroPython has no `fractions`,
and an ESP32 has only single-precision floats. A rational is always reduced, den > 0.
"""


def gcd(a, b):
    a = -a if a < 0 else a
    b = -b if b < 0 else b
    while b:
        a, b = b, a % b
    return a


def make(num, den=1):
    """The reduced rational num/den; raises ValueError when den is 0."""
    if den == 0:
        raise ValueError("zero denominator")
    if den < 0:
        num, den = -num, -den
    g = gcd(num, den) or 1
    return (num // g, den // g)


def parse(value):
    """A rational from an int, a decimal or fraction string ("0.5", "1/2", "12") or a float.

    A float is read through its shortest decimal repr, so 0.1 means 1/10 exactly; strings are
    preferred in board profiles because they mean the same on every runtime. Raises ValueError.
    """
    if isinstance(value, bool):
        raise ValueError("not a number")
    if isinstance(value, int):
        return (value, 1)
    if isinstance(value, float):
        value = repr(value)  # "inf" and "nan" then fail as non-numbers below
    if not isinstance(value, str):
        raise ValueError("not a number")
    s = value.strip()
    if "/" in s:
        a, b = s.split("/", 1)
        return make(_integer(a), _integer(b))
    exp = 0
    for mark in ("e", "E"):
        if mark in s:
            s, e = s.split(mark, 1)
            exp = _integer(e)
    sign = 1
    if s[:1] in ("-", "+"):
        sign = -1 if s[0] == "-" else 1
        s = s[1:]
    if "." in s:
        whole, frac = s.split(".", 1)
    else:
        whole, frac = s, ""
    if not (whole + frac) or not _digits(whole) or not _digits(frac):
        raise ValueError("not a number")
    num = sign * int(whole + frac if (whole + frac) else "0")
    exp -= len(frac)
    if exp >= 0:
        return make(num * 10 ** exp, 1)
    return make(num, 10 ** -exp)


def _digits(s):
    for c in s:
        if c not in "0123456789":
            return False
    return True


def _integer(s):
    s = s.strip()
    body = s[1:] if s[:1] in ("-", "+") else s
    if not body or not _digits(body):
        raise ValueError("not an integer")
    return int(s)


def add(a, b):
    return make(a[0] * b[1] + b[0] * a[1], a[1] * b[1])


def sub(a, b):
    return make(a[0] * b[1] - b[0] * a[1], a[1] * b[1])


def mul(a, b):
    return make(a[0] * b[0], a[1] * b[1])


def cmp(a, b):
    """-1, 0 or 1 as a <, == or > b."""
    x = a[0] * b[1]
    y = b[0] * a[1]
    return (x > y) - (x < y)


def floor_div(a, b):
    """floor(a / b) as an int (b > 0)."""
    return (a[0] * b[1]) // (a[1] * b[0])


def text(a):
    """"1/2", or "3" when the denominator is 1: the exact form used in ledgers and manifests."""
    if a[1] == 1:
        return "%d" % a[0]
    return "%d/%d" % a
