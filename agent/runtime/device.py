"""Assemble a device's agent from its state folder (portable: a Linux dir or a board's flash).

    <device dir>/device.key       the private key (never leaves)
    <device dir>/board.json       the board profile
    <device dir>/privacy.ledger   epsilon spent today, HMAC-authenticated (created at `device init`)
    <device dir>/seq              reserved sequence-number block (created at `device init`)
    <device dir>/progress         last seq queued, last window end, ledger generation (reserved at init)
    <device dir>/outbox/          signed summaries waiting for the city's receipt (a ring of segments,
                                  reserved at `device init` with its index)
    <device dir>/receipt          the last receipt from the city (agent.runtime.receipts)
    <device dir>/manifest.cose    the signed manifest, made at `device init` (agent.runtime.manifest_file)
Every file the agent rewrites while it runs is rewritten in place, on blocks it already owns,
so a full disk cannot fail a write (agent/store/slots.py).
"""
from agent.board import open_sensors
from agent.core.identity import device_id
from agent.privacy.ledger import LedgerOpener, PrivacyLedger, ledger_key
from agent.runtime.agent import DEFAULT_PREFIX, Agent
from agent.runtime import manifest_file
from agent.runtime.metrics import MetricSet
from agent.store import identity
from agent.store.outbox import Outbox
from agent.store.progress import SLOT as PROGRESS_SLOT
from agent.store.progress import Progress
from agent.store.seq import SeqAllocator
from agent.store.seq import create as seq_start

LEDGER = "privacy.ledger"
SEQ = "seq"
PROGRESS = "progress"
OUTBOX = "outbox"
BOARD = "board.json"
OUTBOX_BYTES = 256 * 1024  # 64 segments of 4 KiB on disk: about a thousand summaries, three days of 5-minute windows
OUTBOX_COUNT = 1024


def device_ledger_key(key):
    """The HMAC key of this device's privacy ledger, derived from its private key (never stored)."""
    return ledger_key(key.to_bytes())


def create_ledger(device_dir, now_s, key=None):
    """The privacy ledger and sequence file of a new device (`device init`); existing ones are kept."""
    key = key or identity.load_key(device_dir)
    ran = _exists(device_dir + "/" + PROGRESS) or _exists(device_dir + "/" + OUTBOX)
    if not ran and not _exists(device_dir + "/" + SEQ):
        seq_start(device_dir + "/" + SEQ)  # numbering starts at 1; from now on a missing file means lost
    return PrivacyLedger.create(device_dir + "/" + LEDGER, now_s, device_ledger_key(key))


def reserve_state(device_dir, outbox_bytes=OUTBOX_BYTES, outbox_count=OUTBOX_COUNT):
    """Take, at `device init` on Linux, every block the agent will rewrite in place: the progress
    file, the outbox's ring of segments and its index. A disk that fills up later then cannot lose
    a summary silently (docs/delivery.md). OSError (no space: errno 28) if they do not fit; no
    half-made file is left behind. A MicroPython board makes them at its first boot instead (its
    filesystem is the firmware's, sized for them; writing 256 KiB would hold the serial `device
    init` for seconds)."""
    from agent.store.slots import SlotFile

    SlotFile(device_dir + "/" + PROGRESS, PROGRESS_SLOT).reserve()
    Outbox(device_dir + "/" + OUTBOX, outbox_bytes, outbox_count).reserve()


def _exists(path):
    from agent.compat import file_exists

    return file_exists(path)


def open_agent(device_dir, board, district, now_s, now_ms, rng, transport=None, sink=None,
               prefix=DEFAULT_PREFIX, outbox_bytes=OUTBOX_BYTES, outbox_count=OUTBOX_COUNT, seed=1, log=None,
               manifest=None, street=None, key=None, receipts=None, ota=None):
    """The Agent of the device in device_dir, ready to step. rng(n) -> n random bytes.

    Nothing here reads the clock's value: the privacy ledger is opened by the agent once the
    wall clock is valid (now_s is kept for callers; now_ms starts the sensors). manifest:
    (message, mh) already made, else agent.runtime.manifest_file gives it. street: see
    agent.sensors.assembly.build (a chip server's Bridge on a sim board whose chips are outside).
    key: the signing key if already loaded (else read from device_dir). receipts: an
    agent.runtime.receipts.Receipts, or None (the PUBACK retires a summary). ota: an
    agent.ota.fetch.Fetcher (signed updates over the same session), or None."""
    key = key or identity.load_key(device_dir)
    dev = device_id(key.public_key().to_sec1())
    # First, while the heap is emptiest: the manifest (read from flash, or built and kept there);
    # a board passes the (message, mh) it made before importing the rest (board_main.build).
    manifest, mh = manifest or manifest_file.ensure(device_dir, board, key, dev, BOARD)
    metrics = MetricSet(board, rng)
    sensors = open_sensors(board, now_ms, identifier_sink=metrics.identifier, seed=seed, street=street)
    progress = Progress(device_dir + "/" + PROGRESS)
    outbox = Outbox(device_dir + "/" + OUTBOX, outbox_bytes, outbox_count)
    floor = max(outbox.last_seq, progress.last_seq) + 1
    seqs = SeqAllocator(device_dir + "/" + SEQ, floor=floor, known=progress.found)
    if seqs.unqueued is not None and outbox.adopt_drops(*seqs.unqueued):
        seqs.clear_unqueued()  # summaries lost before the outbox could say so: now its drops to announce
    lkey = device_ledger_key(key)
    if receipts is not None:  # issue 23 hook: the Pi updater's health gate (agent/runtime/receipts.py)
        receipts.boot_seq = seqs.first

    return Agent(board, key, dev, district, metrics, sensors,
                 LedgerOpener(device_dir + "/" + LEDGER, lkey, progress, board.window_s), outbox, seqs, manifest, mh,
                 transport=transport, prefix=prefix, sink=sink, progress=progress, log=log, receipts=receipts, ota=ota)


DEVICE_RECORD = "device.json"


def init_device(device_dir, board_name, district, now_s, rng=None):
    """`civicmote device init` where the device lives: key (made here, kept if present), privacy
    ledger, the device record, and the signed manifest of the profile in the folder (if one is
    there and valid; else the agent makes it at its first start and says why the profile is
    bad). Returns the record with `created` (a new key was made)."""
    import json

    from agent import compat
    from agent.board import load_profile
    from agent.errors import ConfigError

    key, created = identity.ensure_key(device_dir, rng)
    create_ledger(device_dir, now_s, key)  # the budget starts with the identity; later, missing = closed
    dev, pub = identity.public_identity(key)
    if compat.file_exists(device_dir + "/" + BOARD):
        try:  # built here, while nothing else is in the heap; each boot then reads it
            manifest_file.ensure(device_dir, load_profile(device_dir + "/" + BOARD), key, dev, BOARD)
        except ConfigError:
            pass
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
