"""`civicmote registry ...`: statuses, transactions, the export contract, and verify --registry."""
import json
import sqlite3

import pytest
from cli_helpers import cli, json_lines, run_cli
from provision_support import PASSPHRASE, env, signed_summary, write_board

from provisioning.pki.registry import Registry


@pytest.fixture
def fleet(tmp_path, capsys, monkeypatch):
    """Three provisioned simulated devices in two districts."""
    monkeypatch.setenv("CIVICMOTE_CA_PASSPHRASE", PASSPHRASE)
    monkeypatch.setenv("CIVICMOTE_REGISTRY", str(tmp_path / "registry.db"))
    assert cli(capsys, "ca", "init", "--dir", tmp_path / "ca")[0] == 0
    ids = {}
    for name, district in (("a", "north"), ("b", "north"), ("c", "south")):
        code, out, err = cli(capsys, "provision", "--board", write_board(tmp_path), "--district", district,
                             "--target", tmp_path / name, "--ca", tmp_path / "ca", "--json",
                             "--location", "pole %s" % name)
        assert code == 0, err
        ids[name] = json.loads(out)["device_id"]
    return tmp_path, ids


def test_list_and_show(fleet, capsys):
    tmp, ids = fleet
    code, out, err = cli(capsys, "registry", "list", "--json")
    rows = json_lines(out)
    assert code == 0 and sorted(r["device_id"] for r in rows) == sorted(ids.values())
    code, out, err = cli(capsys, "registry", "list", "--district", "south", "--json")
    assert [r["device_id"] for r in json_lines(out)] == [ids["c"]]
    code, out, err = cli(capsys, "registry", "show", ids["a"], "--json")
    rec = json.loads(out)
    assert rec["location"] == "pole a" and rec["status"] == "active" and rec["history"][0]["action"] == "registered"
    assert isinstance(rec["created"], int) and isinstance(rec["history"][0]["at"], int)
    code, out, err = cli(capsys, "registry", "show", "cm" + "z" * 16)
    assert code == 2 and "not in the registry" in err


def test_disable_is_reversible_revoke_is_permanent_and_idempotent(fleet, capsys):
    tmp, ids = fleet
    a = ids["a"]
    assert json.loads(cli(capsys, "registry", "disable", a, "--json", "--reason", "maintenance")[1])["status"] == "disabled"
    assert json.loads(cli(capsys, "registry", "enable", a, "--json")[1])["status"] == "active"
    code, out, err = cli(capsys, "registry", "revoke", a, "--json")
    assert code == 0 and json.loads(out) == {"device_id": a, "status": "revoked", "changed": True}
    code, out, err = cli(capsys, "registry", "revoke", a, "--json")
    assert code == 0 and json.loads(out)["changed"] is False
    for verb in ("enable", "disable"):
        code, out, err = cli(capsys, "registry", verb, a)
        assert code == 4 and "revoked" in err and "permanent" in err
    history = json.loads(cli(capsys, "registry", "show", a, "--json")[1])["history"]
    assert [h["action"] for h in history] == ["registered", "disabled", "enabled", "revoked"]
    assert history[1]["detail"] == "maintenance"


def test_export_is_the_contract_shape(fleet, capsys):
    tmp, ids = fleet
    cli(capsys, "registry", "disable", ids["b"])
    cli(capsys, "registry", "revoke", ids["c"])
    code, out, err = cli(capsys, "registry", "export", "--json")
    doc = json.loads(out)
    assert code == 0 and doc["version"] == 1
    by = {d["device_id"]: d for d in doc["devices"]}
    assert {by[i]["status"] for i in ids.values()} == {"active", "disabled", "revoked"}
    for d in doc["devices"]:
        assert set(d) >= {"device_id", "public_key", "status", "district", "board", "certificate"}
        assert len(bytes.fromhex(d["public_key"])) == 65 and d["certificate"].startswith("-----BEGIN CERTIFICATE")
    assert "PRIVATE" not in out


def test_verify_with_a_real_export_gives_distinct_reasons(fleet, capsys):
    tmp, ids = fleet
    cli(capsys, "registry", "disable", ids["b"])
    cli(capsys, "registry", "revoke", ids["c"])
    export = tmp / "export.json"
    export.write_text(cli(capsys, "registry", "export", "--json")[1])
    files = []
    for name, district in (("a", "north"), ("b", "north"), ("c", "south")):
        _, _, msg = signed_summary(tmp / name, district)
        (tmp / (name + ".cose")).write_bytes(msg)
        files.append(tmp / (name + ".cose"))
    # An unknown device: initialised, never provisioned.
    assert cli(capsys, "device", "init", "--device-dir", tmp / "stranger", "--board", write_board(tmp))[0] == 0
    _, _, msg = signed_summary(tmp / "stranger", "north")
    (tmp / "stranger.cose").write_bytes(msg)
    files.append(tmp / "stranger.cose")
    code, out, err = cli(capsys, "verify", "--registry", export, *files)
    res = json_lines(out)
    assert code == 1
    assert [r["ok"] for r in res] == [True, False, False, False]
    reasons = [r["reason"] for r in res[1:]]
    assert "disabled" in reasons[0] and "revoked" in reasons[1] and "unknown device" in reasons[2]
    assert len(set(reasons)) == 3


def test_every_change_is_one_transaction(fleet):
    tmp, ids = fleet
    reg = Registry(tmp / "registry.db")
    before = reg.list()
    rec = dict(before[0], device_id=ids["b"])  # re-register b while retiring an unknown id: must roll back
    with pytest.raises(Exception):
        reg.register(dict(rec, measures=[]), retire=["cm" + "q" * 16])
    assert reg.list() == before


@pytest.mark.parametrize("damage", ["garbage", "foreign", "folder"])
def test_a_path_holding_something_else_is_refused_and_left_untouched(tmp_path, capsys, damage):
    p = tmp_path / "registry.db"
    if damage == "garbage":
        p.write_bytes(b"this is not sqlite" * 100)
    elif damage == "foreign":  # e.g. the collector's store, given by mistake
        db = sqlite3.connect(p)
        db.execute("CREATE TABLE other (x)")
        db.commit()
        db.close()
    else:
        p.mkdir()
    before = p.read_bytes() if p.is_file() else None
    for argv in (("registry", "list"), ("batch", tmp_path / "none.csv")):
        code, out, err = cli(capsys, *argv, "--registry", p)
        if argv[0] == "batch":  # the CSV is checked first; then the registry
            (tmp_path / "none.csv").write_text("board,target,district\nb.json,d,north\n")
            code, out, err = cli(capsys, *argv, "--registry", p)
        assert code == 2 and out == "", err
        assert err.count("\n") == 1 and str(p) in err
    assert (p.read_bytes() if p.is_file() else None) == before


def test_a_damaged_registry_is_state_exit_4(tmp_path, capsys):
    p = tmp_path / "registry.db"
    Registry(p, create=True).close()
    db = sqlite3.connect(p)
    db.execute("UPDATE meta SET value='99' WHERE key='schema'")
    db.commit()
    db.close()
    code, out, err = cli(capsys, "registry", "list", "--registry", p)
    assert code == 4 and out == ""
    assert err.count("\n") == 1 and str(p) in err and "backup" in err


def test_missing_registry(tmp_path, capsys):
    code, out, err = cli(capsys, "registry", "list", "--registry", tmp_path / "none.db")
    assert code == 2 and "no registry" in err


def test_installed_script_exports(fleet):
    tmp, ids = fleet
    p = run_cli("registry", "export", "--json", env=env(tmp))
    assert p.returncode == 0, p.stderr
    assert len(json.loads(p.stdout)["devices"]) == 3
