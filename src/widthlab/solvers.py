"""Closed-form least-squares solvers for (random-)feature regression, float64.

Gradient descent and its closed form are in `widthlab.gradient_descent`, fits at many nested
widths in `widthlab.width_sweep`.

H ∈ ℝ^{n×d} has rows h(x_i), y ∈ ℝ^n. Conventions used throughout:

* Ridge (λ ≥ 0):  β̂_λ = argmin_β (1/n)‖y − Hβ‖² + λ‖β‖²
                       = Hᵀ(HHᵀ + nλI)⁻¹y = (HᵀH + nλI)⁻¹Hᵀy.
  λ = 0 means the minimum-norm least-squares solution β̂ = H⁺y, which is the minimum-norm
  interpolator when rank H = n (d ≥ n generically).
* Mei–Montanari (2019) fit f(x) = Σ_j a_j σ(⟨θ_j, x⟩/√D) over N = d features by minimising
  (1/n)Σ_i (y_i − f(x_i))² + (Nλ_MM/D)‖a‖². With h_j = σ(⟨θ_j, x⟩/√D)/√N, f = hᵀβ for
  β = √N·a, so ‖a‖² = ‖β‖²/N and their penalty is (λ_MM/D)‖β‖²:  λ_ours = λ_MM / D.
* Routes: ``"kernel"`` works with the n×n Gram K = HHᵀ (the finite-width kernel
  k(x, x') = h(x)·h(x')) and returns representer weights c = (K + nλI)⁺y, β̂ = Hᵀc,
  f̂(x) = Σ_i c_i k(x_i, x); ``"primal"`` works with the d×d Gram HᵀH. ``"auto"`` picks the
  smaller one (kernel iff d ≥ n). Both give H⁺y = Hᵀ(HHᵀ)⁺y = (HᵀH)⁺Hᵀy.
* Pseudo-inverse cutoff: the Gram is diagonalised by `numpy.linalg.eigh`; eigenvalues
  s_i ≤ rtol·s_max are set to zero, rtol = max(n, d)·ε₆₄ by default. eigh's eigenvalues carry
  an absolute error ~ε·s_max, so smaller ones are indistinguishable from zero; on H this drops
  singular values below √rtol·σ_max (numpy's lstsq drops those below rtol·σ_max, but working
  from H directly). Nothing is dropped unless κ(Gram) > 1/rtol, so d ≈ n stays stable.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from widthlab.distances import relative_distance

EPS = float(np.finfo(np.float64).eps)
ROUTES = ("auto", "kernel", "primal")


def default_rtol(n: int, d: int) -> float:
    """Relative eigenvalue cutoff max(n, d)·ε₆₄ applied to the Gram's spectrum."""
    return max(n, d) * EPS


def _problem(
    h: np.ndarray, y: np.ndarray, multi_output: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    h = np.asarray(h, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    ok_y = y.shape == (h.shape[0],) or (multi_output and y.ndim == 2 and y.shape[0] == h.shape[0])
    if h.ndim != 2 or not ok_y:
        shape = "[n] or [n, k]" if multi_output else "[n]"
        raise ValueError(f"H must be [n, d] and y {shape}; got H{h.shape}, y{y.shape}")
    return h, y


def _route(n: int, d: int, route: str) -> str:
    if route not in ROUTES:
        raise ValueError(f"route={route!r} is not supported; allowed: {list(ROUTES)}")
    if route == "auto":
        return "kernel" if d >= n else "primal"
    return route


def gram(h: np.ndarray, route: str) -> np.ndarray:
    """The route's Gram: HHᵀ (kernel, n × n) or HᵀH (primal, d × d)."""
    return h @ h.T if route == "kernel" else h.T @ h


def _check_ridge(ridge: float) -> float:
    if not np.isfinite(ridge) or ridge < 0:
        raise ValueError(f"ridge must be a finite number ≥ 0, got {ridge!r}")
    return float(ridge)


def _spectral_weights(s: np.ndarray, n: int, ridge: float, rtol: float) -> np.ndarray:
    """1/(s_i + nλ), with s_i ≤ rtol·s_max treated as exact zeros (dropped when λ = 0)."""
    keep = s > rtol * max(float(s[-1]), 0.0)
    if ridge > 0:
        return 1.0 / (np.where(keep, s, 0.0) + n * ridge)
    return np.where(keep, 1.0 / np.where(keep, s, 1.0), 0.0)


@dataclass(frozen=True)
class LinearSolution:
    """β̂, the route used, the Gram's eigenvalues (ascending, without nλ) and, on the kernel
    route, the representer weights c with β̂ = Hᵀc."""

    beta: np.ndarray
    route: str
    gram_eigenvalues: np.ndarray
    representer_weights: np.ndarray | None

    @property
    def gram_condition(self) -> float:
        """s_max / s_min of the (λ-free) Gram; inf if it is singular to working precision."""
        s = self.gram_eigenvalues
        return float(s[-1] / s[0]) if s[0] > 0 else float("inf")


def ridge_solution(
    h: np.ndarray,
    y: np.ndarray,
    ridge: float = 0.0,
    *,
    route: str = "auto",
    rtol: float | None = None,
) -> LinearSolution:
    """β̂_λ = Hᵀ(HHᵀ + nλI)⁺y = (HᵀH + nλI)⁺Hᵀy (module docstring: convention, cutoff).

    y may be [n] or [n, k] (k outputs solved at once, e.g. one-hot targets; β̂ is then [d, k]).
    """
    return ridge_path(h, y, [ridge], route=route, rtol=rtol)[0]


def ridge_path(
    h: np.ndarray,
    y: np.ndarray,
    ridges: Sequence[float],
    *,
    route: str = "auto",
    rtol: float | None = None,
    eigh: tuple[np.ndarray, np.ndarray] | None = None,
) -> list[LinearSolution]:
    """`ridge_solution` for several λ from one eigendecomposition of the Gram (`eigh`, the
    (eigenvalues, eigenvectors) of the route's Gram when the caller has them already)."""
    h, y = _problem(h, y, multi_output=True)
    ridges = [_check_ridge(r) for r in ridges]
    n, d = h.shape
    route = _route(n, d, route)
    rtol = default_rtol(n, d) if rtol is None else rtol
    s, v = eigh if eigh is not None else np.linalg.eigh(gram(h, route))
    rhs = v.T @ (y if route == "kernel" else h.T @ y)
    out = []
    for ridge in ridges:
        w = _spectral_weights(s, n, ridge, rtol)
        coef = v @ ((w[:, None] if y.ndim == 2 else w) * rhs)
        if route == "kernel":
            out.append(LinearSolution(h.T @ coef, route, s, coef))
        else:
            out.append(LinearSolution(coef, route, s, None))
    return out


def min_norm_solution(
    h: np.ndarray, y: np.ndarray, *, route: str = "auto", rtol: float | None = None
) -> LinearSolution:
    """β̂ = H⁺y: minimum-norm least squares; the min-norm interpolator if rank H = n."""
    return ridge_solution(h, y, 0.0, route=route, rtol=rtol)


@dataclass(frozen=True)
class KernelRidgeSolution:
    """c = (K + nλI)⁺y and the fitted values K c on the train (and k(X_test, X) c on test)."""

    weights: np.ndarray
    train_predictions: np.ndarray
    test_predictions: np.ndarray | None


def kernel_ridge_regression(
    k_train: np.ndarray,
    y: np.ndarray,
    k_test_train: np.ndarray | None = None,
    ridge: float = 0.0,
    *,
    rtol: float | None = None,
) -> KernelRidgeSolution:
    """Kernel ridge(less) regression f̂(x) = Σ_i c_i k(x_i, x), c = (K + nλI)⁺y.

    Same λ convention as `ridge_solution` (for K = HHᵀ the two agree exactly); with the
    infinite-width kernel E_α[σ(xᵀα)σ(x'ᵀα)] this is the d → ∞ limit of the random-features
    fit. λ = 0 is the minimum-RKHS-norm interpolator, with the same eigenvalue cutoff.
    """
    k, y = _problem(k_train, y, multi_output=True)
    n = k.shape[0]
    if k.shape != (n, n):
        raise ValueError(f"k_train must be square [n, n], got {k.shape}")
    s, v = np.linalg.eigh(k)
    w = _spectral_weights(s, n, _check_ridge(ridge), default_rtol(n, n) if rtol is None else rtol)
    if y.ndim == 2:  # several outputs (one-hot targets) share one eigendecomposition
        w = w[:, None]
    c = v @ (w * (v.T @ y))
    test = None
    if k_test_train is not None:
        k_test_train = np.asarray(k_test_train, dtype=np.float64)
        if k_test_train.ndim != 2 or k_test_train.shape[1] != n:
            raise ValueError(f"k_test_train must be [m, {n}], got {k_test_train.shape}")
        test = k_test_train @ c
    return KernelRidgeSolution(c, k @ c, test)


@dataclass(frozen=True)
class KKTResiduals:
    """KKT residuals of min ½‖β‖² s.t. Hβ = y, Lagrangian ½‖β‖² − cᵀ(Hβ − y):

    primal_feasibility = ‖Hβ − y‖/‖y‖;  stationarity = ‖β − Hᵀc‖/‖β‖ with c = argmin‖Hᵀc − β‖
    (least squares, independent of how β was obtained); distance_to_min_norm =
    ‖β − β_mn‖/‖β_mn‖ (nan when no reference was given); multipliers = c.
    """

    primal_feasibility: float
    stationarity: float
    distance_to_min_norm: float
    multipliers: np.ndarray


def kkt_residuals(
    h: np.ndarray, y: np.ndarray, beta: np.ndarray, beta_min_norm: np.ndarray | None = None
) -> KKTResiduals:
    """KKT check that β is the minimum-norm interpolator of (H, y); needs d ≥ n."""
    h, y = _problem(h, y)
    beta = np.asarray(beta, dtype=np.float64)
    if h.shape[1] < h.shape[0]:
        raise ValueError(f"interpolation needs d ≥ n; got H{h.shape}")
    c = np.linalg.lstsq(h.T, beta, rcond=None)[0]
    dist = float("nan") if beta_min_norm is None else relative_distance(beta, beta_min_norm)
    return KKTResiduals(relative_distance(h @ beta, y), relative_distance(h.T @ c, beta), dist, c)
