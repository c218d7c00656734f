"""`civicmote release keygen|build|sign|show` and the pinned release keys, with real cryptography.

The city's tools refuse the signers a device refuses: a release signed by the provisioning CA or
by a device key is named as such by `release show --verify` (exit 1) and refused by
`rollout start`; a flipped bit and trailing bytes are refused; `device init` / `provision`
--release-key write the device's release_keys file (agent.ota.docs reads it) and refuse the
CA's key and the device's own key as release keys.
"""
import hashlib
import json

import pytest
from cli_helpers import cli, json_lines
from provision_support import PASSPHRASE, write_board

from agent.crypto.cpython_backend import SigningKey
from agent.ota import bundle, docs
from provisioning.pki import ca as pki_ca

REL_PASS = "release passphrase"


@pytest.fixture
def city(tmp_path, monkeypatch):
    """A CA, a release key made by `release keygen`, a small built artefact and its signed release."""
    monkeypatch.setenv("CIVICMOTE_RELEASE_PASSPHRASE", REL_PASS)
    monkeypatch.setenv("CIVICMOTE_CA_PASSPHRASE", PASSPHRASE)
    authority, _ = pki_ca.init_ca(tmp_path / "ca", PASSPHRASE)
    return {"tmp": tmp_path, "ca": authority, "ca_dir": tmp_path / "ca"}


def _keygen(capsys, path):
    code, out, err = cli(capsys, "release", "keygen", "--out", path, "--json")
    assert code == 0, err
    return json_lines(out)[0]


def test_keygen_build_sign_show(city, capsys):
    t = city["tmp"]
    key = _keygen(capsys, t / "rel.pem")
    assert (t / "rel.pem").stat().st_mode & 0o777 == 0o600
    assert b"ENCRYPTED" in (t / "rel.pem").read_bytes()
    assert key["kid"] == docs.release_kid(bytes.fromhex(key["public_key"])).decode()
    assert key["public_key"] not in (t / "rel.pem").read_text()  # (the PEM is the private key, encrypted)
    code, _, err = cli(capsys, "release", "keygen", "--out", t / "rel.pem")
    assert code == 2 and "never overwritten" in err

    code, out, err = cli(capsys, "release", "build", "--kind", "pi", "--out", t / "pi.bundle", "--json")
    assert code == 0, err
    info = json_lines(out)[0]
    data = (t / "pi.bundle").read_bytes()
    assert info["sha256"] == hashlib.sha256(data).hexdigest() and info["class"] == ["cpython3"]
    got = {}
    pos = [0]

    def read(n):
        b = data[pos[0]:pos[0] + n]
        pos[0] += n
        return b

    class Sink:
        def __init__(self, p):
            self.p, self.n = p, 0

        def write(self, b):
            self.n += len(b)

        def close(self):
            got[self.p] = self.n

    bundle.unpack(read, Sink, limit=len(data))
    assert "agent/ota/docs.py" in got and "provisioning/cli/release.py" in got
    assert not [p for p in got if "__pycache__" in p]

    code, out, err = cli(capsys, "release", "build", "--kind", "board", "--class", "mpy2822", "--out",
                         t / "board.bundle", "--json")
    assert code == 0, err
    board = (t / "board.bundle").read_bytes()
    assert board.startswith(bundle.MAGIC) and b"lib/agent/ota/docs.mpy" in board
    assert b"lib/agent/ota/docs.py" not in board
    code, _, err = cli(capsys, "release", "build", "--kind", "board", "--out", t / "x.bundle")
    assert code == 2 and "--class" in err

    code, out, err = cli(capsys, "release", "sign", "--key", t / "rel.pem", "--artefact", t / "pi.bundle", "--seq", 7,
                         "--ver", "0.9.1", "--privacy", "0011223344556677", "--min-seq", 3, "--expires-days", 30,
                         "--out", t / "pi.release", "--json")
    assert code == 0, err
    signed = json_lines(out)[0]
    cose = (t / "pi.release").read_bytes()
    assert signed["hash"] == hashlib.sha256(cose).hexdigest() and signed["seq"] == 7 and signed["min_seq"] == 3
    code, out, err = cli(capsys, "release", "show", t / "pi.release", "--release-key", key["public_key"],
                         "--artefact", t / "pi.bundle", "--json")
    shown = json_lines(out)[0]
    assert code == 0 and shown["verified"] is True and shown["artefact_matches"] is True, shown
    code, out, _ = cli(capsys, "release", "show", t / "pi.release")
    assert code == 0 and "seq 7" in out and "rel-" in out

    # what the device side opens is what was signed
    rel, kid = docs.open_release(cose, [bytes.fromhex(key["public_key"])],
                                 __import__("agent.crypto", fromlist=["x"]).verifying_key_from_sec1)
    assert rel["sha256"] == hashlib.sha256(data).digest() and rel["size"] == len(data)

    # an artefact changed after the build is not signed
    (t / "pi.bundle").write_bytes(data + b"x")
    code, _, err = cli(capsys, "release", "sign", "--key", t / "rel.pem", "--artefact", t / "pi.bundle", "--seq", 8,
                       "--ver", "0.9.2", "--privacy", "0011223344556677", "--out", t / "x.release")
    assert code == 2 and "build record" in err and not (t / "x.release").exists()


def _release(key, pub, data=b"artefact"):
    return docs.make_release(key, pub, 5, "1.0", "agent", ["cpython3"], len(data), hashlib.sha256(data).digest(),
                             docs.STATE_FORMAT, b"\0" * 8)


def test_wrong_signers_refused(city, capsys):
    from cryptography.hazmat.primitives.asymmetric import ec

    from provisioning.cli.release import _ca_key
    from provisioning.ota.keys import public_sec1

    t = city["tmp"]
    key = _keygen(capsys, t / "rel.pem")
    rel_hex = key["public_key"]
    ca_sec1 = _ca_key(city["ca_dir"])
    (t / "art").write_bytes(b"artefact")
    dev_key = ec.generate_private_key(ec.SECP256R1())
    dev_pub = public_sec1(dev_key)
    from agent.core.identity import device_id

    dev = device_id(dev_pub)
    (t / "export.json").write_text(json.dumps({"version": 1, "devices": [
        {"device_id": dev, "public_key": dev_pub.hex(), "status": "active", "district": "north"}]}))
    cases = {"ca": _release(SigningKey(city["ca"].key), ca_sec1), "device": _release(SigningKey(dev_key), dev_pub)}
    for who, cose in cases.items():
        (t / (who + ".release")).write_bytes(cose)
        code, out, _ = cli(capsys, "release", "show", t / (who + ".release"), "--release-key", rel_hex, "--ca",
                           city["ca_dir"], "--registry", t / "export.json", "--json")
        r = json_lines(out)[0]
        assert code == 1 and r["verified"] is False and r["refused"].startswith("wrong_signer"), r
        assert ("provisioning CA" in r["refused"]) if who == "ca" else (dev in r["refused"])
        # also when the operator does not say who the CA is: not a pinned key
        code, out, _ = cli(capsys, "release", "show", t / (who + ".release"), "--release-key", rel_hex, "--json")
        assert code == 1 and json_lines(out)[0]["refused"].startswith("wrong_signer")
        # and a rollout is never started with it
        code, out, err = cli(capsys, "rollout", "start", "--state", t / "r.db", "--release", t / (who + ".release"),
                             "--artefact", t / "art", "--district", "north", "--release-key", rel_hex, "--ca",
                             city["ca_dir"])
        assert code == 2 and "wrong_signer" in err
    # trusting the CA's key as a release key names it too
    code, out, _ = cli(capsys, "release", "show", t / "ca.release", "--release-key", ca_sec1.hex(), "--ca",
                       city["ca_dir"], "--json")
    assert code == 1 and "provisioning CA" in json_lines(out)[0]["refused"]

    from provisioning.ota.keys import load_signing_key

    good = _release(load_signing_key(t / "rel.pem")[0], bytes.fromhex(rel_hex))
    flipped = bytearray(good)
    flipped[-5] ^= 1  # in the signature
    (t / "flipped").write_bytes(bytes(flipped))
    code, out, _ = cli(capsys, "release", "show", t / "flipped", "--release-key", rel_hex, "--json")
    assert code == 1 and json_lines(out)[0]["refused"].startswith("bad_sig")
    (t / "trailing").write_bytes(good + b"\x00")
    code, out, err = cli(capsys, "release", "show", t / "trailing", "--release-key", rel_hex, "--json")
    assert code == 2 and "malformed" in json_lines(out)[0]["error"]
    (t / "good").write_bytes(good)
    code, out, _ = cli(capsys, "release", "show", t / "good", "--release-key", rel_hex, "--json")
    assert code == 0 and json_lines(out)[0]["verified"] is True


def test_device_release_keys(city, capsys, tmp_path):
    from provisioning.cli.release import _ca_key

    t = city["tmp"]
    k1 = _keygen(capsys, t / "a.pem")["public_key"]
    k2 = _keygen(capsys, t / "b.pem")["public_key"]
    board = write_board(t)
    d = t / "dev"
    code, out, err = cli(capsys, "device", "init", "--device-dir", d, "--board", board, "--release-key", k1,
                         "--release-key", k2, "--json")
    assert code == 0, err
    assert docs.load_release_keys(str(d / "release_keys")) == [bytes.fromhex(k1), bytes.fromhex(k2)]
    own = json_lines(out)[0]["public_key"]
    code, _, err = cli(capsys, "device", "init", "--device-dir", d, "--board", board, "--release-key", own)
    assert code == 2 and "device's key" in err
    code, _, err = cli(capsys, "device", "init", "--device-dir", d, "--board", board, "--release-key", k1,
                       "--release-key", k2, "--release-key", k1)
    assert code == 2 and "one or two" in err
    assert docs.load_release_keys(str(d / "release_keys")) == [bytes.fromhex(k1), bytes.fromhex(k2)]

    reg = t / "registry.db"
    base = ["provision", "--ca", city["ca_dir"], "--registry", reg, "--board", board, "--district", "north",
            "--target", t / "pole"]
    code, _, err = cli(capsys, *base, "--release-key", _ca_key(city["ca_dir"]).hex())
    assert code == 2 and "provisioning CA" in err and not (t / "pole" / "release_keys").exists()
    code, out, err = cli(capsys, *base, "--release-key", k1, "--json")
    assert code == 0, err
    assert docs.load_release_keys(str(t / "pole" / "release_keys")) == [bytes.fromhex(k1)]
    # a re-run with nothing else changed still brings the pinned keys up to date (rotation)
    code, out, err = cli(capsys, *base, "--release-key", k1, "--release-key", k2, "--json")
    assert code == 0 and json_lines(out)[0]["status"] == "unchanged", err
    assert docs.load_release_keys(str(t / "pole" / "release_keys")) == [bytes.fromhex(k1), bytes.fromhex(k2)]
