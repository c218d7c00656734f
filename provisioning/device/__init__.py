"""A Linux device's own side (CPython only): what runs on the Raspberry Pi or in a simulated
device's folder, where the private key lives.

`devicedir` is the device's state folder, `actions` the device side of provisioning (make or
show the identity, answer the proof of possession: behind `civicmote device init|show|pop`),
and `runner` runs the agent on CPython (paho transport, systemd watchdog, `civicmote run`).
Used by the command line, by folder targets, and over ssh; depends only on the shared modules
and agent/.
"""
