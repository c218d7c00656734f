"""What the forwarder remembers between runs: the server's ids and how far each device got (CPython only).

One JSON file, replaced atomically (write, fsync, rename) after every acknowledged batch and
every entity created, so a crash leaves either the old or the new state, never half of one:

    {"server": URL, "ids": {"Thing:DEV": id, "Datastream:DS": id, ...}, "devices": {DEV: last acknowledged seq}}

A batch sent but not acknowledged here is found again by the next run, which asks the server
which of it it already holds (forward.py).
"""
import json
import os

from provisioning.errors import EnvironmentProblem, UsageError


class ForwardState:
    def __init__(self, path, server):
        self.path, self.server = str(path), server
        self.ids, self.devices = {}, {}
        self.checked = set()  # devices whose first batch this process checked against the server (not saved)
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
        self.ids, self.devices = doc.get("ids", {}), doc.get("devices", {})

    def acknowledged(self, dev):
        """The seq of the device's last acknowledged summary, or None."""
        return self.devices.get(dev)

    def acknowledge(self, dev, seq):
        self.devices[dev] = seq
        self.save()

    def remember(self, key, ident):
        self.ids[key] = ident
        self.save()

    def save(self):
        doc = {"server": self.server, "ids": self.ids, "devices": self.devices}
        tmp = self.path + ".tmp"
        try:
            with open(tmp, "w", encoding="utf-8") as f:
                json.dump(doc, f, sort_keys=True)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        except OSError as e:
            raise EnvironmentProblem("%s: cannot write the forwarder's state (%s)" % (self.path, e.strerror))
