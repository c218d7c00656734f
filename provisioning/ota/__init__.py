"""The city's side of signed updates (CPython only): release keys, bundles, release documents,
the rollout state, its stages and the rollout service (the rollout key is pki/rollout_key.py). Wire format: docs/wire-format.md,
"Updates"; the operator's guide: docs/updates.md."""
