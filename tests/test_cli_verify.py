"""`civicmote verify` per the contract: one JSON line per message, exit 0 only if all are ok."""
import os

from cli_helpers import cli, json_lines, run_cli

from agent import crypto
from agent.core import cose, summary
from agent.store.identity import public_identity


def _device():
    key = crypto.generate_signing_key(os.urandom)
    dev, pub = public_identity(key)
    return key, dev, pub


def _message(key, dev, seq):
    s = summary.build(dev, seq, 1000 + 300 * seq, 1300 + 300 * seq, {"temp": [215, 210, 220]}, b"\x01" * 8)
    return cose.sign1(summary.encode(s), key, dev.encode())


def test_good_messages_verify(tmp_path, capsys):
    key, dev, pub = _device()
    files = []
    for seq in (1, 2, 3):
        p = tmp_path / ("%d.cose" % seq)
        p.write_bytes(_message(key, dev, seq))
        files.append(p)
    code, out, err = cli(capsys, "verify", "--public-key", pub.hex(), *files)
    assert code == 0, err
    recs = json_lines(out)
    assert [r["seq"] for r in recs] == [1, 2, 3]
    assert all(r["ok"] and r["device_id"] == dev and r["kind"] == "summary" for r in recs)
    assert "3 of 3" in err


def test_bad_messages_each_have_a_reason(tmp_path, capsys):
    key, dev, pub = _device()
    other_key, other_dev, _ = _device()
    good = _message(key, dev, 5)
    tampered = bytearray(good)
    tampered[-10] ^= 0x40
    # Signed by another key but claiming our device_id as kid.
    impostor = cose.sign1(summary.encode(summary.build(dev, 6, 1, 2, {}, b"\0" * 8)), other_key, dev.encode())
    # Valid signature by our key, but the payload names another device.
    mismatch = cose.sign1(summary.encode(summary.build(other_dev, 7, 1, 2, {}, b"\0" * 8)), key, dev.encode())
    cases = {"good": good, "tampered": bytes(tampered), "impostor": impostor, "mismatch": mismatch,
             "garbage": b"not cbor at all", "other": _message(other_key, other_dev, 1)}
    paths = []
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
        paths.append(tmp_path / name)
    paths.append(tmp_path / "missing")
    code, out, err = cli(capsys, "verify", "--public-key", pub.hex(), *paths)
    assert code == 2  # one file could not be read: bad input outranks a failed check
    recs = {os.path.basename(r["file"]): r for r in json_lines(out)}
    assert recs["good"]["ok"] is True
    for name in ("tampered", "impostor", "mismatch", "garbage", "other", "missing"):
        assert recs[name]["ok"] is False and recs[name]["reason"], name
    assert "signature" in recs["tampered"]["reason"] or "canonical" in recs["tampered"]["reason"] \
        or "summary" in recs["tampered"]["reason"]
    assert "signature" in recs["impostor"]["reason"]
    assert "differs from the signer" in recs["mismatch"]["reason"]
    assert "unknown device" in recs["other"]["reason"]
    assert "cannot read" in recs["missing"]["reason"]


def test_bad_public_key_is_a_usage_error(tmp_path, capsys):
    (tmp_path / "m").write_bytes(b"x")
    code, out, err = cli(capsys, "verify", "--public-key", "zz", tmp_path / "m")
    assert code == 2 and out == "" and err.count("\n") == 1 and "--public-key" in err
    code, out, err = cli(capsys, "verify", "--public-key", "04" + "00" * 64, tmp_path / "m")
    assert code == 2 and "--public-key" in err


def test_usage_errors_exit_2(capsys):
    code, out, err = cli(capsys, "verify")
    assert code == 2 and "error" in err
    code, out, err = cli(capsys, "no-such-command")
    assert code == 2


def test_installed_entry_point(tmp_path):
    key, dev, pub = _device()
    (tmp_path / "1.cose").write_bytes(_message(key, dev, 1))
    r = run_cli("verify", "--json", "--public-key", pub.hex(), tmp_path / "1.cose")
    assert r.returncode == 0, r.stderr
    assert json_lines(r.stdout)[0]["ok"] is True and r.stderr == ""
    r = run_cli("--help")
    assert r.returncode == 0 and "exit codes" in r.stdout


def test_a_missing_file_is_bad_input_exit_2(tmp_path, capsys):
    key, dev, pub = _device()
    code, out, err = cli(capsys, "verify", "--public-key", pub.hex(), tmp_path / "nope.cose")
    assert code == 2, err
    assert "nope.cose" in err and json_lines(out)[0]["ok"] is False


def test_an_export_entry_with_a_bad_public_key_is_named(tmp_path, capsys):
    import hashlib
    import json

    from agent.core.identity import device_id

    bad = "04" + "ff" * 64  # not a point on P-256
    doc = {"version": 1, "devices": [{"device_id": device_id(bytes.fromhex(bad)), "public_key": bad,
                                      "status": "active"}]}
    (tmp_path / "export.json").write_text(json.dumps(doc))
    (tmp_path / "m.cose").write_bytes(hashlib.sha256(b"x").digest())
    code, out, err = cli(capsys, "verify", "--registry", tmp_path / "export.json", tmp_path / "m.cose")
    assert code == 2 and "devices[0].public_key" in err and "export.json" in err
