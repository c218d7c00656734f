"""The agent's side of updates on a Raspberry Pi (CPython only; runs as the unprivileged agent).

The download is the boards' (agent/ota/fetch.py: orders, release, blocks over the device's MQTT
session, a resumable `ota/part` hashed as it comes). What differs on a Pi is the installer: the
agent cannot write code, so PiInstaller *stages* the verified download for the root updater
(provisioning/device/pi_stage.py: `ota/stage/{release.cose, order.cose, artefact}`, then
`ready`), which checks it all again, installs it on trial, judges the trial and rolls back. The
updater's verdict comes back in `ota/pi_result`; at every start the agent copies it into its
update state (agent/ota/state.py), so its device-signed status reports it (trial, confirmed,
rolled_back or refused, with the reason) and a rolled-back seq is never fetched again.

Updates are on when this process runs from an install root (ROOT/releases/<seq>, with
ROOT/state.json) and talks TLS to its broker (the CA it holds checks rollout orders).
"""
import hashlib
import json
import os

from agent.ota import docs
from agent.ota.trust import Trust
from provisioning.device import pi_stage

ORDER = os.path.join("ota", "order")  # the last order accepted (the updater checks it again)
SYNCED = os.path.join("ota", "pi_synced")  # which pi_result the update state has taken


def code_dir():
    """The release folder this process runs from (its agent/ and provisioning/ packages)."""
    import agent

    return os.path.dirname(os.path.dirname(os.path.realpath(agent.__file__)))


def install_root():
    """ROOT when this process runs from ROOT/releases/<seq> of an install root, else None."""
    rel = code_dir()
    parent = os.path.dirname(rel)
    if os.path.basename(parent) != "releases" or not os.path.basename(rel).isdigit():
        return None
    root = os.path.dirname(parent)
    return root if os.path.isfile(os.path.join(root, "state.json")) else None


def running_sw():
    """(seq, first 4 bytes of the release hash) of the code this process runs: the release.cose the
    updater put beside it; (0, 4 zero bytes) for the factory code."""
    try:
        with open(os.path.join(code_dir(), "release.cose"), "rb") as f:
            msg = f.read(docs.MAX_DOC + 1)
        from agent.core import cbor, cose

        return cbor.loads(cose.decode1(msg).payload, max_depth=4)["seq"], hashlib.sha256(msg).digest()[:4]
    except Exception:  # noqa: BLE001 - factory code (no file), or one that does not parse: factory
        return 0, b"\x00\x00\x00\x00"


class PiTrust(Trust):
    """The device's Trust, keeping the last order it accepted in ota/order (the updater needs it)."""

    def __init__(self, device_dir, *a, **kw):
        Trust.__init__(self, *a, **kw)
        self.path = os.path.join(device_dir, ORDER)

    def check_order(self, message, dev, district, wall, last_seq):
        o = Trust.check_order(self, message, dev, district, wall, last_seq)
        from agent.compat import write_file_atomic

        write_file_atomic(self.path, bytes(message))
        return o


def read_result(device_dir):
    try:
        with open(os.path.join(device_dir, pi_stage.RESULT)) as f:
            r = json.load(f)
        return r if isinstance(r, dict) and r.get("state") in docs.STATES else None
    except (OSError, ValueError):
        return None


class PiInstaller:
    """agent/ota/fetch.py's installer on a Pi: hand the download to the root updater."""

    limit = pi_stage.MAX_BUNDLE

    def __init__(self, device_dir, log=None):
        self.device_dir = device_dir
        self.log = log or (lambda text: None)
        self.fetcher = None  # set by open_fetcher: the updater's later verdicts go into its state
        self.confirmed = None  # the seq this agent found confirmed (the updater will say so too)
        self._seen = None

    def install(self, doc, release_cose, part_path):
        """Stage it: release, order, artefact (the part, renamed), then `ready` last."""
        from agent.compat import write_file_atomic

        stage = os.path.join(self.device_dir, pi_stage.STAGE)
        os.makedirs(stage, exist_ok=True)
        with open(os.path.join(self.device_dir, ORDER), "rb") as f:
            order = f.read(docs.MAX_DOC + 1)
        write_file_atomic(os.path.join(stage, pi_stage.RELEASE), bytes(release_cose))
        write_file_atomic(os.path.join(stage, pi_stage.ORDER), order)
        os.replace(part_path, os.path.join(stage, pi_stage.ARTEFACT))
        write_file_atomic(os.path.join(stage, pi_stage.READY), b"%d\n" % doc["seq"])
        self.log("update %d staged for the updater" % doc["seq"])

    def trial(self):
        """(seq, hash) of the release on trial, from the updater's result, or None."""
        r = read_result(self.device_dir)
        if r is not None and self.fetcher is not None and (r["state"], r.get("t")) != self._seen:
            if self._seen is not None:  # a verdict since this agent started (a refusal restarts nothing)
                sync(self.fetcher.state, self.device_dir, self.log)
                self.fetcher._status_due = True
            self._seen = (r["state"], r.get("t"))
        if r is None or r["state"] != "trial" or r["rseq"] == self.confirmed:
            return None
        return r["rseq"], bytes.fromhex(r.get("release") or "")

    def confirm(self):
        """The agent's own gate passed; the root updater confirms by itself, from the receipt it checks."""
        t = self.trial()
        self.confirmed = t[0] if t else None


def sync(state, device_dir, log=None):
    """Copy the updater's last verdict into the agent's update state (at start): the status then
    reports it, a confirmed release becomes the installed one, a refused or rolled-back seq is
    never fetched again. Stage files are removed once the updater has taken them."""
    r = read_result(device_dir)
    if r is None:
        return False
    mark = os.path.join(device_dir, SYNCED)
    try:
        with open(mark) as f:
            if f.read().strip() == "%s %s" % (r.get("t"), r["state"]):
                return False  # taken before: a later download's status is not overwritten by it
    except OSError:
        pass
    seq, h = r.get("rseq", 0), bytes.fromhex(r.get("release") or "")
    if r["state"] == "confirmed":
        state.sw, state.d = seq, h
    elif r["state"] in ("rolled_back", "refused") and seq > state.bad and r.get("reason") != "disk":
        state.bad = seq
    state.report(r["state"], r.get("reason", ""), seq, h)
    stage = os.path.join(device_dir, pi_stage.STAGE)
    if not os.path.exists(os.path.join(stage, pi_stage.READY)):  # taken by the updater
        for name in (pi_stage.RELEASE, pi_stage.ORDER, pi_stage.ARTEFACT):
            try:
                os.remove(os.path.join(stage, name))
            except OSError:
                pass
    try:
        state.save()
        from agent.compat import write_file_atomic

        write_file_atomic(mark, ("%s %s" % (r.get("t"), r["state"])).encode())
    except OSError:
        return False
    if log:
        log("update: the updater says %s %s (release %d)" % (r["state"], r.get("reason", ""), seq))
    return True


def open_fetcher(device_dir, dev, district, key, ca_der, prefix, log=None):
    """The update fetcher of a Pi agent, or None when this process does not run from an install root."""
    if install_root() is None:
        return None
    from agent.core.receipt import ca_public_key
    from agent.crypto import verifying_key_from_sec1
    from agent.ota.fetch import Fetcher

    keys = docs.load_release_keys(device_dir + "/release_keys")
    trust = PiTrust(device_dir, verifying_key_from_sec1(ca_public_key(ca_der)), keys, verifying_key_from_sec1)
    installer = PiInstaller(device_dir, log)
    f = Fetcher(device_dir, dev, district, key, trust, installer, running=running_sw(), prefix=prefix, log=log)
    sync(f.state, device_dir, log)
    installer.fetcher = f
    installer.trial()  # what the result says now is what sync() took
    f._status_due = f.state.st is not None
    return f
