"""A Linux device's own side (CPython only): what runs on the Raspberry Pi or in a simulated
device's folder, where the private key lives.

`devicedir` is the device's state folder, `actions` the device side of provisioning (make or
show the identity, answer the proof of possession: behind `civicmote device init|show|pop`),
`runner` runs the agent on CPython (paho transport, systemd watchdog, `civicmote run`).
Updates over the air on a Pi (docs/updates-pi.md): `release_keys` the release keys a device pins,
`updater` the root-run updater (with `pi_root`, `pi_stage`, `pi_health`), `pi_agent` the agent's
side of it, `pi_units` the systemd units (the agent's too).
Used by the command line, by folder targets, and over ssh; depends only on the shared modules
and agent/.
"""
