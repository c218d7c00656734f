"""Differential privacy at the edge: the only path by which personal metrics leave a device.

policy.parse_dp validates a metric's dp block; contributions.open_window starts a window's
clamped state; release.release_window charges the ledger and releases noisy statistics;
manifest.build_manifest states publicly what is released (worded for residents on the host,
by provisioning.language.manifest_words). See docs/privacy.md.
"""
