"""Flash storage that a power cut at any instant cannot corrupt.

- `atomic`: framed (magic, length, CRC-32) files written as tmp + fsync + rename.
- `outbox`: the bounded store-and-forward queue of signed summaries (one file per record).
- `seq`: sequence numbers that strictly increase across reboots, reserved in blocks.

See docs/delivery.md for the argument that these survive power loss.
"""
