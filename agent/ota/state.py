"""What a device remembers about updates (portable): `ota/state` in the device folder.

A two-slot file (agent/store/slots.py: a power cut tears at most the slot being written, the other
holds the value before), CBOR map:

    sw, d     the installed (confirmed) release: seq and SHA-256 of its COSE bytes (0, b"": factory)
    bad       the highest release seq refused after its signature verified, or rolled back: a
              release is accepted only above it and above sw ("never retried automatically")
    os, oh    the last order accepted: its seq (an order is accepted only above it) and the first
              8 bytes of its hash (the same order again, retained or asked for, is no replay)
    dl        the download in progress: [release hash, offset persisted] or absent; its release
              document is the file `ota/release`, its bytes `ota/part`
    st        the last status to report: [state, reason, release seq, release hash]; kept so that
              a status decided at boot (trial, rolled_back) is published once the network is up

Device state proper (ledger, seq, progress, outbox, receipts) is elsewhere and never touched by
an update. Nothing here is secret.
"""
from agent.core import cbor
from agent.store.slots import SlotFile

DIR = "ota"
STATE = "state"
RELEASE = "release"
PART = "part"
SLOT = 320
FACTORY = (0, b"")


def ota_dir(device_dir):
    return device_dir + "/" + DIR


def ensure_dir(device_dir):
    import os

    try:
        os.mkdir(ota_dir(device_dir))
    except OSError:
        pass  # it exists (EEXIST); any other failure shows at the first write


class OtaState:
    """OtaState(device_dir): the fields above as attributes; save() writes them (in place)."""

    def __init__(self, device_dir):
        self.dir = ota_dir(device_dir)
        self._file = SlotFile(self.dir + "/" + STATE, SLOT)
        self.sw, self.d = FACTORY
        self.bad = 0
        self.os = 0
        self.oh = b""
        self.dl = None
        self.st = None
        self.write_errors = 0
        try:
            raw = self._file.read()
            m = cbor.loads(raw, max_depth=3) if raw is not None else {}
        except Exception:  # noqa: BLE001 - damaged: start from nothing known (seqs only go up from here)
            m = {}
        if isinstance(m, dict):
            self.sw = m.get("sw", 0)
            self.d = m.get("d", b"")
            self.bad = m.get("bad", 0)
            self.os = m.get("os", 0)
            self.oh = m.get("oh", b"")
            self.dl = m.get("dl")
            self.st = m.get("st")

    def save(self):
        m = {"sw": self.sw, "d": self.d, "bad": self.bad, "os": self.os, "oh": self.oh}
        if self.dl is not None:
            m["dl"] = self.dl
        if self.st is not None:
            m["st"] = self.st
        try:
            self._file.write(cbor.dumps(m))
        except OSError:
            import os

            try:  # the folder itself may be missing (a device provisioned before updates existed)
                os.mkdir(self.dir)
                self._file.write(cbor.dumps(m))
            except OSError:
                self.write_errors += 1
                raise

    def report(self, state, reason="", rseq=0, release=b""):
        self.st = [state, reason, rseq, release]


def installed_sw(device_dir):
    """(seq, first 4 bytes of the release hash) of the installed software, for the manifest's
    `sw`: (0, 4 zero bytes) for factory software or a device without updates."""
    s = OtaState(device_dir)
    return s.sw, (bytes(s.d[:4]) if s.d else b"\x00\x00\x00\x00")
