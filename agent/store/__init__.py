"""Flash storage that a power cut at any instant cannot corrupt.

- `atomic`: framed (magic, length, CRC-32) files written as tmp + fsync + rename.
- `slots`: small state rewritten in place in one of two fixed slots (no allocation, so a full
  disk cannot fail it): the sequence file, the progress file, the outbox index, the ledger.
- `outbox`: the bounded store-and-forward queue of signed summaries (a ring of preallocated
  segments; `drops`: what it dropped and has not yet announced).
- `seq`: sequence numbers that strictly increase across reboots and lost state, reserved in blocks.
- `progress`: the last seq queued, the last window end and the ledger generation.

See docs/delivery.md for the argument that these survive power loss.
"""
