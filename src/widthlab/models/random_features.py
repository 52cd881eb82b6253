"""Random-features model f(x) = h(x)ᵀβ with frozen first-layer weights.

    h_k(x) = σ(xᵀα_k) / √d,   k = 1..d,   f(x) = Σ_k β_k h_k(x),

with α_k ∈ ℝ^D drawn once at init and frozen, β ∈ ℝ^d learned (see `widthlab.solvers`), and
σ ∈ {relu, erf, tanh} (`widthlab.activations`, no rescaling). Everything here is numpy
float64.

Feature distributions (`feature_distribution`):

* ``"gaussian"``: α_k ~ N(0, I_D / D), so E[α αᵀ] = I/D and, for ‖x‖² = D, xᵀα ~ N(0, 1).
  As d → ∞, h(x)·h(x') → E_α[σ(xᵀα) σ(x'ᵀα)], the kernel of `widthlab.kernels`.
* ``"sphere"``: α_k uniform on the unit sphere S^{D-1}. With x on the sphere of radius √D this
  is exactly the Mei–Montanari (2019) feature σ(⟨θ_k, x⟩/√D) with θ_k = √D·α_k uniform on the
  sphere of radius √D; their coefficients a relate to ours by β = √d·a.

Nesting across widths: feature k is drawn from the generator stream right after features
1..k-1, so for one seed the first d columns of `draw_features(D, d', ...)` equal
`draw_features(D, d, ...)` for every d' ≥ d. Only the *unscaled* columns σ(xᵀα_k) are shared
between widths; the 1/√d in h depends on the width.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from widthlab.activations import get_activation
from widthlab.checks import check_choice, check_int
from widthlab.seeding import rng_for
from widthlab.solvers import ridge_solution

FEATURE_DISTRIBUTIONS = ("gaussian", "sphere")
RF_ACTIVATIONS = ("relu", "erf", "tanh")


def draw_features(
    dim: int, max_width: int, distribution: str = "gaussian", seed: int = 0
) -> np.ndarray:
    """First-layer weights A = [α_1, …, α_dmax] of shape [D, d_max], float64.

    Column k is generated from the stream `rng_for(seed, "features")` (independent of the
    data sets' streams for the same integer, `widthlab.seeding`) right after
    columns 1..k-1 (row-major draw of a [d_max, D] matrix), so ``A[:, :d]`` does not depend on
    ``max_width`` ≥ d: features are nested across widths. ``"gaussian"``: α ~ N(0, I/D);
    ``"sphere"``: α = g/‖g‖ with g ~ N(0, I), uniform on the unit sphere.
    """
    check_int("dim", dim)
    check_int("max_width", max_width)
    check_choice("distribution", distribution, FEATURE_DISTRIBUTIONS)
    g = rng_for(seed, "features").standard_normal((max_width, dim))
    if distribution == "gaussian":
        g /= np.sqrt(dim)
    else:
        g /= np.linalg.norm(g, axis=1, keepdims=True)
    # The transpose is Fortran-ordered, so every leading block A[:, :d] stays contiguous.
    return g.T


def feature_activations(x: np.ndarray, weights: np.ndarray, activation: str) -> np.ndarray:
    """Unscaled features S = σ(x A), shape [n, d]: the columns shared across nested widths."""
    check_choice("activation", activation, RF_ACTIVATIONS)
    x = np.asarray(x, dtype=np.float64)
    weights = np.asarray(weights, dtype=np.float64)
    if x.ndim != 2 or weights.ndim != 2 or x.shape[1] != weights.shape[0]:
        raise ValueError(
            f"x must be [n, D] and weights [D, d] with matching D; got x{x.shape}, "
            f"weights{weights.shape}"
        )
    pre = x @ weights
    # torch.from_numpy shares memory, so the activation costs no copy of the [n, d] block.
    return get_activation(activation)(torch.from_numpy(pre)).numpy()


def feature_map(x: np.ndarray, weights: np.ndarray, activation: str) -> np.ndarray:
    """H = σ(x A) / √d, shape [n, d], with d = weights.shape[1]: rows are h(x_i)."""
    s = feature_activations(x, weights, activation)
    s /= np.sqrt(weights.shape[1])
    return s


@dataclass(frozen=True)
class RandomFeaturesConfig:
    """Width d, input dimension D, activation σ, distribution of α, seed of the draw."""

    dim: int
    width: int
    activation: str = "relu"
    feature_distribution: str = "gaussian"
    seed: int = 0

    def __post_init__(self) -> None:
        check_int("dim", self.dim)
        check_int("width", self.width)
        check_choice("activation", self.activation, RF_ACTIVATIONS)
        check_choice("feature_distribution", self.feature_distribution, FEATURE_DISTRIBUTIONS)


@dataclass
class RandomFeaturesModel:
    """f(x) = h(x)ᵀβ with frozen A (drawn from `config`) and β fitted by ridge(less) LS.

    `fit` minimises (1/n)‖y − Hβ‖² + ridge·‖β‖² (ridge = 0: the minimum-norm least-squares
    solution); see `widthlab.solvers.ridge_solution` for the convention.
    """

    config: RandomFeaturesConfig
    weights: np.ndarray = field(init=False, repr=False)
    beta: np.ndarray | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        c = self.config
        self.weights = draw_features(c.dim, c.width, c.feature_distribution, c.seed)

    def features(self, x: np.ndarray) -> np.ndarray:
        """H = [h(x_1), …, h(x_n)]ᵀ, shape [n, d]."""
        return feature_map(x, self.weights, self.config.activation)

    def fit(self, x: np.ndarray, y: np.ndarray, ridge: float = 0.0) -> RandomFeaturesModel:
        """Solve for the readout β: ridge(less) regression of `y` on the features of `x`."""
        self.beta = ridge_solution(self.features(x), y, ridge).beta
        return self

    def predict(self, x: np.ndarray) -> np.ndarray:
        """The fitted model's predictions h(x)ᵀβ; fit first."""
        if self.beta is None:
            raise ValueError("the model is not fitted; call fit(x, y) first")
        return self.features(x) @ self.beta
