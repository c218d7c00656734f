"""The city's trust anchor: who is a device, and which key speaks for it (CPython only).

Used by the city's provisioning operator: `ca` is the provisioning CA (its key encrypted at
rest, decrypted at most once per command), `pop` the host side of the proof of possession a
device gives before it is certified, `registry` the SQLite list of devices (status, district,
board, key, certificate, history) and `registry_export` the JSON export verifiers load.
Depends only on the device side (device/) and the shared modules.
"""
