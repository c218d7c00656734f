"""The Pi's health gate: is the release on trial confirmed, out of time, or crash-looping? (CPython only)

A start of the agent on trial is confirmed when the city's signed receipt, as the agent keeps it
in DIR/receipt, covers a summary signed in that start: its `hi` reaches the first seq that start
could hand out (`mark`: the end of the block DIR/seq had reserved when the start began, read
while no agent runs, since every boot's numbering starts there), and it is newer than the receipt
the folder held then. The updater checks the receipt itself against the CA in the device folder,
so neither the old nor the new agent can confirm a release by writing a file.

Out of time: no such receipt within N windows (config.json `ota_health_windows`, default 3;
board.json `window_s`) of that start, measured on CLOCK_BOOTTIME within one boot (immune to the
wall clock stepping at NTP sync; a reboot is a new start, counted). Crash loop: a fourth start
of the same trial (MAX_STARTS = 3 starts that did not confirm).

Everything here is read from the agent's folder, which the agent controls: files are opened
without following symlinks, must be regular files, and are read up to a small cap.
"""
import io
import json
import os
import stat
import struct
import time

MAX_STARTS = 3
HEALTH_WINDOWS = 3
CAP = 64 * 1024


def read_small(device_dir, name, cap=CAP):
    """The bytes of DIR/name (no symlink, a regular file, at most cap bytes), or None."""
    try:
        fd = os.open(os.path.join(device_dir, name), os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        data = b""
        while len(data) <= cap:
            chunk = os.read(fd, cap + 1 - len(data))
            if not chunk:
                break
            data += chunk
        return data if len(data) <= cap else None
    finally:
        os.close(fd)


def _json(device_dir, name):
    raw = read_small(device_dir, name)
    try:
        v = json.loads(raw) if raw else {}
    except ValueError:
        return {}
    return v if isinstance(v, dict) else {}


def boot_id():
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            return f.read().strip()
    except OSError:
        return ""


def uptime():
    return time.clock_gettime(time.CLOCK_BOOTTIME)


def deadline_s(device_dir):
    """N windows of this device, in seconds."""
    n = _json(device_dir, "config.json").get("ota_health_windows", HEALTH_WINDOWS)
    w = _json(device_dir, "board.json").get("window_s", 300)
    n = n if isinstance(n, int) and 1 <= n <= 100 else HEALTH_WINDOWS
    w = w if isinstance(w, (int, float)) and w > 0 else 300
    return n * w


def _slot_payload(data, size):
    """The newest intact payload of a two-slot file's bytes (agent/store/slots.py), or None."""
    from agent.store import slots

    best = None
    f = io.BytesIO(data)
    for i in (0, 1):
        got = slots._read_slot(f, i * size, size)
        if got is not None and (best is None or got[0] > best[0]):
            best = got
    return best[1] if best else None


def seq_mark(device_dir):
    """The lowest seq the next start of the agent can hand out: the end of the reserved block in
    DIR/seq (agent/store/seq.py), and never below the progress file's last seq + 1."""
    from agent.store.progress import SLOT as PROGRESS_SLOT

    mark = 1
    raw = read_small(device_dir, "seq")
    p = _slot_payload(raw, 64) if raw else None
    if p is not None and len(p) in (8, 28):
        mark = max(mark, struct.unpack(">Q", p[:8])[0])
    raw = read_small(device_dir, "progress")
    p = _slot_payload(raw, PROGRESS_SLOT) if raw else None
    if p is not None and len(p) >= 8:
        mark = max(mark, struct.unpack(">Q", p[:8])[0] + 1)
    return mark


def _receipt_bytes(device_dir):
    from agent.runtime.receipts import FILE, SLOT

    raw = read_small(device_dir, FILE)
    return _slot_payload(raw, SLOT) if raw else None


def receipt(device_dir):
    """{"lo", "hi", "t"} of the receipt DIR/receipt holds, checked against the device folder's
    CA for this device, or None (none, or one that does not verify)."""
    from agent.core import receipt as rc
    from agent.core.identity import device_id
    from agent.crypto import verifying_key_from_sec1
    from agent.net.tls_files import der

    msg = _receipt_bytes(device_dir)
    ca = read_small(device_dir, "ca.crt")
    rec = _json(device_dir, "device.json")
    if not msg or not ca or not isinstance(rec.get("public_key"), str):
        return None
    try:
        dev = device_id(bytes.fromhex(rec["public_key"]))
        key = verifying_key_from_sec1(rc.ca_public_key(der(ca)))
        r = rc.Verifier(key, verifying_key_from_sec1).check(msg, dev, None, 2 ** 64)
    except Exception:  # noqa: BLE001 - anything that does not verify confirms nothing
        return None
    return {"lo": r["lo"], "hi": r["hi"], "t": r["t"]}


def start(trial, device_dir):
    """The trial after one more start of the agent (the agent unit's ExecStartPre)."""
    trial = dict(trial)
    trial["boots"] = trial.get("boots", 0) + 1
    trial["boot_id"], trial["started"] = boot_id(), uptime()
    trial["mark"] = seq_mark(device_dir)
    r = receipt(device_dir)
    trial["receipt_t"] = r["t"] if r else 0
    trial["deadline_s"] = deadline_s(device_dir)
    return trial


def verdict(trial, device_dir):
    """("confirmed", "") or ("rolled_back", reason) or None (still on trial)."""
    if trial.get("mark") is not None:
        r = receipt(device_dir)
        if r and r["hi"] >= trial["mark"] and r["t"] > trial.get("receipt_t", 0):
            return "confirmed", ""
    if trial.get("boots", 0) > MAX_STARTS:
        return "rolled_back", "crash_loop"
    if trial.get("started") is not None and trial.get("boot_id") == boot_id():
        if uptime() - trial["started"] >= trial.get("deadline_s", HEALTH_WINDOWS * 300):
            return "rolled_back", "health_timeout"
    return None
