"""`civicmote forward sensorthings URL` against a real SensorThings v1.1 server the test starts:
django-ogc-sensorthings 1.2.0 (PyPI) on SQLite (tests/sta_peer.py).

A week of summaries caught up after an outage (the server is down when the forwarder starts);
the server restarting mid-batch (it stored the batch, the answer was lost); the forwarder
killed mid-run and started again; a server that refuses a batch. Every time: each released value
exactly once on the server, equal to the CSV export's, and entities created once.

That server cannot store an interval phenomenonTime (its Django backend hands "t0/t1" to a
DateTimeField and answers the row "error"), so these runs use --phenomenon-time end; the refusal
test uses exactly that: the standard interval, refused row by row.
"""
import csv
import io
import json
import signal
import subprocess
import sys
import time
from collections import Counter
from decimal import Decimal
from pathlib import Path

import pytest

from sta_peer import StaPeer
from sta_support import days_store

from provisioning.forward.sensorthings import Forwarder
from provisioning.forward.forward_state import ForwardState
from provisioning.forward.sta_client import ServerDown, StaClient
from provisioning.web.app import Settings, create_app
from provisioning.web.query import CityData

ROOT = Path(__file__).resolve().parents[1]
END = 1764500000
ONLY = ("temperature", "footfall")  # 3 statistics every 5 minutes and an hourly count of people


@pytest.fixture(scope="module")
def week(tmp_path_factory):
    return days_store(tmp_path_factory.mktemp("week"), END, 7, only=ONLY)


def expected(city):
    """{(metric, statistic, window_end): Decimal} of the CSV export of everything."""
    app = create_app(Settings(city.store, city.registry, clock=lambda: END))
    r = app.test_client().get("/d/%s/data.csv?from=%d&to=%d" % (city.device.dev, END - 8 * 86400, END + 1))
    rows = list(csv.DictReader(io.StringIO(r.data.decode())))
    return {(r["metric"], r["statistic"], r["window_end"]): Decimal(r["value"]) for r in rows if r["value"]}


def on_server(peer, state_file):
    """The same shape from the server's own database, plus the count of (Datastream, time) repeats."""
    state = json.loads(Path(state_file).read_text())
    names = {str(v).replace("-", ""): k.split(":", 1)[1] for k, v in state["ids"].items()
             if k.startswith("Datastream:")}
    got, seen = {}, Counter()
    for ds, result_time, _, result, params in peer.observations():
        _, metric, stat, _ = names[ds].split(".")
        end = result_time.replace(" ", "T") + "Z"
        seen[(ds, end)] += 1
        got[(metric, stat, end)] = Decimal(repr(result)).normalize()
        assert json.loads(params)["window"].endswith("/" + end)
    repeats = sum(n - 1 for n in seen.values())
    return {k: v for k, v in got.items()}, repeats


def same(a, b):
    return {k: v.normalize() for k, v in a.items()} == {k: v.normalize() for k, v in b.items()}


def forward_cli(url, city, state, *more):
    return [sys.executable, "-m", "provisioning.cli", "forward", "sensorthings", url, "--store", city.store,
            "--registry", city.registry, "--state", str(state), "--phenomenon-time", "end", "--json"] + list(more)


def test_a_week_caught_up_after_an_outage(week, tmp_path):
    peer = StaPeer(tmp_path / "sta")
    state = tmp_path / "state.json"
    proc = subprocess.Popen(forward_cli(peer.url, week, state, "--max-wait", "120"), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        first = json.loads(proc.stdout.readline())
        assert first["event"] == "waiting" and "cannot reach" in first["reason"]  # the outage
        peer.start()
        out, err = proc.communicate(timeout=240)
    finally:
        if proc.poll() is None:
            proc.kill()
        peer.stop()
    assert proc.returncode == 0, err
    events = [json.loads(line) for line in out.splitlines()]
    done = events[-1]
    assert done["event"] == "done" and done["summaries"] == 2016 == done["backlog"]
    assert sum(e["observations"] for e in events if e["event"] == "batch") == done["observations"]
    assert "forwarding 2016 summaries" in err and "waiting 1 s for the SensorThings server" in err
    got, repeats = on_server(peer, state)
    want = expected(week)
    assert repeats == 0 and len(got) == len(want) == done["observations"] and same(got, want)
    assert json.loads(state.read_text())["devices"] == {week.device.dev: 2016}


def test_server_restart_mid_batch_and_a_killed_forwarder_leave_no_duplicates(tmp_path):
    week = days_store(tmp_path / "city", END, 2, only=ONLY)  # two days are enough here
    with StaPeer(tmp_path / "sta") as peer:
        state_file = tmp_path / "state.json"
        # 1. the forwarder is killed (SIGKILL) part-way through, then runs again to the end
        proc = subprocess.Popen(forward_cli(peer.url, week, state_file, "--batch", "40"), stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL, text=True, cwd=ROOT)
        batches = 0
        for line in proc.stdout:
            batches += json.loads(line)["event"] == "batch"
            if batches == 3:
                proc.send_signal(signal.SIGKILL)
                break
        proc.wait(timeout=30)
        assert proc.returncode == -signal.SIGKILL
        acked = json.loads(state_file.read_text())["devices"][week.device.dev]
        assert 120 <= acked < 576
        # 2. in-process: after the server stored a batch it goes down before answering, and comes back
        data = CityData(week.store, week.registry)
        client = StaClient(peer.url)
        real = client.create_observations
        calls = []

        def lost_answer(groups):
            calls.append(len(groups))
            result = real(groups)  # the server stored it ...
            if len(calls) == 2:
                peer.stop()  # ... and went down before we heard back
                raise ServerDown("connection reset")
            return result

        client.create_observations = lost_answer
        waits = []

        def sleep(s):
            waits.append(s)
            if peer.proc is None:
                peer.start()

        state = ForwardState(state_file, peer.url)  # a batch may have been in flight when it was killed
        totals = Forwarder(data, client, state, batch=80, instant=True, sleep=sleep, max_wait=60).run()
        data.close()
        assert waits == [1] and totals["summaries"] == 576 - acked
        got, repeats = on_server(peer, state_file)
        assert repeats == 0 and same(got, expected(week))
        # entities were created once, though the forwarder ran twice
        things = json.loads(subprocess.check_output(["curl", "-s", peer.url + "/Things"]))["value"]
        dss = json.loads(subprocess.check_output(["curl", "-s", peer.url + "/Datastreams?$top=100"]))["value"]
        assert len(things) == 1 and len(dss) == 4  # temperature mean/min/max, footfall n


def test_a_server_that_refuses_a_batch(tmp_path):
    city = days_store(tmp_path / "city", END, 1, only=ONLY)
    with StaPeer(tmp_path / "sta") as peer:
        state = tmp_path / "state.json"
        cmd = forward_cli(peer.url, city, state)
        cmd[cmd.index("end")] = "interval"  # the standard t0/t1, which this server's backend cannot store
        r = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=120)
        assert r.returncode == 1, r.stderr
        err = json.loads(r.stdout.splitlines()[-1])
        assert err["ok"] is False and err["exit_code"] == 1 and "refused" in err["error"]
        assert "nothing of %s from seq 1 on is acknowledged" % city.device.dev in err["error"]
        assert peer.observations() == [] and json.loads(state.read_text())["devices"] == {}
        # the same data as instants goes through, reusing the entities already created
        r = subprocess.run(forward_cli(peer.url, city, state), capture_output=True, text=True, cwd=ROOT, timeout=120)
        assert r.returncode == 0, r.stderr
        got, repeats = on_server(peer, state)
        assert repeats == 0 and same(got, expected(city))


def test_bad_input_and_the_systemd_unit(week, tmp_path):
    def run(*args):
        return subprocess.run([sys.executable, "-m", "provisioning.cli", "forward", "sensorthings"] + list(args)
                              + ["--json"], capture_output=True, text=True, cwd=ROOT, timeout=60)

    r = run("ftp://x", "--store", week.store, "--state", str(tmp_path / "s.json"))
    assert r.returncode == 2 and "URL ftp://x" in json.loads(r.stdout)["error"]
    r = run("http://127.0.0.1:9/v1.1", "--store", str(tmp_path / "none.db"), "--state", str(tmp_path / "s.json"))
    assert r.returncode == 2 and "none.db" in json.loads(r.stdout)["error"]
    (tmp_path / "other.json").write_text(json.dumps({"server": "http://elsewhere/v1.1", "ids": {}, "devices": {}}))
    r = run("http://127.0.0.1:9/v1.1", "--store", week.store, "--state", str(tmp_path / "other.json"))
    assert r.returncode == 2 and "http://elsewhere/v1.1" in json.loads(r.stdout)["error"]
    r = run("http://127.0.0.1:9/v1.1", "--store", week.store, "--state", str(tmp_path / "s.json"), "--max-wait", "2")
    assert r.returncode == 3 and "gave up after waiting" in json.loads(r.stdout.splitlines()[-1])["error"]
    r = run("https://sta.city.example/v1.1", "--store", week.store, "--state", "/var/lib/civicmote/sta.json",
            "--systemd-unit", str(tmp_path))
    assert r.returncode == 0
    unit = (tmp_path / "civicmote-forward-sensorthings.service").read_text()
    assert "forward sensorthings https://sta.city.example/v1.1" in unit and "--follow" in unit
    assert "After=civicmote-collector.service" in unit and "Restart=always" in unit
