"""Read a registry export (`civicmote registry export --json`) into a KeyRing (CPython only).

Export format (contract): {"version": 1, "devices": [{"device_id", "public_key" (SEC1 hex),
"status" ("active" | "disabled" | "revoked"), "district", "board", "certificate", ...}]}. The copy `civicmote broker-config` writes (registry.json) also carries
"ca_public_key" (SEC1 hex): what checks a receipt's collector certificate (docs/wire-format.md).
"""
from agent.core.identity import device_id as derive_device_id
from provisioning import files
from provisioning.errors import UsageError


def load_export(path, ring):
    doc = files.read_json(path, "registry export")
    devices = doc.get("devices") if isinstance(doc, dict) else None
    if not isinstance(devices, list):
        raise UsageError("%s: not a registry export (no 'devices' list)" % path)
    for i, d in enumerate(devices):
        where = "%s: devices[%d]" % (path, i)
        if not isinstance(d, dict):
            raise UsageError("%s: must be an object" % where)
        try:
            sec1 = bytes.fromhex(d.get("public_key") or "")
            dev = derive_device_id(sec1)
        except Exception:
            raise UsageError("%s.public_key: not a SEC1 P-256 public key in hex" % where)
        if d.get("device_id") != dev:
            raise UsageError("%s.device_id: %r does not match its public key (%s)" % (where, d.get("device_id"), dev))
        status = d.get("status", "active")
        district = d.get("district")
        if district is not None and (not isinstance(district, str) or not district or "/" in district
                                     or "+" in district or "#" in district):
            raise UsageError("%s.district: %r is not a district name" % (where, district))
        if status == "active":
            try:
                ring.add_public_key(sec1, district)
            except Exception as e:  # not a point on P-256: the entry is bad input, named
                raise UsageError("%s.public_key: not a valid P-256 public key (%s); fix or re-export the registry"
                                 % (where, e))
        elif status in ("disabled", "revoked"):
            ring.refuse(dev, status, district)
        else:
            raise UsageError("%s.status: unknown status %r" % (where, status))
    return ring
