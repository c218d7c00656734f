"""City-side verification speed: our whole verify path against a raw ECDSA verify and pycose, same messages.

For each of N signed summaries of N devices (a 4-metric board, with health counters):
(a) raw:    `cryptography` ECDSA P-256 verify of the Sig_structure, DER signature prepared in
            advance: the anchor, the floor of any verifier.
(b) ours:   provisioning.city.verifier.verify_message: byte-exact envelope, range checks, verify,
            one strict canonical decode of the payload, the schema check. Target <= 1.5x (a), and
            >= 10,000 verified summaries a second on one core.
(c) pycose: Sign1Message.decode + verify_signature (no payload decode, no schema): a reference.

    .venv/bin/python bench/bench_verify.py [--quick]

Prints one line per figure and a one-line JSON summary at the end. Ratios are of times measured
in the same run, interleaved, so machine load moves all three together.
"""
import json
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


def messages(n):
    from agent import crypto
    from agent.core import cose, summary
    from agent.store import identity

    out = []
    for i in range(n):
        key = crypto.generate_signing_key(os.urandom)
        dev, pub = identity.public_identity(key)
        s = summary.build(dev, 1000 + i, 1750000000, 1750000300,
                          {"humidity": [400, 390, 410], "people": {"n": 37}, "pm2_5": [12, 10, 15],
                           "temperature": [215, 212, 219]}, b"\x01" * 8,
                          health={"boot": 990, "err": 0, "net": 1, "q": 0, "up": 86400})
        out.append((dev, pub, cose.sign1(summary.encode(s), key, dev.encode())))
    return out


def main(quick=False):
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec, utils
    from pycose.keys import EC2Key
    from pycose.messages import Sign1Message

    from agent.core import cose
    from provisioning.city.verifier import KeyRing, verify_message

    n = 50 if quick else 400
    rounds = 2 if quick else 10
    msgs = messages(n)
    ring = KeyRing()
    raw, pc = [], []
    for dev, pub, m in msgs:
        ring.add_public_key(pub)
        k = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), pub)
        d = cose.decode1(m)
        der = utils.encode_dss_signature(int.from_bytes(d.signature[:32], "big"), int.from_bytes(d.signature[32:], "big"))
        raw.append((k, der, cose.sig_structure(d.protected, d.payload)))
        pc.append((EC2Key(crv="P_256", x=pub[1:33], y=pub[33:]), m))
    algo = ec.ECDSA(hashes.SHA256())
    now = 1750000400
    t = {"raw": 0.0, "ours": 0.0, "pycose": 0.0}
    for _ in range(rounds):
        a = time.perf_counter()
        for k, der, tbs in raw:
            k.verify(der, tbs, algo)
        b = time.perf_counter()
        for _, _, m in msgs:
            if not verify_message(m, ring, now).ok:
                raise SystemExit("bench: a good message did not verify")
        c = time.perf_counter()
        for key, m in pc:
            msg = Sign1Message.decode(m)
            msg.key = key
            if not msg.verify_signature():
                raise SystemExit("bench: pycose refused a good message")
        e = time.perf_counter()
        t["raw"] += b - a
        t["ours"] += c - b
        t["pycose"] += e - c
    count = n * rounds
    us = {k: v / count * 1e6 for k, v in t.items()}
    result = {"messages": n, "rounds": rounds, "raw_us": round(us["raw"], 1), "ours_us": round(us["ours"], 1),
              "pycose_us": round(us["pycose"], 1), "ours_vs_raw": round(us["ours"] / us["raw"], 2),
              "pycose_vs_raw": round(us["pycose"] / us["raw"], 2), "ours_per_s": int(1e6 / us["ours"]),
              "bytes": len(msgs[0][2])}
    print("raw cryptography verify  %7.1f us   (anchor)" % us["raw"])
    print("ours (verify_message)    %7.1f us   %.2fx raw   %d summaries/s on one core (target <= 1.5x, >= 10,000/s)"
          % (us["ours"], result["ours_vs_raw"], result["ours_per_s"]))
    print("pycose decode+verify     %7.1f us   %.2fx raw" % (us["pycose"], result["pycose_vs_raw"]))
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main(quick="--quick" in sys.argv[1:])
