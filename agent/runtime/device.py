"""Assemble a device's agent from its state folder (portable: a Linux dir or a board's flash).

    <device dir>/device.key       the private key (never leaves)
    <device dir>/board.json       the board profile
    <device dir>/privacy.ledger   epsilon spent today (created at `device init`)
    <device dir>/seq              reserved sequence-number block
    <device dir>/outbox/          signed summaries waiting for the broker's PUBACK
"""
from agent.board import open_sensors
from agent.core import cose
from agent.core.identity import device_id
from agent.privacy import manifest as manifests
from agent.privacy.ledger import PrivacyLedger
from agent.runtime.agent import DEFAULT_PREFIX, Agent
from agent.runtime.metrics import MetricSet
from agent.store import identity
from agent.store.outbox import Outbox
from agent.store.seq import SeqAllocator

LEDGER = "privacy.ledger"
SEQ = "seq"
OUTBOX = "outbox"
BOARD = "board.json"
OUTBOX_BYTES = 256 * 1024  # about a thousand summaries: three days of 5-minute windows
OUTBOX_COUNT = 1024


def create_ledger(device_dir, now_s):
    """The privacy ledger of a new device (`device init`); an existing one is kept as it is."""
    return PrivacyLedger.create(device_dir + "/" + LEDGER, now_s)


def signed_manifest(board, key, dev):
    """(COSE_Sign1 manifest message, manifest hash) for this device and board."""
    m = manifests.board_manifest(board, dev)
    return cose.sign1(manifests.payload(m), key, dev.encode()), manifests.manifest_hash(m)


def open_agent(device_dir, board, district, now_s, now_ms, rng, transport=None, sink=None,
               prefix=DEFAULT_PREFIX, outbox_bytes=OUTBOX_BYTES, outbox_count=OUTBOX_COUNT, seed=1):
    """The Agent of the device in device_dir, ready to step. rng(n) -> n random bytes."""
    key = identity.load_key(device_dir)
    dev = device_id(key.public_key().to_sec1())
    metrics = MetricSet(board, rng)
    sensors = open_sensors(board, now_ms, identifier_sink=metrics.identifier, seed=seed)
    ledger = PrivacyLedger.open(device_dir + "/" + LEDGER, now_s)
    outbox = Outbox(device_dir + "/" + OUTBOX, outbox_bytes, outbox_count)
    highest = 0
    for seq in outbox.seqs():
        if seq > highest:
            highest = seq
    seqs = SeqAllocator(device_dir + "/" + SEQ, floor=highest + 1)
    manifest, mh = signed_manifest(board, key, dev)
    return Agent(board, key, dev, district, metrics, sensors, ledger, outbox, seqs, manifest, mh,
                 transport=transport, prefix=prefix, sink=sink)


DEVICE_RECORD = "device.json"


def init_device(device_dir, board_name, district, now_s, rng=None):
    """`civicmote device init` where the device lives: key (made here, kept if present), privacy
    ledger, and the device record. Returns the record with `created` (a new key was made)."""
    import json

    from agent import compat

    key, created = identity.ensure_key(device_dir, rng)
    create_ledger(device_dir, now_s)  # the budget starts with the identity; later, missing = closed
    dev, pub = identity.public_identity(key)
    path = device_dir + "/" + DEVICE_RECORD
    try:
        with open(path) as f:
            rec = json.load(f)
    except (OSError, ValueError):
        rec = {}
    rec["device_id"] = dev
    rec["public_key"] = "".join("%02x" % b for b in pub)
    rec["board"] = board_name
    rec["district"] = district or rec.get("district")
    compat.write_file_atomic(path, json.dumps(rec).encode())
    out = dict(rec)
    out["created"] = created
    return out
