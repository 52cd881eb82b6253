"""Independent random streams from one integer seed.

The same integer seeds both the data sets (`data.seed`) and the models (`seed`), and both
default to 0. Were they both `numpy.random.default_rng(0)`, the first random-features
direction would be exactly the data set's signal direction β₁ — a silent, catastrophic
correlation. Every consumer therefore draws from its own stream, SeedSequence(seed) with a
spawn key derived from its purpose: same (seed, purpose) ⇒ same numbers, different purposes
⇒ independent streams.
"""

import zlib

import numpy as np


def rng_for(seed: int, purpose: str) -> np.random.Generator:
    """A numpy Generator for `seed`, independent of every other `purpose`."""
    key = zlib.crc32(purpose.encode())
    return np.random.default_rng(np.random.SeedSequence(int(seed), spawn_key=(key,)))
