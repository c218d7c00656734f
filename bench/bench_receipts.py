"""The cost of receipts, per summary, in bytes and CPU, against the verify-only rate in the same run.

City side (SQLite store, the real Collector and ReceiptIssuer):
(a) anchor: provisioning.city.verifier.verify_message of one summary (what storing one costs at least);
(b) one receipt: read the device's marks above what the last receipt covered, gaps.outstanding, sign
    (ES256, cryptography), for a device with K summaries stored (K = 12: an hour's burst; K = 2,000: a
    week of 5-min windows); and a process's first receipt for it, which reads its whole history.
Device side:
(c) checking one receipt (certificate cached: one ES256 verify, the CBOR decode, the checks), with
    `cryptography` (a Linux device) and with the pure-Python backend every board runs;
(d) anchor for (c): signing one summary with the same backend.
Bytes: a receipt on the wire (payload + topic + MQTT framing), and per summary: one receipt per
summary in steady state (5-minute windows, one receipt each), one per `interval` in a burst.

    .venv/bin/python bench/bench_receipts.py [--quick]
"""
import json
import os
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

CID = "civicmote-collector"


def best(fn, rounds, n):
    """Best seconds per call over rounds of n calls."""
    t = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        t.append((time.perf_counter() - t0) / n)
    return min(t)


def _cold(store, ck, cert, dev):
    """Seconds for a process's first receipt of a device: its whole history is read once."""
    from agent.crypto.cpython_backend import SigningKey as FastKey
    from provisioning.city.receipts import ReceiptIssuer

    issuer = ReceiptIssuer(store, FastKey(ck), cert, lambda t, p: True, CID)
    t0 = time.perf_counter()
    issuer.make(dev)
    return time.perf_counter() - t0


def main(quick=False):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    from agent import crypto
    from agent.core import cose, receipt, summary
    from agent.crypto import ecdsa
    from agent.crypto.cpython_backend import SigningKey as FastKey
    from agent.store import identity
    from provisioning.city.collector import Collector
    from provisioning.city.receipts import ReceiptIssuer, issue_cert
    from provisioning.city.verifier import KeyRing, verify_message

    ks = (12, 200) if quick else (12, 2000)
    rounds = 2 if quick else 5
    ca = ec.generate_private_key(ec.SECP256R1())
    ck = ec.generate_private_key(ec.SECP256R1())
    cert = issue_cert(ca, ck.public_key(), CID, time.time() + 86400)
    ca_sec1 = ca.public_key().public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    ring = KeyRing()
    devices = []
    for k in ks:
        key = crypto.generate_signing_key(os.urandom)
        dev, pub = identity.public_identity(key)
        ring.add_public_key(pub, "north")
        msgs = []
        for seq in range(1, k + 1):
            s = summary.build(dev, seq, 1750000000 + 300 * seq, 1750000300 + 300 * seq,
                              {"humidity": [400, 390, 410], "people": {"n": 37}, "temperature": [215, 212, 219]},
                              b"\x01" * 8, health={"boot": 1, "err": 0, "net": 0, "q": 0, "up": 300 * seq})
            msgs.append(cose.sign1(summary.encode(s), key, dev.encode()))
        devices.append((k, dev, key, msgs))
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        col = Collector(ring, os.path.join(tmp, "store.db"), max_ahead=None)
        for k, dev, _, msgs in devices:
            for m in msgs:
                col.handle("civicmote/v1/north/%s/summary" % dev, m)
        probe = devices[0][3][0]
        verify = best(lambda: verify_message(probe, ring, 1750000000, None), rounds, 200 if quick else 1000)
        out["verify_us"] = round(verify * 1e6, 1)
        issuer = ReceiptIssuer(col.store, FastKey(ck), cert, lambda t, p: True, CID)
        for k, dev, _, _ in devices:
            cold = min(_cold(col.store, ck, cert, dev) for _ in range(rounds))
            out["receipt_first_us_k%d" % k] = round(cold * 1e6, 1)
            cost = best(lambda: issuer.make(dev), rounds, 20 if quick else 100)
            out["receipt_us_k%d" % k] = round(cost * 1e6, 1)
            out["receipt_x_verify_k%d" % k] = round(cost / verify, 2)
        topic, body = issuer.make(devices[0][1])
        col.close()
    wire = len(body) + len(topic) + 2 + 2 + 3  # topic length, packet id, fixed header (2-byte length)
    out["receipt_bytes"] = len(body)
    out["receipt_wire_bytes"] = wire
    out["summary_wire_bytes"] = len(devices[0][3][0]) + len(topic) + 4
    out["bytes_per_summary_steady"] = wire
    out["bytes_per_summary_burst_12"] = round(wire / 12.0, 1)
    # Device side: check one receipt, certificate cached; anchor: sign one summary, same backend.
    k, dev, key, msgs = devices[0]
    for name, mod, n in (("cryptography", crypto, 50 if quick else 300), ("pure", ecdsa, 2 if quick else 5)):
        ca_key = mod.VerifyingKey.from_sec1(ca_sec1) if mod is ecdsa else crypto.verifying_key_from_sec1(ca_sec1)
        from_sec1 = mod.VerifyingKey.from_sec1 if mod is ecdsa else crypto.verifying_key_from_sec1
        v = receipt.Verifier(ca_key, from_sec1)
        t = [0]

        def check():
            t[0] += 1
            r = receipt.make(FastKey(ck), cert, dev, 1, k, t[0], CID)
            v.check(r, dev, t[0] - 1, k)
        check()  # the certificate is verified once, then cached
        make_only = best(lambda: receipt.make(FastKey(ck), cert, dev, 1, k, 1, CID), rounds, n)
        cost = max(best(check, rounds, n) - make_only, 0.0)
        signer = key if mod is not ecdsa else ecdsa.SigningKey.from_bytes(key.to_bytes())
        payload = cose.decode1(msgs[0]).payload
        sign = best(lambda: cose.sign1(payload, signer, dev.encode()), rounds, n)
        out["device_check_us_%s" % name] = round(cost * 1e6, 1)
        out["device_sign_us_%s" % name] = round(sign * 1e6, 1)
        out["device_check_x_sign_%s" % name] = round(cost / sign, 2)
    for k in ks:
        print("collector: one receipt for a device with %5d summaries stored: %8.1f us = %5.2f x verifying one "
              "summary (%.1f us); a process's first one for it: %.1f us" % (
                  k, out["receipt_us_k%d" % k], out["receipt_x_verify_k%d" % k], out["verify_us"],
                  out["receipt_first_us_k%d" % k]))
    print("wire: a receipt is %d bytes (%d on the wire); a summary %d: +%d%% per summary in steady state, "
          "+%.1f bytes per summary in a 12-summary burst" % (
              out["receipt_bytes"], wire, out["summary_wire_bytes"], round(100.0 * wire / out["summary_wire_bytes"]),
              out["bytes_per_summary_burst_12"]))
    for name in ("cryptography", "pure"):
        print("device (%s): checking a receipt %.1f us = %.2f x signing a summary (%.1f us)" % (
            name, out["device_check_us_%s" % name], out["device_check_x_sign_%s" % name],
            out["device_sign_us_%s" % name]))
    print(json.dumps(out, sort_keys=True))


if __name__ == "__main__":
    main("--quick" in sys.argv[1:])
