"""Every key that leaves the device is declared in the signed manifest (issue 11): the sim
board runs through the real CLI (`civicmote run --fast --out`), and each published summary is
walked against the manifest it names by hash."""
from pathlib import Path

from cli_helpers import cli

from agent.core import cbor, cose, summary
from agent.privacy import manifest as manifests

SIM = Path(__file__).resolve().parent.parent / "boards" / "sim.json"


def _covered(s, man):
    metrics = {}
    for e in man["metrics"]:
        metrics[e["name"]] = e
    missing = [k for k in s if k not in man["fields"]]
    missing += ["h." + k for k in s.get("h", {}) if k not in man["health"]]
    for name, stats in s["m"].items():
        e = metrics.get(name)
        if e is None:
            missing.append("m." + name)
        elif e["class"] == "environmental":
            if not (isinstance(stats, list) and len(stats) == len(e["stats"])):
                missing.append("m.%s (%r against stats %r)" % (name, stats, e["stats"]))
        else:
            missing += ["m.%s.%s" % (name, k) for k in stats if k not in e["released"]]
    return missing


def test_every_key_of_real_summaries_is_in_the_signed_manifest(tmp_path, capsys):
    d, out_dir = tmp_path / "dev", tmp_path / "out"
    assert cli(capsys, "device", "init", "--device-dir", d, "--board", SIM)[0] == 0
    code, out, err = cli(capsys, "run", "--device-dir", d, "--fast", "--windows", "13", "--out", out_dir,
                         "--start", "1795003200", "--json")
    assert code == 0, err
    man_msg = cose.decode1((out_dir / "manifest.cose").read_bytes())
    man = cbor.loads(man_msg.payload)
    assert man["privacy"]["unit"] == "person" and man["privacy"]["daily_epsilon"] == "66/25"
    mh = summary.manifest_hash(man_msg.payload)
    walked = 0
    personal = 0
    for f in sorted(out_dir.glob("*.cose")):
        if f.name == "manifest.cose":
            continue
        s = summary.decode(cose.decode1(f.read_bytes()).payload)
        assert s["mh"] == mh
        assert _covered(s, man) == [], f.name
        assert set(s["h"]) == set(man["health"])  # and every declared counter is really sent
        walked += 1
        personal += len([n for n in s["m"] if n in ("footfall", "presence")])
    assert walked == 13 and personal == 2  # the hourly window closed once: footfall and presence


def test_the_walk_would_catch_an_undeclared_key():
    man = manifests.build_manifest([{"name": "footfall", "unit": "events", "window": 300, "class": "personal",
                                     "dp": {"mechanism": "count", "epsilon": "1", "per_person": 1,
                                            "max_events": 100, "k": 5}}], daily_epsilon="24")
    s = {"v": 1, "dev": "cmabcdefghijklmnop", "seq": 1, "t0": 0, "t1": 300, "mh": b"12345678",
         "m": {"footfall": {"n": 3, "raw": [1, 2]}, "secret": {"n": 1}}, "h": {"up": 1, "rssi": -60}, "x": 1}
    assert sorted(_covered(s, man)) == ["h.rssi", "m.footfall.raw", "m.secret", "x"]
