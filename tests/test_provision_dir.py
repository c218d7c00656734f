"""`civicmote ca` and `civicmote provision --target DIR`: a simulated device from nothing to registered."""
import errno
import json
import os
import stat

import pytest
from cli_helpers import cli, json_failure
from provision_support import PASSPHRASE, write_board

from provisioning.pki import ca as ca_mod
from provisioning.pki import pop
from provisioning.field import targets
from provisioning.cli.provision import provision
from provisioning.pki.registry import Registry


@pytest.fixture
def site(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("CIVICMOTE_CA_PASSPHRASE", PASSPHRASE)
    monkeypatch.setenv("CIVICMOTE_REGISTRY", str(tmp_path / "registry.db"))
    assert cli(capsys, "ca", "init", "--dir", tmp_path / "ca")[0] == 0
    return tmp_path


def _provision(capsys, site, name="dev1", *extra, district="north"):
    return cli(capsys, "provision", "--board", write_board(site), "--district", district, "--target", site / name,
               "--ca", site / "ca", "--json", *extra)


def test_ca_init_encrypts_its_key_and_is_kept(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("CIVICMOTE_CA_PASSPHRASE", PASSPHRASE)
    code, out, err = cli(capsys, "ca", "init", "--dir", tmp_path / "ca", "--json")
    assert code == 0, err
    first = json.loads(out)
    assert first["ca_created"] is True
    key = (tmp_path / "ca" / "ca.key").read_bytes()
    assert b"ENCRYPTED PRIVATE KEY" in key
    assert stat.S_IMODE(os.stat(tmp_path / "ca" / "ca.key").st_mode) == 0o600
    code, out, err = cli(capsys, "ca", "init", "--dir", tmp_path / "ca", "--json")
    assert code == 0 and json.loads(out)["ca_created"] is False
    assert json.loads(out)["cert_fingerprint"] == first["cert_fingerprint"]


def test_wrong_passphrase_is_one_clear_line(site, capsys, monkeypatch):
    monkeypatch.setenv("CIVICMOTE_CA_PASSPHRASE", "not the passphrase")
    code, out, err = _provision(capsys, site)
    assert code == 2
    assert "wrong CA passphrase" in json_failure(out, 2)["error"]  # --json: the failure as one object
    assert err.count("\n") == 1 and "wrong CA passphrase" in err and "CIVICMOTE_CA_PASSPHRASE" in err
    assert Registry(site / "registry.db").list() == []


def test_missing_ca_names_the_folder_and_the_fix(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("CIVICMOTE_CA_PASSPHRASE", PASSPHRASE)
    code, out, err = cli(capsys, "provision", "--board", write_board(tmp_path), "--district", "north", "--target",
                         tmp_path / "dev", "--ca", tmp_path / "nope", "--registry", tmp_path / "r.db")
    assert code == 2
    assert "no CA here" in err and "civicmote ca init" in err


def test_no_passphrase_without_a_terminal(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("CIVICMOTE_CA_PASSPHRASE", raising=False)
    code, out, err = cli(capsys, "ca", "init", "--dir", tmp_path / "ca")
    assert code == 2 and "CIVICMOTE_CA_PASSPHRASE" in err


def test_provision_makes_a_registered_device_with_its_certificate(site, capsys):
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    code, out, err = _provision(capsys, site, "dev1", "--broker", "mqtts://broker.example:8883")
    assert code == 0, err
    r = json.loads(out)
    dev = r["device_id"]
    assert r["status"] == "provisioned" and r["district"] == "north"
    d = site / "dev1"
    cert = x509.load_pem_x509_certificate((d / "device.crt").read_bytes())
    assert cert.subject.get_attributes_for_oid(x509.oid.NameOID.COMMON_NAME)[0].value == dev
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.UniformResourceIdentifier) == ["urn:civicmote:device:" + dev]
    assert ca_mod.fingerprint((d / "device.crt").read_bytes()) == r["cert_fingerprint"]
    cert.verify_directly_issued_by(x509.load_pem_x509_certificate((d / "ca.crt").read_bytes()))
    # device.pem is the device's own key (the certificate's key), private to its owner.
    pem_key = serialization.load_pem_private_key((d / "device.pem").read_bytes(), None)
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    assert pem_key.public_key().public_bytes(serialization.Encoding.DER, spki) == \
        cert.public_key().public_bytes(serialization.Encoding.DER, spki)
    assert stat.S_IMODE(os.stat(d / "device.pem").st_mode) == 0o600
    config = json.loads((d / "config.json").read_text())
    assert config["broker"] == "mqtts://broker.example:8883" and config["district"] == "north"
    assert config["topic_prefix"] == "civicmote/v1"
    unit = (d / "civicmote.service").read_text()
    assert "Restart=always" in unit and "WatchdogSec=" in unit and str(d) in unit
    assert r["systemd"].startswith("skipped")  # not a Raspberry Pi
    rec = Registry(site / "registry.db").get(dev)
    assert rec["status"] == "active" and rec["public_key"] == json.loads((d / "device.json").read_text())["public_key"]
    assert "PRIVATE" not in json.dumps(rec)


def test_rerun_is_a_noop_and_keeps_the_key(site, capsys, monkeypatch):
    first = json.loads(_provision(capsys, site)[1])
    key = (site / "dev1" / "device.key").read_bytes()
    crt = (site / "dev1" / "device.crt").read_bytes()
    monkeypatch.setenv("CIVICMOTE_CA_PASSPHRASE", "wrong: a no-op must not need the CA")
    code, out, err = _provision(capsys, site)
    assert code == 0, err
    again = json.loads(out)
    assert again["status"] == "unchanged" and again["device_id"] == first["device_id"]
    assert (site / "dev1" / "device.key").read_bytes() == key
    assert (site / "dev1" / "device.crt").read_bytes() == crt


def test_rekey_gives_a_new_identity_and_revokes_the_old(site, capsys):
    old = json.loads(_provision(capsys, site)[1])["device_id"]
    code, out, err = _provision(capsys, site, "dev1", "--rekey")
    assert code == 0, err
    new = json.loads(out)
    assert new["device_id"] != old and new["retired"] == [old]
    reg = Registry(site / "registry.db")
    assert reg.get(old)["status"] == "revoked" and reg.get(new["device_id"])["status"] == "active"


def test_cloned_disk_is_refused(site, capsys):
    import shutil

    dev = json.loads(_provision(capsys, site)[1])["device_id"]
    shutil.copytree(site / "dev1", site / "clone")
    code, out, err = _provision(capsys, site, "clone")
    assert code == 4
    assert dev in err and "--rekey" in err
    code, out, err = _provision(capsys, site, "clone", "--rekey")
    assert code == 0 and json.loads(out)["device_id"] != dev


def test_district_change_and_bad_district_are_refused(site, capsys):
    _provision(capsys, site)
    code, out, err = _provision(capsys, site, district="south")
    assert code == 4 and "'north'" in err
    code, out, err = _provision(capsys, site, "dev2", district="a/b")
    assert code == 2 and "district" in err


def test_revoked_device_must_be_rekeyed(site, capsys):
    dev = json.loads(_provision(capsys, site)[1])["device_id"]
    assert cli(capsys, "registry", "revoke", dev)[0] == 0
    code, out, err = _provision(capsys, site)
    assert code == 4 and "revoked" in err and "--rekey" in err


class _LyingTarget(targets.DirTarget):
    """A device whose proof of possession is wrong (flipped signature bit or a replayed challenge)."""

    def __init__(self, path, how):
        super().__init__(path)
        self.how = how

    def civicmote(self, argv):
        if argv[:2] == ["device", "pop"] and self.how == "replay":
            argv = list(argv)
            argv[-1] = "00" * 32
        recs = super().civicmote(argv)
        if argv[:2] == ["device", "pop"] and self.how == "flip":
            sig = bytearray(bytes.fromhex(recs[0]["signature"]))
            sig[5] ^= 1
            recs[0]["signature"] = sig.hex()
        return recs


@pytest.mark.parametrize("how", ["flip", "replay"])
def test_failed_proof_of_possession_registers_nothing(site, how):
    reg = Registry(site / "registry.db", create=True)
    t = _LyingTarget(site / "dev1", how)
    with pytest.raises(pop.PopFailed) as e:
        provision(t, str(write_board(site)), "north", reg, ca_mod.LazyCA(site / "ca"))
    assert e.value.exit_code == 1 and "proof of possession failed" in str(e.value)
    assert reg.list() == []
    assert not (site / "dev1" / "device.crt").exists()
    # The honest device then provisions fine.
    r = provision(targets.DirTarget(site / "dev1"), str(write_board(site)), "north", reg, ca_mod.LazyCA(site / "ca"))
    assert r["status"] == "provisioned"


def test_pop_answer_checks_identity_and_domain():
    from agent import crypto

    key = crypto.generate_signing_key(os.urandom)
    from agent.store.identity import public_identity

    dev, pub = public_identity(key)
    ch = pop.new_challenge()
    good = {"device_id": dev, "public_key": pub.hex(), "signature": key.sign(pop.message(ch, dev)).hex()}
    assert pop.verify_answer(good, ch, pub.hex(), "t")[0] == dev
    no_domain = dict(good, signature=key.sign(ch + dev.encode()).hex())
    wrong_id = dict(good, device_id="cm" + "a" * 16)
    for bad in (no_domain, wrong_id, dict(good, signature="00" * 64), dict(good, public_key="04")):
        with pytest.raises(pop.PopFailed):
            pop.verify_answer(bad, ch, pub.hex(), "t")
    with pytest.raises(pop.PopFailed):
        pop.verify_answer(good, pop.new_challenge(), pub.hex(), "t")


class _Interrupted(targets.DirTarget):
    def install(self, files):  # Ctrl-C after the certificate was issued, before the device has it
        if "device.crt" in files:
            raise KeyboardInterrupt
        super().install(files)


def test_interrupted_run_is_completed_by_a_rerun(site, capsys):
    reg = Registry(site / "registry.db", create=True)
    with pytest.raises(KeyboardInterrupt):
        provision(_Interrupted(site / "dev1"), str(write_board(site)), "north", reg, ca_mod.LazyCA(site / "ca"))
    # The certificate was recorded as it was issued: none exists that the registry does not know.
    assert [(d["status"], bool(d["certificate"])) for d in reg.list()] == [("active", True)]
    code, out, err = _provision(capsys, site)
    assert code == 0, err
    r = json.loads(out)
    assert r["status"] == "provisioned" and reg.get(r["device_id"])["status"] == "active"


def test_target_out_of_space_is_reported_and_rerun_completes(site, capsys, monkeypatch):
    from agent import compat

    real = compat.write_file_atomic

    def full(path, data, private=False):
        if path.endswith("device.crt"):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(path, data, private)

    monkeypatch.setattr(compat, "write_file_atomic", full)
    code, out, err = _provision(capsys, site)
    assert code == 3 and "no space left" in err
    assert [d["status"] for d in Registry(site / "registry.db").list()] == ["active"]  # its certificate is known
    monkeypatch.setattr(compat, "write_file_atomic", real)
    code, out, err = _provision(capsys, site)
    assert code == 0 and json.loads(out)["status"] == "provisioned"


def test_device_pop_cli_signs_without_showing_the_key(site, capsys):
    assert _provision(capsys, site)[0] == 0
    ch = "ab" * 32
    code, out, err = cli(capsys, "device", "pop", "--device-dir", site / "dev1", "--challenge", ch, "--json")
    assert code == 0, err
    ans = json.loads(out)
    assert set(ans) == {"device_id", "public_key", "signature"}
    assert pop.verify_answer(ans, bytes.fromhex(ch), None, "t")[0] == ans["device_id"]
    code, out, err = cli(capsys, "device", "pop", "--device-dir", site / "dev1", "--challenge", "zz")
    assert code == 2


def test_rerun_keeps_broker_and_location_and_a_new_broker_updates(site, capsys):
    code, out, err = _provision(capsys, site, "dev1", "--broker", "mqtts://a:8883", "--location", "pole 7")
    assert code == 0, err
    assert json.loads(_provision(capsys, site)[1])["status"] == "unchanged"
    code, out, err = _provision(capsys, site, "dev1", "--broker", "mqtts://b:8883")
    assert code == 0 and json.loads(out)["status"] == "updated"
    config = json.loads((site / "dev1" / "config.json").read_text())
    assert config["broker"] == "mqtts://b:8883" and config["location"] == "pole 7"
    assert "mqtts://b:8883" in (site / "dev1" / "civicmote.service").read_text()


def test_reprovisioning_with_another_profile_updates_registry_and_label(site, capsys):
    code, out, err = _provision(capsys, site)
    first = json.loads(out)
    code, out, err = cli(capsys, "provision", "--board", "boards/sim.json", "--district", "north", "--target",
                         site / "dev1", "--ca", site / "ca", "--json")
    assert code == 0, err
    again = json.loads(out)
    assert again["status"] == "updated" and again["device_id"] == first["device_id"] and again["board"] == "sim"
    assert again["cert_fingerprint"] == first["cert_fingerprint"]  # same key, same certificate
    rec = Registry(site / "registry.db").get(first["device_id"])
    assert rec["board"] == "sim" and "pm2_5" in [m["metric"] for m in rec["measures"]]
    code, out, err = cli(capsys, "label", first["device_id"], "--out", site / "pole.svg", "--contact", "x@y.z")
    assert code == 0, err
    svg = (site / "pole.svg").read_text()
    assert "PM2.5" in svg and "people passing by" not in svg  # what the new profile measures, not the old one


def test_a_micropython_profile_is_refused_for_a_folder(site, capsys):
    code, out, err = cli(capsys, "provision", "--board", "boards/esp32-devkitc.json", "--district", "north",
                         "--target", site / "dev1", "--ca", site / "ca")
    assert code == 2 and "runs micropython" in err and "--port" in err
    assert not (site / "dev1").exists()
