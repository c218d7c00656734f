"""The city's side of signed updates (CPython only): release keys, bundles, release documents,
the rollout key, the rollout state and the rollout service. Wire format: docs/wire-format.md,
"Updates"; the operator's guide: docs/updates.md."""
