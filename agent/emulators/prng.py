"""A tiny deterministic PRNG (xorshift32) and a 32-bit mixing hash, seeded explicitly."""

M32 = 0xFFFFFFFF


def mix32(*vals):
    """Hash integers to 32 bits (murmur3-style finaliser over each value in turn)."""
    h = 0x9E3779B9
    for v in vals:
        h ^= v & M32
        h ^= v >> 32 & M32
        h = (h * 0x85EBCA6B) & M32
        h ^= h >> 13
        h = (h * 0xC2B2AE35) & M32
        h ^= h >> 16
    return h


def unit(*vals):
    """A float in [0, 1) from the hash of vals."""
    return mix32(*vals) / 4294967296.0


class Prng:
    def __init__(self, seed):
        self.s = (mix32(seed) or 1) & M32

    def next_u32(self):
        s = self.s
        s ^= (s << 13) & M32
        s ^= s >> 17
        s ^= (s << 5) & M32
        self.s = s
        return s

    def uniform(self):
        return self.next_u32() / 4294967296.0
