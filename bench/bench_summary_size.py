"""Signed summary size for a 4-metric board (target: <= 200 bytes), beside the same content as JSON.

The board is a Sensor.Community citizen station (BME280 + SDS011): temperature, humidity,
PM2.5 and PM10 over a 5-minute window, at resolutions that match each sensor's accuracy
(BME280: +-0.5 degC, +-3 %RH; SDS011: +-10 ug/m3), releasing the statistics its profile lists:
temperature [mean, min, max], humidity [mean], PM [mean, max] (peaks are what matter for
particulates). The same board releasing [mean, min, max] for every metric is printed too. The JSON anchor carries the same content: the same payload fields, the kid and
the signature (base64url, as in a JWS), without whitespace.
Usage: python bench/bench_summary_size.py
"""
import base64
import json
import os
import random

from agent import crypto
from agent.core import cose, summary
from agent.core.window import Window, to_fixed
from agent.store.identity import public_identity

TARGET = 200
METRICS = (  # name, resolution scale, mean, spread, released statistics
    ("temp", 10, 21.4, 0.6, ("mean", "min", "max")),  # degC at 0.1
    ("rh", 1, 54.0, 3.0, ("mean",)),                  # %RH at 1
    ("pm25", 1, 8.3, 2.0, ("mean", "max")),           # ug/m3 at 1
    ("pm10", 1, 14.9, 4.0, ("mean", "max")),          # ug/m3 at 1
)
ALL = ("mean", "min", "max")


def main():
    rng = random.Random(7)
    key = crypto.generate_signing_key(os.urandom)
    dev, _ = public_identity(key)
    stats = {}
    full = {}
    for name, scale, mu, spread, released in METRICS:
        w = Window()
        for _ in range(30):  # a reading every 10 s for 5 minutes
            w.add(to_fixed(rng.gauss(mu, spread), scale))
        stats[name] = w.stats(released)
        full[name] = w.stats(ALL)
    t0 = 1795000000 - 1795000000 % 300
    s = summary.build(dev, 105120, t0, t0 + 300, stats, os.urandom(summary.MH_LEN))  # a year of windows
    payload = summary.encode(s)
    msg = cose.sign1(payload, key, dev.encode())
    with_health = summary.build(dev, 105120, t0, t0 + 300, stats, s["mh"],
                                health={"up": 31536000, "err": 0, "q": 0, "drop": 0})
    msg_h = cose.sign1(summary.encode(with_health), key, dev.encode())
    msg_full = cose.sign1(summary.encode(summary.build(dev, 105120, t0, t0 + 300, full, s["mh"])), key, dev.encode())
    js = dict(s, mh=s["mh"].hex())
    json_msg = json.dumps({"payload": js, "kid": dev,
                           "sig": base64.urlsafe_b64encode(b"\0" * 64).decode().rstrip("=")},
                          separators=(",", ":"))
    res = {"cose_bytes": len(msg), "payload_bytes": len(payload), "cose_with_health_bytes": len(msg_h),
           "cose_all_stats_bytes": len(msg_full),
           "json_bytes": len(json_msg), "json_vs_cose_ratio": round(len(json_msg) / len(msg), 2),
           "target_bytes": TARGET, "meets_target": len(msg) <= TARGET}
    print("signed summary (COSE_Sign1, 4 metrics)  %4d bytes  (payload %d, envelope+signature %d)"
          % (len(msg), len(payload), len(msg) - len(payload)))
    print("  with 4 health counters                %4d bytes" % len(msg_h))
    print("  releasing [mean, min, max] for all 4  %4d bytes" % len(msg_full))
    print("same content as compact JSON            %4d bytes  = %.2fx" % (len(json_msg), len(json_msg) / len(msg)))
    print("target <= %d bytes: %s" % (TARGET, "met" if res["meets_target"] else "NOT met"))
    print(json.dumps(res))


if __name__ == "__main__":
    main()
