"""Signed updates over the air (docs/updates.md; formats in docs/wire-format.md, "Updates").

- `docs`: the release (what code is genuine: a pinned release key), the rollout order (who gets
  it when: the city's rollout key, certified by the provisioning CA) and the device-signed update
  status; making them on the host, checking them on the device.
- `bundle`: the archive a release of agent files carries, unpacked as a stream.
"""
