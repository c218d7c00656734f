"""SensorThings: the read endpoint serving one device's day, and the forwarder's rate into a real server.

(a) read: civicmote web's /sta/v1.1/Observations for one device's day, all its Datastreams in one
    response ($filter on the FeatureOfInterest and resultTime, $top=10000), on SQLite and on
    PostgreSQL (when Debian's server is here). Anchor: the CSV export of the same day
    (/d/ID/data.csv?from=&to=), the same values in another format. Target <= 300 ms.
(b) forward: `Forwarder` catching up days of a device's summaries (all sim-board metrics,
    --phenomenon-time end, batches of 200) into django-ogc-sensorthings on SQLite
    (tests/sta_peer.py), observations per second, once its entities exist (the first run that
    creates them is timed apart: first_run_seconds).
    Anchor: that server's own CreateObservations rate for ready-made payloads of the same size
    (what it can take at best). Target >= 1,000 observations/s.

    .venv/bin/python bench/bench_sta.py [--quick]

Both run in-process with Flask's test client (no socket) for (a), best of several rounds, so
bursts of load from other processes drop out. Last line: one JSON object.
"""
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

END = 1764500000


def best(fn, rounds):
    out = None
    for _ in range(rounds):
        t = time.perf_counter()
        r = fn()
        dt = time.perf_counter() - t
        out = dt if out is None else min(out, dt)
    return out, r


def read_day(store, registry, dev, rounds):
    from provisioning.web.sta.model import iso
    from provisioning.web.app import Settings, create_app

    c = create_app(Settings(store, registry, clock=lambda: END)).test_client()
    t_from, t_to = END - END % 300 - 86400, END - END % 300
    sta = ("/sta/v1.1/Observations?$top=10000&$filter=FeatureOfInterest/@iot.id eq '%s' and resultTime gt %s "
           "and resultTime le %s" % (dev, iso(t_from), iso(t_to)))
    csv_url = "/d/%s/data.csv?from=%d&to=%d" % (dev, t_from, t_to)
    t_sta, r = best(lambda: c.get(sta), rounds)
    n = len(r.get_json()["value"])
    t_csv, r = best(lambda: c.get(csv_url), rounds)
    rows = sum(1 for line in r.data.decode().splitlines()[1:] if line.split(",")[7])
    assert n == rows, (n, rows)  # the same released values
    return {"ms": round(t_sta * 1000, 1), "csv_ms": round(t_csv * 1000, 1), "ratio": round(t_sta / t_csv, 2),
            "observations": n}


def forward_rate(folder, days):
    from sta_peer import StaPeer
    from sta_support import days_store

    from provisioning.forward.sensorthings import Forwarder
    from provisioning.forward.forward_state import ForwardState
    from provisioning.forward.sta_client import StaClient
    from provisioning.web.query import CityData

    city = days_store(folder / "fwd", END, days)
    with StaPeer(folder / "sta") as peer:
        client = StaClient(peer.url)
        data = CityData(city.store, city.registry)
        state = ForwardState(folder / "state.json", peer.url)
        last = city.windows[-1][0]
        state.devices = {city.device.dev: last - 1}  # a fresh start with one summary: the entities are made
        t = time.perf_counter()
        Forwarder(data, client, state, batch=200, instant=True).run()
        first = time.perf_counter() - t
        state.devices = {city.device.dev: 0}  # then the catch-up (the last summary goes again: a bench only)
        totals = Forwarder(data, client, state, batch=200, instant=True).run()
        data.close()
        # the anchor: the same server taking ready-made rows of one Datastream, batch for batch
        ds = next(v for k, v in state.ids.items() if k.startswith("Datastream:"))
        per_request = max(1, totals["observations"] * 200 // max(totals["summaries"], 1))
        rows = [["%s" % iso_at(i), "%s" % iso_at(i), 1.5, {"seq": i, "mh": "0123456789abcdef"}]
                for i in range(per_request)]
        t = time.perf_counter()
        sent = 0
        while sent < totals["observations"]:
            client.create_observations([{"Datastream": {"@iot.id": ds}, "components": ["phenomenonTime",
                                         "resultTime", "result", "parameters"], "dataArray": rows}])
            sent += len(rows)
        raw = sent / (time.perf_counter() - t)
    return {"observations": totals["observations"], "per_second": totals["per_second"],
            "first_run_seconds": round(first, 2),
            "server_raw_per_second": round(raw), "ratio": round(totals["per_second"] / raw, 2)}


def iso_at(i):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(1600000000 + 300 * i))


def main(quick=False):
    from pg import PgServer
    from sta_support import days_store

    rounds = 3 if quick else 7
    result = {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        reason = PgServer.available()
        pg = None if reason else PgServer()
        try:
            url = pg.__enter__().new_database() if pg else None
            city = days_store(folder / "day", END, 1, also=[url] if url else [])
            result["read_sqlite"] = read_day(city.store, city.registry, city.device.dev, rounds)
            result["read_postgresql"] = (read_day(url, city.registry, city.device.dev, rounds) if url
                                         else {"skipped": reason})
        finally:
            if pg:
                pg.__exit__(None, None, None)
        result["forward"] = forward_rate(folder, 1 if quick else 7)
    for name in ("read_sqlite", "read_postgresql"):
        r = result[name]
        if "ms" in r:
            print("%-16s one device's day, %d observations: %.1f ms (CSV export %.1f ms, ratio %.2f; target <= 300 ms)"
                  % (name, r["observations"], r["ms"], r["csv_ms"], r["ratio"]))
    f = result["forward"]
    print("forward          %d observations at %d/s (the server alone takes %d/s; ratio %.2f; target >= 1000/s); "
          "creating the entities first took %.1f s" % (f["observations"], f["per_second"], f["server_raw_per_second"],
                                                       f["ratio"], f["first_run_seconds"]))
    print(json.dumps(result, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main("--quick" in sys.argv))
