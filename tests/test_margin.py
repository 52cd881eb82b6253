"""widthlab.margin: the hard-margin SVM against two independent solvers (Lawson & Hanson's
least-distance programming through NNLS, and liblinear's dual coordinate descent), the
multiclass SVM against the stacked problem built by hand, separability against Clarabel's
infeasibility certificate, and Cover's count against brute-force enumeration."""

import itertools
import math
import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from scipy.optimize import nnls

from widthlab.margin import (
    cover_count,
    cover_fraction,
    hard_margin,
    hard_margin_svm,
    is_separable,
    kkt_residuals,
    multiclass_hard_margin_svm,
    separable_at_widths,
)


def least_distance(a: np.ndarray):
    """min ½‖w‖² s.t. A w ≥ 1 by Lawson & Hanson's LDP algorithm (Solving Least Squares
    Problems, ch. 23): NNLS on E = [Aᵀ; 1ᵀ], f = e_{p+1}; r = E u − f; w = −r_{1:p}/r_{p+1}
    and α = u/(−r_{p+1}); r = 0 means no feasible w. An active-set method: exact up to
    rounding, and nothing in common with an interior-point solver."""
    m, p = a.shape
    e = np.vstack([a.T, np.ones((1, m))])
    f = np.zeros(p + 1)
    f[-1] = 1.0
    u, _ = nnls(e, f, maxiter=100 * m)
    r = e @ u - f
    if np.linalg.norm(r) < 1e-12:
        return None, None
    return -r[:p] / r[p], u / -r[p]


def teacher_problem(n, d, seed):
    """Nonnegative (ReLU-like) features and the labels of a homogeneous linear teacher on
    them: separable by construction."""
    rng = np.random.default_rng(seed)
    h = np.maximum(rng.standard_normal((n, d)), 0) / np.sqrt(d)
    teacher = rng.standard_normal(d)
    teacher -= teacher.mean()  # both signs of hᵀv occur for nonnegative h
    return h, np.sign(h @ teacher)


@pytest.mark.parametrize(("n", "d"), [(40, 12), (30, 60)])  # primal route, dual route
def test_binary_svm_matches_least_distance_programming(n, d):
    h, y = teacher_problem(n, d, seed=n + d)
    svm = hard_margin_svm(h, y)
    w, alpha = least_distance(y[:, None] * h)
    assert svm.separable and w is not None
    # Both solvers are accurate to ~1e−12; 1e−8 leaves room for the conditioning of A.
    np.testing.assert_allclose(svm.weights, w, rtol=0, atol=1e-8 * np.linalg.norm(w))
    np.testing.assert_allclose(svm.duals, alpha, rtol=0, atol=1e-8 * alpha.max())
    assert svm.kkt.largest <= 1e-10
    assert svm.margin == pytest.approx(1 / np.linalg.norm(w), rel=1e-10)
    assert set(np.flatnonzero(svm.support)) == set(np.flatnonzero(alpha > 1e-6 * alpha.max()))
    # Σα = ‖ŵ‖² (multiply stationarity by ŵ and use complementary slackness).
    assert svm.duals.sum() == pytest.approx(np.linalg.norm(svm.weights) ** 2, rel=1e-9)


def test_binary_svm_agrees_with_liblinear_at_huge_c():
    from sklearn.svm import LinearSVC

    h, y = teacher_problem(50, 20, seed=7)
    svm = hard_margin_svm(h, y)
    # Hinge loss without intercept and C → ∞: liblinear's dual coordinate descent solves the
    # same hard-margin problem.
    coef = LinearSVC(fit_intercept=False, loss="hinge", C=1e6, tol=1e-10, max_iter=10**6)
    coef = coef.fit(h, y).coef_[0]
    assert np.linalg.norm(coef - svm.weights) / np.linalg.norm(svm.weights) < 1e-6


def test_kkt_residuals_flag_a_solution_that_is_not_optimal():
    h, y = teacher_problem(40, 12, seed=1)
    svm = hard_margin_svm(h, y)
    a = y[:, None] * h
    scaled = kkt_residuals(a, 1.1 * svm.weights, svm.duals)  # feasible, but too long
    assert scaled.primal_feasibility == pytest.approx(0.1, rel=1e-6)
    assert scaled.complementary_slackness > 0.05
    wrong_duals = kkt_residuals(a, svm.weights, svm.duals - 0.5 * svm.duals.max())
    assert wrong_duals.dual_feasibility > 0.1 and wrong_duals.stationarity > 0.1


def stacked_multiclass(h, labels, classes):
    """The Crammer–Singer constraints written out row by row with np.kron, independently of
    widthlab.margin.multiclass_constraints."""
    rows = []
    for i, c_i in enumerate(labels):
        for c in range(classes):
            if c != c_i:
                rows.append(np.kron(np.eye(classes)[c_i] - np.eye(classes)[c], h[i]))
    return np.array(rows)


def test_multiclass_svm_matches_least_distance_programming():
    rng = np.random.default_rng(3)
    n, d, classes = 24, 10, 3
    h = rng.standard_normal((n, d))
    labels = np.argmax(h @ rng.standard_normal((d, classes)), axis=1)  # a linear teacher
    svm = multiclass_hard_margin_svm(h, labels, classes)
    w, alpha = least_distance(stacked_multiclass(h, labels, classes))
    assert svm.separable and w is not None
    np.testing.assert_allclose(svm.weights.ravel(), w, atol=1e-8 * np.linalg.norm(w))
    mask = np.arange(classes)[None, :] != labels[:, None]
    np.testing.assert_allclose(svm.duals[mask], alpha, atol=1e-8 * alpha.max())
    assert np.all(svm.duals[~mask] == 0) and not svm.support[~mask].any()
    assert svm.kkt.largest <= 1e-10
    # The minimum-norm B has rows summing to zero (adding one vector to every row changes
    # no constraint), as GD on the softmax loss keeps them.
    assert np.linalg.norm(svm.weights.sum(axis=0)) <= 1e-10 * np.linalg.norm(svm.weights)


def test_random_labels_with_few_features_are_not_separable():
    rng = np.random.default_rng(0)
    h, y = rng.standard_normal((60, 5)), rng.choice([-1.0, 1.0], 60)
    out = hard_margin_svm(h, y)
    assert not out.separable and out.weights is None and out.margin is None
    assert least_distance(y[:, None] * h)[0] is None


def test_the_lp_verdict_agrees_with_clarabels_certificate():
    """Separable or not: the LP and Clarabel's own certificate of primal infeasibility agree
    on random labels around Cover's threshold n = 2d."""
    import clarabel
    from qpsolvers import Problem, solve_problem

    rng = np.random.default_rng(5)
    verdicts = []
    for _ in range(30):
        n, d = 20, int(rng.integers(6, 15))
        a = rng.standard_normal((n, d)) * rng.choice([-1.0, 1.0], n)[:, None]
        problem = Problem(sp.identity(d, format="csc"), np.zeros(d), -sp.csc_matrix(a), -np.ones(n))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            status = solve_problem(problem, solver="clarabel").extras["status"]
        certified = status != clarabel.SolverStatus.PrimalInfeasible
        verdicts.append(is_separable(a))
        assert verdicts[-1] == certified
    assert 0 < sum(verdicts) < len(verdicts)  # both kinds occurred


def test_hard_margin_accepts_sparse_constraints():
    h, y = teacher_problem(30, 8, seed=2)
    dense = hard_margin(y[:, None] * h)
    sparse = hard_margin(sp.csr_matrix(y[:, None] * h))
    np.testing.assert_allclose(sparse.weights, dense.weights, atol=1e-12)


@pytest.mark.parametrize("d", [1, 2, 3, 4])
def test_cover_count_equals_brute_force_enumeration(d):
    """Every labeling of n = 7 Gaussian points in ℝ^d (general position almost surely),
    tested for separability one by one: exactly C(n, d) of the 2ⁿ are separable."""
    n = 7
    points = np.random.default_rng(d).standard_normal((n, d))
    separable = sum(
        is_separable(np.array(labels)[:, None] * points)
        for labels in itertools.product([-1.0, 1.0], repeat=n)
    )
    assert separable == cover_count(n, d)


def test_cover_count_closed_forms():
    assert cover_count(5, 5) == cover_count(5, 9) == 2**5  # n ≤ d: every labeling
    assert cover_count(9, 1) == 2  # a line through 0: all +, or all −
    for d in (1, 3, 10, 50):
        assert cover_fraction(2 * d, d) == 0.5  # C(2d, d) = 2^{2d−1}
    # The recursion C(n + 1, d) = C(n, d) + C(n, d − 1) that Cover's proof rests on.
    for n, d in itertools.product(range(1, 12), range(2, 8)):
        assert cover_count(n + 1, d) == cover_count(n, d) + cover_count(n, d - 1)
    assert 0 < cover_fraction(4000, 1000) < 1e-100  # exact integers: no overflow


def test_bisection_over_nested_widths_matches_one_lp_per_width():
    rng = np.random.default_rng(4)
    n = 30
    features = np.maximum(rng.standard_normal((n, 40)), 0)
    widths = [5, 10, 13, 15, 17, 20, 25, 40]
    for _ in range(5):
        y = rng.choice([-1.0, 1.0], n)
        direct = {d: is_separable(y[:, None] * features[:, :d]) for d in widths}
        assert separable_at_widths(features, y, widths) == direct
    assert math.isclose(cover_fraction(30, 15), 0.5)
