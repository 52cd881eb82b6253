"""Independent random streams from one integer seed, and the draws several modules share.

The same integer seeds both the data sets (`data.seed`) and the models (`seed`), and both
default to 0. Were they both `numpy.random.default_rng(0)`, the first random-features
direction would be exactly the data set's signal direction β₁ — a silent, catastrophic
correlation. Every consumer therefore draws from its own stream, SeedSequence(seed) with a
spawn key derived from its purpose: same (seed, purpose) ⇒ same numbers, different purposes
⇒ independent streams.
"""

import zlib

import numpy as np

from widthlab.checks import check_int


def rng_for(seed: int, purpose: str) -> np.random.Generator:
    """A numpy Generator for `seed`, independent of every other `purpose`."""
    key = zlib.crc32(purpose.encode())
    return np.random.default_rng(np.random.SeedSequence(int(seed), spawn_key=(key,)))


def uniform_sphere(rng: np.random.Generator, n: int, dim: int, radius: float) -> np.ndarray:
    """n points uniform on the sphere of radius `radius` in ℝ^dim, shape [n, dim], float64.

    A standard Gaussian is rotation invariant, so its direction is uniform on the sphere:
    x = radius · g / ‖g‖ with g ~ N(0, I), one row of `rng.standard_normal((n, dim))` each.
    """
    check_int("n", n)
    check_int("dim", dim)
    g = rng.standard_normal((n, dim))
    return radius * g / np.linalg.norm(g, axis=1, keepdims=True)
