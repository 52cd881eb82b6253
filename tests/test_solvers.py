"""Solvers: min-norm / ridge closed forms, GD explicit vs closed form, KKT, width sweep."""

import numpy as np
import pytest
from conftest import sphere_points as sample_sphere

from widthlab.gradient_descent import (
    default_learning_rate,
    gradient_descent,
    gradient_descent_closed_form,
    gradient_descent_dual,
)
from widthlab.models.random_features import draw_features, feature_activations
from widthlab.solvers import (
    kernel_ridge_regression,
    kkt_residuals,
    min_norm_solution,
    ridge_path,
    ridge_solution,
)
from widthlab.width_sweep import width_sweep


def rel(a, b):
    return np.linalg.norm(np.asarray(a) - np.asarray(b)) / np.linalg.norm(b)


def rf_problem(n, d, seed=0, dim=8, activation="relu"):
    """Relu random features (a large constant mode, so not an easy isotropic H)."""
    rng = np.random.default_rng(seed)
    x = sample_sphere(n, dim, rng)
    s = feature_activations(x, draw_features(dim, d, "gaussian", seed + 1), activation)
    return s / np.sqrt(d), x[:, 0] + 0.5 * rng.standard_normal(n)


SHAPES = [(80, 30), (40, 120), (60, 60)]  # under-, over-parameterised and d = n


@pytest.mark.parametrize(("n", "d"), SHAPES)
def test_min_norm_matches_lstsq_and_pinv(n, d):
    h, y = rf_problem(n, d)
    sol = min_norm_solution(h, y)
    assert sol.route == ("kernel" if d >= n else "primal")
    # d = n: κ(H) ~ 1e3 here, and Gram routes lose ~κ(H)²·ε; still far below 1e-8.
    assert rel(sol.beta, np.linalg.lstsq(h, y, rcond=None)[0]) <= 1e-8
    assert rel(sol.beta, np.linalg.pinv(h) @ y) <= 1e-8
    other = min_norm_solution(h, y, route="primal" if sol.route == "kernel" else "kernel")
    assert rel(other.beta, sol.beta) <= 1e-8
    if sol.route == "kernel":
        np.testing.assert_allclose(h.T @ sol.representer_weights, sol.beta, rtol=1e-12)


def test_min_norm_on_rank_deficient_features_drops_the_null_space():
    h, y = rf_problem(50, 20)
    h = np.hstack([h, h[:, :10] * 2.0, h])  # rank 20, d = 50 = n: both Grams singular
    for route in ("kernel", "primal"):
        sol = min_norm_solution(h, y, route=route)
        assert rel(sol.beta, np.linalg.pinv(h) @ y) <= 1e-8
        assert sol.gram_condition == np.inf or sol.gram_condition > 1e12


@pytest.mark.parametrize(("n", "d"), SHAPES)
@pytest.mark.parametrize("ridge", [1e-4, 0.3])
def test_ridge_matches_normal_equations(n, d, ridge):
    h, y = rf_problem(n, d)
    direct = np.linalg.solve(h.T @ h + n * ridge * np.eye(d), h.T @ y)
    for route in ("kernel", "primal"):
        assert rel(ridge_solution(h, y, ridge, route=route).beta, direct) <= 1e-9
    # It minimises (1/n)‖y − Hβ‖² + λ‖β‖²: the gradient vanishes.
    grad = -2.0 / n * h.T @ (y - h @ direct) + 2.0 * ridge * direct
    assert np.linalg.norm(grad) <= 1e-10 * np.linalg.norm(h.T @ y) / n
    c = ridge_solution(h, y, ridge, route="kernel").representer_weights
    assert rel(c, np.linalg.solve(h @ h.T + n * ridge * np.eye(n), y)) <= 1e-9


def test_kernel_ridge_regression_equals_feature_ridge_for_the_finite_width_kernel():
    h, y = rf_problem(50, 200)
    x_test = sample_sphere(30, 8, seed=9)
    h_test = feature_activations(x_test, draw_features(8, 200, "gaussian", 1), "relu")
    h_test /= np.sqrt(200)
    for ridge in (0.0, 1e-2):
        beta = ridge_solution(h, y, ridge).beta
        krr = kernel_ridge_regression(h @ h.T, y, h_test @ h.T, ridge)
        assert rel(krr.test_predictions, h_test @ beta) <= 1e-9
        assert rel(krr.train_predictions, h @ beta) <= 1e-9
    with pytest.raises(ValueError, match="square"):
        kernel_ridge_regression(np.ones((3, 4)), np.ones(3))


def test_negative_ridge_and_bad_route_raise():
    h, y = rf_problem(10, 5)
    with pytest.raises(ValueError, match="ridge"):
        ridge_solution(h, y, -1.0)
    with pytest.raises(ValueError, match=r"route='dual'.*auto.*kernel.*primal"):
        ridge_solution(h, y, route="dual")


def test_kkt_residuals_pass_for_min_norm_and_fail_when_perturbed():
    h, y = rf_problem(40, 150)
    beta = min_norm_solution(h, y).beta
    ok = kkt_residuals(h, y, beta, beta)
    assert ok.primal_feasibility <= 1e-8 and ok.stationarity <= 1e-8
    assert ok.distance_to_min_norm == 0.0
    # Another interpolator: add a null-space direction of size 10% of ‖β‖.
    v = np.random.default_rng(1).standard_normal(150)
    v -= np.linalg.pinv(h) @ (h @ v)
    other = beta + 0.1 * np.linalg.norm(beta) * v / np.linalg.norm(v)
    bad = kkt_residuals(h, y, other, beta)
    assert bad.primal_feasibility <= 1e-8  # still interpolates …
    assert bad.stationarity >= 0.05  # … but is not in the row space of H
    assert bad.distance_to_min_norm == pytest.approx(0.1, rel=1e-6)
    off = kkt_residuals(h, y, beta * 1.01)
    assert off.primal_feasibility >= 5e-3 and np.isnan(off.distance_to_min_norm)
    with pytest.raises(ValueError, match="d ≥ n"):
        kkt_residuals(*rf_problem(40, 20), np.zeros(20))


@pytest.mark.parametrize(("n", "d"), [(40, 150), (80, 30)])
def test_gradient_descent_explicit_matches_closed_form(n, d):
    h, y = rf_problem(n, d)
    lr = default_learning_rate(h)
    assert lr == pytest.approx(n / np.linalg.norm(h, 2) ** 2, rel=1e-10)
    steps = [0, 1, 7, 200]
    closed = gradient_descent_closed_form(h, y, steps)
    assert closed.shape == (len(steps), d) and np.all(closed[0] == 0)
    for t, beta_t in zip(steps[1:], closed[1:], strict=True):
        assert rel(gradient_descent(h, y, t), beta_t) <= 1e-8
        assert rel(gradient_descent_closed_form(h, y, t, route="primal"), beta_t) <= 1e-8
        # The dual iteration gives the same iterates, step for step (β_t = Hᵀc_t).
        assert rel(gradient_descent_dual(h, y, t, lr), gradient_descent(h, y, t, lr)) <= 1e-10
    # Oscillating modes (1 < ηs/n < 2) take the other branch of (1 − x)^t.
    explicit = gradient_descent(h, y, 50, 1.8 * lr)
    closed_big = gradient_descent_closed_form(h, y, 50, 1.8 * lr)
    assert rel(explicit, closed_big) <= 1e-8
    assert rel(gradient_descent_dual(h, y, 50, 1.8 * lr, h @ h.T), explicit) <= 1e-10
    with pytest.raises(ValueError, match="HHᵀ"):
        gradient_descent_dual(h, y, 5, lr, h.T @ h)


@pytest.mark.parametrize(("n", "d"), [(40, 150), (80, 30)])
def test_gradient_descent_at_infinite_time_is_min_norm(n, d):
    h, y = rf_problem(n, d, activation="erf")
    mn = min_norm_solution(h, y).beta
    assert rel(gradient_descent_closed_form(h, y, np.inf), mn) <= 1e-6
    assert rel(gradient_descent_closed_form(h, y, 1e15), mn) <= 1e-6
    # Far from convergence it is not (the check can fail).
    assert rel(gradient_descent_closed_form(h, y, 3), mn) >= 1e-2
    with pytest.raises(ValueError, match="diverges"):
        gradient_descent_closed_form(h, y, np.inf, lr=2.5 * default_learning_rate(h))


def sweep_problem(n=60, d_max=400, m=25, seed=0):
    rng = np.random.default_rng(seed)
    x = sample_sphere(n + m, 6, rng)
    s = feature_activations(x, draw_features(6, d_max, "gaussian", seed + 1), "relu")
    y = x[:, 0] + 0.3 * rng.standard_normal(n + m)
    return s[:n], y[:n], s[n:], y[n:]


def test_width_sweep_matches_per_width_direct_solves():
    s, y, s_test, y_test = sweep_problem()
    n = len(y)
    widths = [3, 20, n - 1, n, n + 1, 150, 400]
    ridges = [0.0, 1e-3]
    res = width_sweep(s, y, widths, s_test, y_test, ridges=ridges, exact_condition=True)
    assert res.routes == ["primal"] * 3 + ["kernel"] * 4
    for li, lam in enumerate(ridges):
        for j, d in enumerate(widths):
            h, h_test = s[:, :d] / np.sqrt(d), s_test[:, :d] / np.sqrt(d)
            sol = ridge_solution(h, y, lam)
            # d ≈ n with λ = 0: κ(Gram) ~ 1e7 here, so both solutions carry ~1e-9 errors.
            tol = 1e-7 if lam == 0 and abs(d - n) <= 1 else 1e-9
            assert rel(res.test_predictions[li, j], h_test @ sol.beta) <= tol
            assert res.beta_norm[li, j] == pytest.approx(np.linalg.norm(sol.beta), rel=tol)
            train = np.mean((y - h @ sol.beta) ** 2)
            assert res.train_error[li, j] == pytest.approx(train, rel=tol, abs=1e-12)
            test = np.mean((h_test @ sol.beta - y_test) ** 2)
            assert res.test_error[li, j] == pytest.approx(test, rel=tol)
            ev = np.linalg.eigvalsh(h @ h.T if d >= n else h.T @ h) + n * lam
            assert res.gram_condition[li, j] == pytest.approx(ev[-1] / ev[0], rel=1e-5)
            interpolating = lam == 0 and d >= n
            assert np.isnan(res.kkt_feasibility[li, j]) != interpolating
            if interpolating:
                assert res.kkt_feasibility[li, j] <= 1e-8
                assert res.kkt_stationarity[li, j] <= 1e-8


def test_width_sweep_condition_estimate_and_eigh_fallback():
    s, y, s_test, _ = sweep_problem()
    widths = [30, 60, 200]
    est = width_sweep(s, y, widths).gram_condition[0]
    exact = width_sweep(s, y, widths, exact_condition=True).gram_condition[0]
    assert np.all(est >= exact / 60) and np.all(est <= exact * 60)  # κ₁ vs κ₂: factor ≤ n
    # Repeated feature columns: the Grams are exactly singular, Cholesky must hand over to
    # the eigh pseudo-inverse, which must still give the min-norm solution.
    s_rep, s_test_rep = np.hstack([s[:, :40]] * 5), np.hstack([s_test[:, :40]] * 5)
    res = width_sweep(s_rep, y, [30, 80, 200], s_test_rep)
    assert res.methods[0] == ["cholesky", "eigh", "eigh"]
    for j, d in enumerate([30, 80, 200]):
        ref = np.linalg.lstsq(s_rep[:, :d] / np.sqrt(d), y, rcond=None)[0]
        assert rel(res.test_predictions[0, j], s_test_rep[:, :d] / np.sqrt(d) @ ref) <= 1e-8


def test_width_sweep_rejects_bad_widths_and_ridges():
    s, y, _, _ = sweep_problem()
    for widths in ([5, 5], [0, 3], [3, 401], [2.5, 4]):
        with pytest.raises(ValueError, match="widths"):
            width_sweep(s, y, widths)
    with pytest.raises(ValueError, match="ridge"):
        width_sweep(s, y, [3], ridges=[0.1, -0.1])


@pytest.mark.parametrize(("n", "d"), [(50, 80), (80, 50)])
@pytest.mark.parametrize("ridge", [0.0, 0.1])
def test_multi_output_targets_equal_one_solve_per_column(n, d, ridge):
    rng = np.random.default_rng(3)
    h, y = rng.standard_normal((n, d)), rng.standard_normal((n, 4))
    beta = ridge_solution(h, y, ridge).beta
    assert beta.shape == (d, 4)
    for j in range(4):
        np.testing.assert_allclose(
            beta[:, j], ridge_solution(h, y[:, j], ridge).beta, rtol=1e-10, atol=1e-12
        )


@pytest.mark.parametrize(("n", "d"), [(40, 90), (90, 40)])
def test_ridge_path_equals_one_solve_per_ridge(n, d):
    rng = np.random.default_rng(4)
    h, y = rng.standard_normal((n, d)), rng.standard_normal(n)
    ridges = [0.0, 1e-4, 0.3]
    for ridge, sol in zip(ridges, ridge_path(h, y, ridges), strict=True):
        direct = (
            np.linalg.solve(h.T @ h + n * ridge * np.eye(d), h.T @ y)
            if ridge > 0
            else (np.linalg.lstsq(h, y, rcond=None)[0])
        )
        np.testing.assert_allclose(sol.beta, direct, rtol=1e-8, atol=1e-10)
