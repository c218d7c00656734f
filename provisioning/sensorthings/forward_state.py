"""What the forwarder remembers between runs: the server's ids and how far each device got (CPython only).

One JSON file, replaced atomically (write, fsync, rename) after every acknowledged batch, so a
crash leaves either the old or the new state, never half of one:

    {"server": URL, "ids": {"Thing:DEV": id, "Datastream:DS": id, ...},
     "devices": {DEV: last acknowledged seq},
     "inflight": {"device": DEV, "first": t1, "last": t1} or null}

"inflight" is written before a batch is sent and cleared once the server acknowledged it. If a
run stops in between, the next one asks the server which of that batch's windows it already
holds before sending the rest, so no Observation is created twice.
"""
import json
import os

from provisioning.errors import EnvironmentProblem, UsageError


class ForwardState:
    def __init__(self, path, server):
        self.path, self.server = str(path), server
        self.ids, self.devices, self.inflight = {}, {}, None
        try:
            with open(self.path, encoding="utf-8") as f:
                doc = json.load(f)
        except FileNotFoundError:
            return
        except (OSError, ValueError) as e:
            raise UsageError("%s: not a forwarder state file (%s); move it away to start over" % (self.path, e))
        if doc.get("server") != server:
            raise UsageError("%s: holds the state of forwarding to %s, not %s; give each server its own --state"
                             % (self.path, doc.get("server"), server))
        self.ids, self.devices, self.inflight = doc.get("ids", {}), doc.get("devices", {}), doc.get("inflight")

    def acknowledged(self, dev):
        """The seq of the device's last acknowledged summary, or None."""
        return self.devices.get(dev)

    def acknowledge(self, dev, seq):
        self.devices[dev] = seq
        self.inflight = None
        self.save()

    def begin(self, dev, first, last):
        self.inflight = {"device": dev, "first": first, "last": last}
        self.save()

    def remember(self, key, ident):
        self.ids[key] = ident
        self.save()

    def save(self):
        doc = {"server": self.server, "ids": self.ids, "devices": self.devices, "inflight": self.inflight}
        tmp = self.path + ".tmp"
        try:
            with open(tmp, "w", encoding="utf-8") as f:
                json.dump(doc, f, sort_keys=True)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        except OSError as e:
            raise EnvironmentProblem("%s: cannot write the forwarder's state (%s)" % (self.path, e.strerror))
