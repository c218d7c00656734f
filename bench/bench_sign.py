"""ES256 signing speed: our pure-Python P-256 against its anchors, measured in the same run.

(a) CPython: agent.crypto.ecdsa.SigningKey.sign vs python-ecdsa's sign_deterministic
    (hashfunc sha256), same key and message. Target: ours <= 1.0x python-ecdsa's time.
(b) MicroPython (the official WebAssembly port, via tests/mpy_port.run): our sign vs a naive
    double-and-add sign (no table; written here, not in agent/). Target: <= 5 ms a signature.

    .venv/bin/python bench/bench_sign.py [--quick]

Prints one line per figure and a one-line JSON summary at the end.
"""
import hashlib
import json
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "tests"))

SECRET = bytes.fromhex("c9afa9d845ba75166b5c215767b1d6934e50c3db36e89b127b8a622b120f6721")
MESSAGE = b"civicmote summary: a few hundred bytes of deterministic CBOR " * 4

# The naive baseline, shared by both runtimes: textbook left-to-right double-and-add with the
# same complete formulas and the same RFC 6979 nonce, but no precomputed table.
NAIVE = '''
import hashlib
from agent.crypto import p256
from agent.crypto.rfc6979 import nonces

def naive_mul(k):
    acc = p256.IDENTITY
    for i in range(255, -1, -1):
        acc = p256.double(acc)
        if (k >> i) & 1:
            acc = p256.add(acc, p256.G)
    return acc

def naive_sign(secret, message):
    n = p256.N
    d = int.from_bytes(secret, "big")
    digest = hashlib.sha256(message).digest()
    z = int.from_bytes(digest, "big")
    for k in nonces(secret, digest, n):
        r = p256.to_affine(naive_mul(k))[0] % n
        s = p256.inverse_mod(k, n) * (z + r * d) % n
        if r and s:
            return r.to_bytes(32, "big") + s.to_bytes(32, "big")
'''


def _per_call_us(fn, min_seconds, max_calls):
    calls = 0
    t0 = time.perf_counter()
    while True:
        fn()
        calls += 1
        elapsed = time.perf_counter() - t0
        if elapsed >= min_seconds or calls >= max_calls:
            return elapsed / calls * 1e6


def bench_cpython(quick):
    import ecdsa as python_ecdsa

    from agent.crypto import p256
    from agent.crypto.ecdsa import SigningKey

    t0 = time.perf_counter()
    p256.mul_base(1)
    build_ms = (time.perf_counter() - t0) * 1e3

    ours = SigningKey.from_bytes(SECRET)
    theirs = python_ecdsa.SigningKey.from_string(SECRET, curve=python_ecdsa.NIST256p, hashfunc=hashlib.sha256)
    sig = ours.sign(MESSAGE)
    assert sig == theirs.sign_deterministic(MESSAGE, hashfunc=hashlib.sha256), "signatures differ"
    theirs.sign_deterministic(MESSAGE, hashfunc=hashlib.sha256)  # python-ecdsa precomputes on first use

    naive_ns = {}
    exec(NAIVE, naive_ns)
    assert naive_ns["naive_sign"](SECRET, MESSAGE) == sig, "naive signature differs"

    seconds = 0.4 if quick else 2.0
    # Interleave the two measurements so drift on a shared machine hits both alike.
    # Keep the fastest batch of each: the least disturbed by other work on the machine.
    ours_us, theirs_us = [], []
    for _ in range(10):
        ours_us.append(_per_call_us(lambda: ours.sign(MESSAGE), seconds / 20, 100000))
        theirs_us.append(
            _per_call_us(lambda: theirs.sign_deterministic(MESSAGE, hashfunc=hashlib.sha256), seconds / 20, 100000))
    naive_us = min(_per_call_us(lambda: naive_ns["naive_sign"](SECRET, MESSAGE), seconds / 10, 50) for _ in range(3))
    return {
        "ours_us": min(ours_us),
        "python_ecdsa_us": min(theirs_us),
        "naive_us": naive_us,
        "table_build_ms": build_ms,
        "python_ecdsa_version": python_ecdsa.__version__,
    }


MPY_SCRIPT = '''
import time
from agent.crypto import p256
from agent.crypto.ecdsa import SigningKey
SECRET = %r
MESSAGE = %r
BATCHES = %d
BATCH = %d
NAIVE_ROUNDS = %d
t0 = time.ticks_ms()
p256.mul_base(1)
build_ms = time.ticks_diff(time.ticks_ms(), t0)
key = SigningKey.from_bytes(SECRET)
sig = key.sign(MESSAGE)
assert naive_sign(SECRET, MESSAGE) == sig
# ticks are 1 ms apart on this port: time batches and keep the fastest (least disturbed).
best = None
for _ in range(BATCHES):
    t0 = time.ticks_ms()
    for _ in range(BATCH):
        key.sign(MESSAGE)
    dt = time.ticks_diff(time.ticks_ms(), t0)
    best = dt if best is None or dt < best else best
ours_us = best * 1000 / BATCH
best = None
for _ in range(NAIVE_ROUNDS):
    t0 = time.ticks_ms()
    naive_sign(SECRET, MESSAGE)
    dt = time.ticks_diff(time.ticks_ms(), t0)
    best = dt if best is None or dt < best else best
print("MPYBENCH", ours_us, best * 1000, build_ms)
'''


def bench_micropython(quick):
    import mpy_port

    batches, batch, naive_rounds = (5, 10, 2) if quick else (20, 20, 5)
    script = NAIVE + MPY_SCRIPT % (SECRET, MESSAGE, batches, batch, naive_rounds)
    proc = mpy_port.run([script], timeout=600)
    for line in proc.stdout.splitlines():
        if line.startswith("MPYBENCH "):
            ours_us, naive_us, build_ms = (float(x) for x in line.split()[1:])
            return {"ours_us": ours_us, "naive_us": naive_us, "table_build_ms": build_ms}
    raise SystemExit("MicroPython benchmark failed:\n%s\n%s" % (proc.stdout[-2000:], proc.stderr[-2000:]))


def main():
    quick = "--quick" in sys.argv[1:]
    cp = bench_cpython(quick)
    ratio = cp["ours_us"] / cp["python_ecdsa_us"]
    print("CPython  ES256 sign, pure (ours)       : %8.1f us/sign" % cp["ours_us"])
    print("CPython  ES256 sign, python-ecdsa %-6s: %8.1f us/sign" % (cp["python_ecdsa_version"], cp["python_ecdsa_us"]))
    print("CPython  ratio ours / python-ecdsa      : %8.2fx  (target <= 1.00x)" % ratio)
    print("CPython  naive double-and-add sign      : %8.1f us/sign (%.1fx ours)" % (cp["naive_us"], cp["naive_us"] / cp["ours_us"]))
    print("CPython  fixed-base table build (once)  : %8.1f ms" % cp["table_build_ms"])
    mp = bench_micropython(quick)
    print("MicroPy  ES256 sign, pure (ours)       : %8.1f us/sign  (target <= 5000)" % mp["ours_us"])
    print("MicroPy  naive double-and-add sign      : %8.1f us/sign (%.1fx ours)" % (mp["naive_us"], mp["naive_us"] / mp["ours_us"]))
    print("MicroPy  fixed-base table build (once)  : %8.1f ms" % mp["table_build_ms"])
    summary = {
        "bench": "sign",
        "quick": quick,
        "cpython_ours_us": round(cp["ours_us"], 1),
        "cpython_python_ecdsa_us": round(cp["python_ecdsa_us"], 1),
        "cpython_ratio": round(ratio, 3),
        "cpython_naive_us": round(cp["naive_us"], 1),
        "mpy_ours_us": round(mp["ours_us"], 1),
        "mpy_naive_us": round(mp["naive_us"], 1),
        "mpy_naive_ratio": round(mp["naive_us"] / mp["ours_us"], 2),
        "mpy_table_build_ms": mp["table_build_ms"],
    }
    print(json.dumps(summary, sort_keys=True))


if __name__ == "__main__":
    main()
