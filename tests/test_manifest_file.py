"""The signed manifest kept on flash (agent/runtime/manifest_file.py).

- `device init` writes it; the agent's start reads it instead of building it, and what it reads
  is byte for byte what the builder makes (RFC 6979 signatures are deterministic).
- A stale file is never used: another profile (one byte), another key, a cut or damaged file.
- CODE stays honest: the manifest of every shipped board, for a fixed device, is recorded under
  CODE in tests/vectors/manifest_code.json. If the builder starts saying something new, this
  file fails until CODE is bumped (so boards in the field rebuild theirs) and the record is
  regenerated with `python tests/test_manifest_file.py --update`.
"""
import hashlib
import json
import shutil
import sys
from pathlib import Path

import pytest

from agent.board import load_profile
from agent.core import cose
from agent.runtime import device, manifest_file
from agent.store import identity

ROOT = Path(__file__).resolve().parent.parent
RECORD = ROOT / "tests" / "vectors" / "manifest_code.json"
FIXED_DEV = "cm" + "a" * 16  # a device id of the right shape, only used to fix the bytes


def shipped_payload_hashes():
    from agent.privacy import manifest

    out = {}
    for p in sorted((ROOT / "boards").glob("*.json")):
        payload = manifest.payload(manifest.board_manifest(load_profile(str(p)), FIXED_DEV, manifest_file.FACTORY_SW))
        out[p.name] = hashlib.sha256(payload).hexdigest()
    return out


def _device(tmp_path, board="virtual.json"):
    d = tmp_path / "dev"
    d.mkdir()
    shutil.copy(ROOT / "boards" / board, d / "board.json")
    rec = device.init_device(str(d), "virtual", "north", 1767225600)
    return d, rec


def _open(d):
    board = load_profile(str(d / "board.json"))
    key = identity.load_key(str(d))
    return board, key


def test_device_init_writes_it_and_a_start_reads_the_same_bytes(tmp_path, monkeypatch):
    d, rec = _device(tmp_path)
    assert (d / manifest_file.FILE).exists()
    board, key = _open(d)
    built = manifest_file.build(board, key, rec["device_id"])

    def no_build(*a):
        raise AssertionError("the manifest was built although a current one is on flash")

    monkeypatch.setattr(manifest_file, "build", no_build)
    msg, mh = manifest_file.ensure(str(d), board, key, rec["device_id"])
    assert (msg, mh) == built
    assert cose.verify1(msg, key.public_key()).kid_text() == rec["device_id"]


@pytest.mark.parametrize("change", ["profile", "key", "cut", "flipped", "missing"])
def test_a_stale_or_damaged_file_is_rebuilt(tmp_path, change):
    d, rec = _device(tmp_path)
    f = d / manifest_file.FILE
    dev = rec["device_id"]
    if change == "profile":  # one byte of the profile: a description gets a trailing space
        raw = (d / "board.json").read_text()
        (d / "board.json").write_text(raw.replace('"description": "', '"description": " ', 1))
    elif change == "key":
        dev = "cm" + "b" * 16
    elif change == "cut":
        f.write_bytes(f.read_bytes()[:manifest_file.FINGERPRINT_LEN + 3])
    elif change == "flipped":
        b = bytearray(f.read_bytes())
        b[5] ^= 1
        f.write_bytes(bytes(b))
    else:
        f.unlink()
    board, key = _open(d)
    before = f.read_bytes() if f.exists() else None
    msg, mh = manifest_file.ensure(str(d), board, key, dev)
    assert (msg, mh) == manifest_file.build(board, key, dev)
    after = f.read_bytes()
    assert after != before and after.endswith(msg)
    assert manifest_file.read(str(f), manifest_file.fingerprint(str(d / "board.json"), dev)) == (msg, mh)


def test_a_profile_from_elsewhere_is_built_and_nothing_is_written(tmp_path):
    d, rec = _device(tmp_path)
    (d / manifest_file.FILE).unlink()
    board = load_profile(str(ROOT / "boards" / "virtual.json"))
    key = identity.load_key(str(d))
    assert manifest_file.ensure(str(d), board, key, rec["device_id"]) == manifest_file.build(board, key, rec["device_id"])
    assert not (d / manifest_file.FILE).exists()


def test_code_is_bumped_when_the_manifest_of_a_shipped_board_changes():
    rec = json.loads(RECORD.read_text())
    now = shipped_payload_hashes()
    assert rec["code"] == manifest_file.CODE.decode(), (
        "manifest_file.CODE changed: regenerate %s with `python tests/test_manifest_file.py --update`" % RECORD)
    changed = sorted(k for k in now if rec["payloads"].get(k) != now[k])
    assert not changed, ("the manifest of %s changed: bump agent/runtime/manifest_file.CODE (boards in the field "
                         "must rebuild theirs), then run `python tests/test_manifest_file.py --update`" % changed)


if __name__ == "__main__" and sys.argv[1:] == ["--update"]:
    RECORD.write_text(json.dumps({"code": manifest_file.CODE.decode(), "payloads": shipped_payload_hashes()},
                                 indent=1, sort_keys=True) + "\n")
    print("wrote", RECORD)
