"""The city's trust anchor: who is a device, and which key speaks for it (CPython only).

Used by the city's provisioning operator: `ca` is the provisioning CA (its key encrypted at
rest, decrypted at most once per command), `pop` the host side of the proof of possession a
device gives before it is certified, `registry` the SQLite list of devices (status, district,
board, key, certificate, history), `registry_export` the JSON export verifiers load, and
`rollout_key` the city's online key for signing update orders, which the CA certifies (written
by broker-config beside the collector's identity; used by the rollout service); `certified_key`
loads such a key with the CA's certificate of it (the rollout key, the collector's receipts key).
Depends only on the device side (device/) and the shared modules.
"""
