"""Mei–Montanari asymptotics and the HMRT baseline: internal consistency and simulation."""

import itertools

import numpy as np
import pytest
from conftest import sphere_points as sample_sphere

from widthlab.models.random_features import draw_features, feature_activations
from widthlab.rf_theory import (
    activation_moments,
    hmrt_min_norm_risk,
    mei_montanari_risk,
    mm_bias_variance,
    mm_chi,
    mm_ridge_from_ours,
    simulate_min_norm_linear_risk,
    simulate_random_features_risk,
)
from widthlab.solvers import ridge_solution


def test_relu_moments_closed_form():
    m = activation_moments("relu")
    assert m.mu0 == pytest.approx(1 / np.sqrt(2 * np.pi), rel=1e-15)
    assert m.mu1 == 0.5
    assert m.mu_star**2 == pytest.approx(0.25 - 1 / (2 * np.pi), rel=1e-14)


def test_quadrature_moments_match_closed_forms():
    m = activation_moments("erf")  # E[G erf(G)] = 2/√(3π), E[erf(G)²] = (2/π) arcsin(2/3)
    assert abs(m.mu0) <= 1e-12
    assert m.mu1 == pytest.approx(2 / np.sqrt(3 * np.pi), rel=1e-10)
    assert m.mu_star**2 == pytest.approx(2 / np.pi * np.arcsin(2 / 3) - m.mu1**2, rel=1e-9)
    nodes, weights = np.polynomial.hermite_e.hermegauss(200)
    weights /= weights.sum()
    t = activation_moments("tanh")
    assert t.mu1 == pytest.approx(weights @ (nodes * np.tanh(nodes)), rel=1e-9)
    second = weights @ np.tanh(nodes) ** 2
    assert t.mu_star**2 == pytest.approx(second - t.mu1**2, rel=1e-9)


CASES = [(1.7, 0.5, 3.0, 0.3), (1.7, 6.0, 3.0, 1e-3), (0.6, 2.0, 0.7, 2.0), (3.0, 1.0, 1.0, 0.05)]


@pytest.mark.parametrize(("zeta", "psi1", "psi2", "lam"), CASES)
def test_chi_matches_direct_iteration_of_the_complex_fixed_point(zeta, psi1, psi2, lam):
    """Iterate ν₁, ν₂ in ℂ₊ at ξ = i(ψ₁ψ₂λ̄)^{1/2} (no use of the scalar reduction)."""
    xi = 1j * np.sqrt(psi1 * psi2 * lam)
    nu1, nu2 = 1j * psi1, 1j * psi2
    z2 = zeta**2
    for _ in range(20_000):
        new1 = psi1 / (-xi - nu2 - z2 * nu2 / (1 - z2 * nu1 * nu2))
        new2 = psi2 / (-xi - new1 - z2 * new1 / (1 - z2 * new1 * nu2))
        nu1, nu2 = 0.5 * (nu1 + new1), 0.5 * (nu2 + new2)
    assert abs(nu1 - new1) + abs(nu2 - new2) <= 1e-12
    chi = mm_chi(zeta, psi1, psi2, lam)
    assert (nu1 * nu2).real == pytest.approx(chi, rel=1e-9)
    assert abs((nu1 * nu2).imag) <= 1e-12


@pytest.mark.parametrize(("psi1", "psi2"), [(0.5, 3.0), (6.0, 3.0), (2.0, 2.5)])
def test_ridgeless_closed_form_is_the_small_ridge_limit(psi1, psi2):
    zeta = activation_moments("relu").zeta
    chi0 = mm_chi(zeta, psi1, psi2, 0.0)
    assert mm_chi(zeta, psi1, psi2, 1e-12) == pytest.approx(chi0, rel=1e-4)
    b0, v0 = mm_bias_variance(zeta, psi1, psi2, 0.0)
    b, v = mm_bias_variance(zeta, psi1, psi2, 1e-12)
    assert (b, v) == pytest.approx((b0, v0), rel=1e-4)


@pytest.mark.parametrize(("psi1", "psi2"), [(0.5, 2.0), (3.0, 1.2)])
def test_vanishing_linear_part_reduces_to_isotropic_min_norm(psi1, psi2):
    """ζ → 0: features carry no signal; V is HMRT's variance with γ = N/n and
    F₁²B = F₁² + (variance of fitting the signal as noise)."""
    b, v = mm_bias_variance(1e-5, psi1, psi2, 0.0)
    gamma = psi1 / psi2
    assert v == pytest.approx(hmrt_min_norm_risk(gamma, 0.0, 1.0), rel=1e-6)
    assert b == pytest.approx(1.0 + v, rel=1e-6)


def test_ridgeless_peak_diverges_and_large_ridge_gives_null_predictor():
    for eps in (1e-5, -1e-5):
        assert mei_montanari_risk(3.0 * (1 + eps), 3.0, noise=0.5) >= 1e3
    assert mei_montanari_risk(2.0, 3.0, 1e8, signal=1.3, noise=0.5) == pytest.approx(
        1.3**2, rel=1e-3
    )
    with pytest.raises(ValueError, match="psi1"):
        mm_chi(1.0, -1.0, 1.0, 0.0)


def test_mm_ridge_mapping_solves_their_objective():
    """Their objective in a, (1/n)‖y − Σa‖² + (Nλ_MM/D)‖a‖², vs ours with λ = λ_MM/D."""
    dim, width, n, lam_mm = 20, 70, 50, 0.7
    rng = np.random.default_rng(0)
    x, y = sample_sphere(n, dim, rng), rng.standard_normal(n)
    theta = np.sqrt(dim) * draw_features(dim, width, "sphere", 1)
    sig = np.tanh(x @ theta / np.sqrt(dim))
    a = np.linalg.solve(sig.T @ sig / n + width * lam_mm / dim * np.eye(width), sig.T @ y / n)
    h = feature_activations(x, theta / np.sqrt(dim), "tanh") / np.sqrt(width)
    lam_ours = lam_mm / dim
    assert mm_ridge_from_ours(lam_ours, dim) == pytest.approx(lam_mm, rel=1e-15)
    beta = ridge_solution(h, y, lam_ours).beta
    np.testing.assert_allclose(beta, np.sqrt(width) * a, rtol=1e-9, atol=1e-12)


# Simulation: D = 100, n = 300 (ψ₂ = 3), ψ₁ ∈ {0.5, 1.5, 6, 20}: ψ₁/ψ₂ ∉ [0.7, 1.4].
DIM, N_TRAIN, WIDTHS, NOISE = 100, 300, [50, 150, 600, 2000], 0.5


def _check_against_theory(
    sim, activation, ridges, widths, max_rel_se=0.04, tol=0.10, dim=DIM, n_train=N_TRAIN
):
    """Mean over seeds within `tol` of the theory, and `tol` ≥ 2.5 seed standard errors."""
    for li, lam in enumerate(ridges):
        lam_mm = mm_ridge_from_ours(lam, dim)
        theory = np.array(
            [
                mei_montanari_risk(
                    w / dim, n_train / dim, lam_mm, activation=activation, noise=NOISE
                )
                for w in widths
            ]
        )
        mean, se = sim[:, li].mean(0), sim[:, li].std(0, ddof=1) / np.sqrt(sim.shape[0])
        assert np.all(se / theory <= max_rel_se), se / theory
        assert np.all(np.abs(mean / theory - 1) <= tol), (lam, mean, theory)
        if lam > 0:  # the mapping matters: λ_MM = λ_ours (forgetting D) is clearly off
            wrong = [
                mei_montanari_risk(w / dim, n_train / dim, lam, activation=activation, noise=NOISE)
                for w in widths
            ]
            assert np.max(np.abs(mean / np.array(wrong) - 1)) > 3 * tol


def test_mei_montanari_matches_simulation_erf():
    ridges = [0.0, 1e-3]
    sim = simulate_random_features_risk(
        DIM,
        N_TRAIN,
        WIDTHS,
        activation="erf",
        ridge=ridges,
        noise=NOISE,
        n_test=1000,
        seeds=range(32),
    )
    _check_against_theory(sim, "erf", ridges, WIDTHS)


def test_mei_montanari_matches_simulation_relu():
    # ψ₁ ≤ 6 only: at ψ₁ = 20, D = 100 relu sits ~9% above the limit (its degree-2 part
    # converges slowly in D; odd activations have none and agree to < 1% there).
    ridges, widths = [0.0, 1e-2], WIDTHS[:3]
    sim = simulate_random_features_risk(
        DIM,
        N_TRAIN,
        widths,
        activation="relu",
        ridge=ridges,
        noise=NOISE,
        n_test=1000,
        seeds=range(24),
    )
    _check_against_theory(sim, "relu", ridges, widths)


@pytest.mark.slow
@pytest.mark.parametrize("activation", ["relu", "erf"])
def test_mei_montanari_matches_simulation_at_dim_200(activation):
    # Twice the dimension, same ψ's: relu's ψ₁ = 20 gap shrinks from ~9% (D = 100) to ~5%.
    dim, n_train, widths, ridges = 200, 600, [100, 300, 1200, 4000], [0.0, 5e-4]
    sim = simulate_random_features_risk(
        dim,
        n_train,
        widths,
        activation=activation,
        ridge=ridges,
        noise=NOISE,
        n_test=1000,
        seeds=range(16),
    )
    _check_against_theory(sim, activation, ridges, widths, dim=dim, n_train=n_train)


@pytest.mark.parametrize("p", [100, 400, 1000])
def test_hmrt_formula_matches_simulation(p):
    n, r2, s2 = 200, 1.0, 0.5
    risks = simulate_min_norm_linear_risk(n, p, signal_sq=r2, noise_var=s2, seeds=range(20))
    theory = hmrt_min_norm_risk(p / n, r2, s2)
    se = risks.std(ddof=1) / np.sqrt(len(risks))
    assert se / theory <= 0.04
    assert risks.mean() == pytest.approx(theory, rel=0.10)


def test_hmrt_formula_values():
    assert hmrt_min_norm_risk(0.5, 3.0, 2.0) == pytest.approx(2.0)
    assert hmrt_min_norm_risk(2.0, 3.0, 2.0) == pytest.approx(1.5 + 2.0)
    assert hmrt_min_norm_risk(1.0, 1.0, 1.0) == np.inf
    with pytest.raises(ValueError, match="gamma"):
        hmrt_min_norm_risk(0.0, 1.0, 1.0)


def test_ridgeless_risk_is_infinite_exactly_at_the_threshold():
    # ψ₁ = ψ₂ happens in a sweep whenever d = n; it must not come out as ±1e15.
    for activation in ("relu", "erf"):
        assert mei_montanari_risk(2.5, 2.5, 0.0, activation=activation, noise=0.5) == float("inf")
    assert np.isfinite(mei_montanari_risk(2.5, 2.5, 0.1, noise=0.5))


@pytest.mark.parametrize(("signal", "noise"), [(1.0, 0.0), (0.0, 1.0)])
def test_the_ridgeless_risk_diverges_at_the_threshold_whenever_signal_or_noise_is_present(
    signal, noise
):
    # F₁² + τ² + F★² > 0 is enough: even a noiseless linear target (τ = F★ = 0) gives an
    # infinite peak, since the bias term B diverges too.
    gaps = (1e-1, 1e-2, 1e-3, 1e-4)
    risks = [mei_montanari_risk(1 + g, 1.0, signal=signal, noise=noise) for g in gaps]
    assert all(b > 5 * a for a, b in itertools.pairwise(risks))
    assert risks[-1] > 1e3
