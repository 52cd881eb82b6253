"""Asymptotic test error of random-features regression and of min-norm linear regression.

Mei & Montanari (2019), "The generalization error of random features regression: precise
asymptotics and double descent curve" (arXiv:1908.05355). Setting: x uniform on the sphere of
radius √D in ℝ^D; y = ⟨β₁, x⟩ + f_NL(x) + ε with ‖β₁‖ = F₁, E[f_NL²] = F★², ε ~ N(0, τ²);
features σ(⟨θ_j, x⟩/√D), θ_j uniform on the sphere of radius √D, j ≤ N; coefficients a fitted
by  min_a (1/n)Σ_i (y_i − Σ_j a_j σ(⟨θ_j, x_i⟩/√D))² + (Nλ/D)‖a‖².  As N, n, D → ∞ with
ψ₁ = N/D, ψ₂ = n/D, the test error R = E_x[(f★(x) − f̂(x))²] (noise-free target f★) tends to

    R = F₁²·B(ζ, ψ₁, ψ₂, λ̄) + (τ² + F★²)·V(ζ, ψ₁, ψ₂, λ̄) + F★²,   λ̄ = λ/μ★²,

with μ₀ = E[σ(G)], μ₁ = E[Gσ(G)], μ★² = E[σ(G)²] − μ₀² − μ₁², ζ = μ₁/μ★ (G ~ N(0, 1)),
B = E₁/E₀, V = E₂/E₀ and E₀, E₁, E₂ the polynomials in `mm_bias_variance` evaluated at
χ = ν₁ν₂, where (ν₁, ν₂) solve at ξ = i(ψ₁ψ₂λ̄)^{1/2}

    ν₁ = ψ₁(−ξ − ν₂ − ζ²ν₂/(1 − ζ²ν₁ν₂))⁻¹,   ν₂ = ψ₂(−ξ − ν₁ − ζ²ν₁/(1 − ζ²ν₁ν₂))⁻¹.

On the imaginary axis ν₁ = ia, ν₂ = ib with a, b > 0, so χ = −p, p = ab > 0; eliminating a
and b leaves the scalar equation  s²p = (ψ₁ − g(p))(ψ₂ − g(p)),  g(p) = p + ζ²p/(1 + ζ²p),
s² = ψ₁ψ₂λ̄, with a unique root in (0, p₀), g(p₀) = min(ψ₁, ψ₂). At λ = 0 the root is p₀, i.e.
χ = −[(ψζ² − ζ² − 1) + ((ψζ² − ζ² − 1)² + 4ζ²ψ)^{1/2}]/(2ζ²), ψ = min(ψ₁, ψ₂) (their ridgeless
theorem). The ridgeless risk diverges at ψ₁ = ψ₂ whenever F₁² + τ² + F★² > 0: both B and V
blow up there, so even a noiseless linear target (τ = F★ = 0, F₁ > 0) gives an infinite peak.

λ conventions: `widthlab.solvers` minimises (1/n)‖y − Hβ‖² + λ_ours‖β‖² with h_j = σ_j/√N, so
β = √N·a and λ_ours = λ_MM/D (`mm_ridge_from_ours`). All risks here are excess risks.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from scipy import integrate, optimize

from widthlab.activations import get_activation
from widthlab.models.random_features import draw_features, feature_activations
from widthlab.seeding import uniform_sphere
from widthlab.solvers import min_norm_solution
from widthlab.width_sweep import limit_blas_threads, width_sweep


@dataclass(frozen=True)
class ActivationMoments:
    """μ₀ = E[σ(G)], μ₁ = E[Gσ(G)], μ★ = (E[σ(G)²] − μ₀² − μ₁²)^{1/2}, G ~ N(0, 1)."""

    mu0: float
    mu1: float
    mu_star: float

    @property
    def zeta(self) -> float:
        """ζ = μ₁/μ★, the ratio of linear to nonlinear feature energy."""
        return self.mu1 / self.mu_star


def activation_moments(activation: str) -> ActivationMoments:
    """Moments of σ under N(0, 1): closed form for relu (μ₀ = 1/√(2π), μ₁ = 1/2,
    E[σ²] = 1/2), adaptive Gaussian quadrature otherwise."""
    if activation == "relu":
        mu0, mu1, second = 1.0 / np.sqrt(2.0 * np.pi), 0.5, 0.5
    else:
        act = get_activation(activation)

        def sigma(u: float) -> float:
            return float(act(torch.tensor(u, dtype=torch.float64)))

        def gauss_mean(fn) -> float:
            dens = 1.0 / np.sqrt(2.0 * np.pi)
            parts = [
                integrate.quad(lambda u: fn(u) * np.exp(-u * u / 2), lo, hi, epsabs=1e-13)
                for lo, hi in ((-np.inf, 0.0), (0.0, np.inf))
            ]
            return dens * sum(p[0] for p in parts)

        mu0 = gauss_mean(sigma)
        mu1 = gauss_mean(lambda u: u * sigma(u))
        second = gauss_mean(lambda u: sigma(u) ** 2)
    return ActivationMoments(mu0, mu1, float(np.sqrt(second - mu0**2 - mu1**2)))


def mm_ridge_from_ours(ridge: float, dim: int) -> float:
    """λ_MM = D·λ_ours (module docstring)."""
    return ridge * dim


def mm_chi(zeta: float, psi1: float, psi2: float, lambda_bar: float) -> float:
    """χ = ν₁ν₂ at ξ = i(ψ₁ψ₂λ̄)^{1/2} (negative real); closed form at λ̄ = 0."""
    if min(psi1, psi2) <= 0 or lambda_bar < 0 or zeta <= 0:
        raise ValueError("need psi1, psi2, zeta > 0 and lambda_bar ≥ 0")
    z2, psi = zeta**2, min(psi1, psi2)
    u = psi * z2 - z2 - 1.0
    root = np.sqrt(u * u + 4.0 * z2 * psi)
    # p₀ = (u + root)/(2ζ²), the positive root of ζ²p² − up − ψ = 0, without cancellation.
    p0 = (u + root) / (2.0 * z2) if u >= 0 else 2.0 * psi / (root - u)
    if lambda_bar == 0:
        return -p0
    s2 = psi1 * psi2 * lambda_bar

    def residual(p: float) -> float:
        g = p + z2 * p / (1.0 + z2 * p)
        return s2 * p - (psi1 - g) * (psi2 - g)

    return -optimize.brentq(residual, 0.0, p0, xtol=1e-15 * p0, rtol=1e-15)


def mm_bias_variance(
    zeta: float, psi1: float, psi2: float, lambda_bar: float
) -> tuple[float, float]:
    """(B, V) = (E₁/E₀, E₂/E₀) of Mei–Montanari's Definition, with χ from `mm_chi`:

    E₀ = −χ⁵ζ⁶ + 3χ⁴ζ⁴ + (ψ₁ψ₂ − ψ₂ − ψ₁ + 1)χ³ζ⁶ − 2χ³ζ⁴ − 3χ³ζ²
         + (ψ₁ + ψ₂ − 3ψ₁ψ₂ + 1)χ²ζ⁴ + 2χ²ζ² + χ² + 3ψ₁ψ₂χζ² − ψ₁ψ₂,
    E₁ = ψ₂χ³ζ⁴ − ψ₂χ²ζ² + ψ₁ψ₂χζ² − ψ₁ψ₂,
    E₂ = χ⁵ζ⁶ − 3χ⁴ζ⁴ + (ψ₁ − 1)χ³ζ⁶ + 2χ³ζ⁴ + 3χ³ζ² + (−ψ₁ − 1)χ²ζ⁴ − 2χ²ζ² − χ².
    """
    x = mm_chi(zeta, psi1, psi2, lambda_bar)
    z2, z4, z6, pp = zeta**2, zeta**4, zeta**6, psi1 * psi2
    e0 = (
        -(x**5) * z6
        + 3 * x**4 * z4
        + (pp - psi2 - psi1 + 1) * x**3 * z6
        - 2 * x**3 * z4
        - 3 * x**3 * z2
        + (psi1 + psi2 - 3 * pp + 1) * x**2 * z4
        + 2 * x**2 * z2
        + x**2
        + 3 * pp * x * z2
        - pp
    )
    e1 = psi2 * x**3 * z4 - psi2 * x**2 * z2 + pp * x * z2 - pp
    e2 = (
        x**5 * z6
        - 3 * x**4 * z4
        + (psi1 - 1) * x**3 * z6
        + 2 * x**3 * z4
        + 3 * x**3 * z2
        + (-psi1 - 1) * x**2 * z4
        - 2 * x**2 * z2
        - x**2
    )
    return e1 / e0, e2 / e0


def mei_montanari_risk(
    psi1: float,
    psi2: float,
    ridge_mm: float = 0.0,
    *,
    activation: str | ActivationMoments = "relu",
    signal: float = 1.0,
    nonlinear: float = 0.0,
    noise: float = 0.0,
) -> float:
    """Asymptotic excess test error F₁²B + (τ² + F★²)V + F★² at λ̄ = λ_MM/μ★².

    `signal` = F₁, `nonlinear` = F★, `noise` = τ (standard deviations, not variances);
    `ridge_mm` is their λ (= D·λ_ours). Returns inf at the ridgeless singularity ψ₁ = ψ₂.
    """
    m = activation if isinstance(activation, ActivationMoments) else activation_moments(activation)
    if ridge_mm == 0 and abs(psi1 - psi2) <= 1e-12 * max(psi1, psi2):
        # At the interpolation threshold the ridgeless risk diverges; in floating point E₀
        # rounds to a tiny non-zero number and B, V come out as ±1e15 garbage instead.
        return float("inf")
    b, v = mm_bias_variance(m.zeta, psi1, psi2, ridge_mm / m.mu_star**2)
    if not np.isfinite(b) or not np.isfinite(v):
        return float("inf")
    return signal**2 * b + (noise**2 + nonlinear**2) * v + nonlinear**2


def hmrt_min_norm_risk(gamma: float, signal_sq: float, noise_var: float) -> float:
    """Hastie–Montanari–Rosset–Tibshirani (2019) isotropic min-norm least squares: x ~ N(0, I_p),
    y = xᵀβ + ε, ‖β‖² = r², Var ε = σ², γ = p/n → ∞ proportionally. Excess risk
    E(xᵀ(β̂ − β))² = σ²γ/(1 − γ) for γ < 1, r²(1 − 1/γ) + σ²/(γ − 1) for γ > 1, inf at γ = 1."""
    if gamma <= 0:
        raise ValueError(f"gamma must be > 0, got {gamma!r}")
    if gamma < 1:
        return noise_var * gamma / (1.0 - gamma)
    if gamma > 1:
        return signal_sq * (1.0 - 1.0 / gamma) + noise_var / (gamma - 1.0)
    return float("inf")


def simulate_random_features_risk(
    dim: int,
    n_train: int,
    widths: Sequence[int],
    *,
    activation: str = "relu",
    ridge: float | Sequence[float] = 0.0,
    signal: float = 1.0,
    noise: float = 0.0,
    n_test: int = 2000,
    seeds: Sequence[int] = (0, 1, 2, 3, 4),
) -> np.ndarray:
    """Monte Carlo of Mei–Montanari's setting with F★ = 0: sphere data and sphere features,
    y = ⟨β₁, x⟩ + τε, ‖β₁‖ = F₁, ridge λ_ours (`widthlab.solvers` convention). Returns the
    excess risk mean((⟨β₁, x⟩ − f̂(x))²) over n_test fresh points, shape [len(seeds), W]
    ([len(seeds), L, W] for a sequence of L ridges); one nested feature draw per seed serves
    every width and ridge."""
    widths = np.asarray(widths)
    lams = np.atleast_1d(np.asarray(ridge, dtype=np.float64))
    out = np.empty((len(seeds), lams.size, widths.size))
    with limit_blas_threads(1):  # small matrices: threads only add synchronisation stalls
        for i, seed in enumerate(seeds):
            out[i] = _rf_test_errors(
                dim, n_train, widths, activation, lams, signal, noise, n_test, seed
            )
    return out if np.ndim(ridge) else out[:, 0]


def _rf_test_errors(dim, n_train, widths, activation, lams, signal, noise, n_test, seed):
    """Test errors [L, W] of one seed: fresh data, target, nested feature draw."""
    rng = np.random.default_rng(seed)
    x = uniform_sphere(rng, n_train + n_test, dim, np.sqrt(dim))
    beta1 = rng.standard_normal(dim)
    beta1 *= signal / np.linalg.norm(beta1)
    f = x @ beta1
    y = f[:n_train] + noise * rng.standard_normal(n_train)
    a = draw_features(dim, int(widths[-1]), "sphere", int(rng.integers(2**62)))
    s = feature_activations(x, a, activation)
    res = width_sweep(s[:n_train], y, widths, s[n_train:], f[n_train:], ridges=lams)
    return res.test_error


def simulate_min_norm_linear_risk(
    n: int, p: int, *, signal_sq: float = 1.0, noise_var: float = 1.0, seeds=range(20)
) -> np.ndarray:
    """Excess risk ‖β̂ − β‖² of min-norm least squares in HMRT's isotropic model, per seed."""
    risks = []
    with limit_blas_threads(1):  # many small solves: threads only add synchronisation stalls
        for seed in seeds:
            risks.append(_min_norm_linear_risk(n, p, signal_sq, noise_var, seed))
    return np.asarray(risks)


def _min_norm_linear_risk(n: int, p: int, signal_sq: float, noise_var: float, seed: int) -> float:
    rng = np.random.default_rng(seed)
    beta = rng.standard_normal(p)
    beta *= np.sqrt(signal_sq) / np.linalg.norm(beta)
    x = rng.standard_normal((n, p))
    y = x @ beta + np.sqrt(noise_var) * rng.standard_normal(n)
    # E_x(xᵀ(β̂ − β))² = ‖β̂ − β‖² for x ~ N(0, I).
    return float(np.sum((min_norm_solution(x, y).beta - beta) ** 2))
