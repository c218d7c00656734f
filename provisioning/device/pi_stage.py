"""What the agent staged, verified again by the root-run updater, then unpacked (CPython only).

The agent (unprivileged, agent/ota) downloads and checks a release, then stages it in its folder:

    DIR/ota/stage/release.cose   the release document (COSE_Sign1)
    DIR/ota/stage/order.cose     the rollout order that points at it
    DIR/ota/stage/artefact       the bundle, exactly `size` bytes
    DIR/ota/stage/ready          written last (any content): the updater's path unit starts on it

The updater trusts none of it: the agent may be compromised. It checks the order against the CA
and the release against the release keys it pinned at install time (ROOT/trust/, root's, copied
from the device folder when the technician installed the root; never re-read from the agent's
folder, which the agent could rewrite), the class, seq, state format and expiry (agent/ota/docs.py),
then copies the artefact into ROOT/incoming while hashing it, and compares size and SHA-256
before anything parses it. Only then is the copy (root's own, which the agent cannot change
under it) unpacked into releases/<seq>.partial and renamed to releases/<seq> once synced.

Files in the agent's folder are opened without following symlinks, must be regular files and are
read up to their signed size (+1 byte, to see trailing bytes): a FIFO, a symlink to /dev/zero or
to a root-only file gets the updater nowhere.
"""
import hashlib
import os
import shutil
import stat

from agent.ota import bundle, docs
from provisioning.device import pi_root

STAGE = os.path.join("ota", "stage")
RELEASE, ORDER, ARTEFACT, READY = "release.cose", "order.cose", "artefact", "ready"
RESULT = os.path.join("ota", "pi_result")  # the updater's verdict, for the agent (updater.py writes it)
TRUST = "trust"
TRUST_FILES = ("release_keys", "ca.crt", "device.json")  # pinned at install time, from the device folder
MAX_BUNDLE = 64 * 1024 * 1024  # the Pi's "slot": a release bigger than this is refused (too_big)
COPY_CHUNK = 64 * 1024


class Rejected(Exception):
    """The staged release is not installed. reason: a docs.REASONS code; rseq/release if known."""

    def __init__(self, reason, text, rseq=0, release=b""):
        super().__init__(text)
        self.reason, self.rseq, self.release = reason, rseq, release


def _open_dir(parent_fd, name):
    return os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=parent_fd)


def open_stage(device_dir):
    """A descriptor of DIR/ota/stage (each part opened without following a symlink), or None."""
    fds = []
    try:
        fds.append(os.open(device_dir, os.O_RDONLY | os.O_DIRECTORY))
        for part in STAGE.split(os.sep):
            fds.append(_open_dir(fds[-1], part))
    except OSError:
        for fd in fds:
            os.close(fd)
        return None
    for fd in fds[:-1]:
        os.close(fd)
    return fds[-1]


def is_ready(stage_fd):
    try:
        os.stat(READY, dir_fd=stage_fd, follow_symlinks=False)
        return True
    except OSError:
        return False


def consume(stage_fd):
    """Remove the `ready` mark (the path unit would start the updater again and again)."""
    try:
        os.unlink(READY, dir_fd=stage_fd)
    except OSError:
        pass


def _open_file(stage_fd, name):
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=stage_fd)
    except OSError as e:
        raise Rejected("malformed", "%s: cannot be opened (%s)" % (name, e.strerror))
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise Rejected("malformed", "%s: not a regular file" % name)
    return fd


def _read_doc(stage_fd, name):
    fd = _open_file(stage_fd, name)
    try:
        data = os.read(fd, docs.MAX_DOC + 1)
    finally:
        os.close(fd)
    if len(data) > docs.MAX_DOC:
        raise Rejected("malformed", "%s: more than %d bytes" % (name, docs.MAX_DOC))
    return data


def pin_trust(root, device_dir):
    """Copy the trust anchors from the device folder into ROOT/trust (at install time, by root)."""
    dest = os.path.join(root, TRUST)
    os.makedirs(dest, exist_ok=True)
    for name in TRUST_FILES:
        src = os.path.join(device_dir, name)
        if os.path.exists(src):
            with open(src, "rb") as f:
                pi_root.write_atomic(os.path.join(dest, name), f.read())


def trust(root):
    """(release keys, CA verifying key or None, device id or None, district or None) pinned in ROOT/trust."""
    import json

    from agent.core import receipt
    from agent.core.identity import device_id
    from agent.crypto import verifying_key_from_sec1
    from agent.net.tls_files import der

    t = os.path.join(root, TRUST)
    keys = docs.load_release_keys(os.path.join(t, "release_keys"))
    ca = dev = district = None
    try:
        with open(os.path.join(t, "ca.crt"), "rb") as f:
            ca = verifying_key_from_sec1(receipt.ca_public_key(der(f.read())))
    except Exception:  # noqa: BLE001 - no usable CA (missing, not P-256): every order is refused
        ca = None
    try:
        with open(os.path.join(t, "device.json")) as f:
            rec = json.load(f)
        dev, district = device_id(bytes.fromhex(rec["public_key"])), rec.get("district")
    except (OSError, ValueError, KeyError, TypeError):
        pass
    return keys, ca, dev, district


def check_docs(root, stage_fd, st, now):
    """(release map, release hash, release bytes) of the staged release if it may be installed
    here, else Rejected."""
    from agent.crypto import verifying_key_from_sec1

    rel, order = _read_doc(stage_fd, RELEASE), _read_doc(stage_fd, ORDER)
    keys, ca, dev, district = trust(root)
    if ca is None or dev is None:
        raise Rejected("wrong_signer", "%s/trust: no CA or device record pinned; re-run the updater's init" % root)
    try:
        o = docs.check_order(order, ca, verifying_key_from_sec1, dev, district, now, None)
        if not o["release"]:
            raise docs.Refused("stopped", "order: a stop order (no release)")
        if not docs.includes(o, dev):
            raise docs.Refused("not_member", "order: this device is neither named nor drawn")
        r = docs.check_release(rel, o, keys, verifying_key_from_sec1, docs.device_classes(), st["installed"]["seq"],
                               max(st["bad"] or [0]), now, MAX_BUNDLE)
    except docs.Refused as e:
        raise Rejected(e.reason, str(e))
    if r["comp"] != "agent":
        raise Rejected("wrong_class", "release: a %r image, and a Pi installs agent bundles" % r["comp"], r["seq"])
    return r, docs.doc_hash(rel), rel


def copy_artefact(root, stage_fd, r, rhash, crash=None):
    """Copy the staged artefact to ROOT/incoming/<seq>.bundle, hashing exactly what is copied;
    -> its path. Rejected bad_size (shorter, or bytes past `size`) or bad_digest."""
    inc = os.path.join(root, pi_root.INCOMING)
    os.makedirs(inc, exist_ok=True)
    dest = os.path.join(inc, "%d.bundle" % r["seq"])
    src = _open_file(stage_fd, ARTEFACT)
    h, n = hashlib.sha256(), 0
    try:
        out = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
        try:
            while n <= r["size"]:
                b = os.read(src, min(COPY_CHUNK, r["size"] + 1 - n))
                if not b:
                    break
                h.update(b[:max(0, r["size"] - n)])
                n += len(b)
                os.write(out, b)
                if crash and n >= r["size"] // 2:
                    crash("copy")
            os.fsync(out)
        finally:
            os.close(out)
    finally:
        os.close(src)
    bad = None
    if n != r["size"]:
        bad = Rejected("bad_size", "artefact: %s than the %d bytes the release declares" %
                       ("longer" if n > r["size"] else "%d bytes, shorter" % n, r["size"]), r["seq"], rhash)
    elif h.digest() != r["sha256"]:
        bad = Rejected("bad_digest", "artefact: its SHA-256 is not the one the release declares", r["seq"], rhash)
    if bad:
        os.unlink(dest)
        raise bad
    return dest


def unpack(root, path, r, release_cose, crash=None):
    """Unpack the verified copy into releases/<seq> (via <seq>.partial, synced, renamed)."""
    final = pi_root.release_dir(root, r["seq"])
    part = final + ".partial"
    for d in (part, final):
        shutil.rmtree(d, ignore_errors=True)  # leftovers of a cut run; never a folder the state names
    os.makedirs(part)
    count = [0]

    def open_file(rel):
        dest = os.path.join(part, *rel.split("/"))
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        count[0] += 1
        if crash and count[0] == 20:
            crash("unpack")
        return open(dest, "wb")

    with open(path, "rb") as f:
        bundle.unpack(f.read, open_file, r["size"])
    with open(os.path.join(part, "release.cose"), "wb") as f:
        f.write(release_cose)
    os.sync()  # every file on disk before the folder gets the name `current` may point at
    os.rename(part, final)
    pi_root._fsync_dir(os.path.dirname(final))
    os.unlink(path)
    return final
