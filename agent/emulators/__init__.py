"""Chip-level emulators and a scripted street, for tests and the `sim` board.

Deterministic given a seed and the time: every value is a function of (seed, now_ms),
drawn from a tiny PRNG of our own. Not privacy code: nothing here touches os.urandom.
"""
