"""widthlab.implicit_bias: gradient descent against explicit steps taken with torch's autograd,
what it converges to against the SVM (the acceptance checks of issue 16, on problems where
they can fail), the shares and gaps against their definitions, the 1/log t fit on synthetic
data, and the logistic minimizer against scikit-learn."""

import math

import numpy as np
import pytest
import torch

from widthlab.implicit_bias import (
    binary_gradient_shares,
    binary_margins,
    direction_gap,
    inverse_log_fit,
    log_spaced_steps,
    logistic_gradient_descent,
    logistic_minimizer,
    logistic_step_size,
    multiclass_gradient_shares,
    multiclass_margins,
    normalized_margin,
    softmax_gradient_descent,
    softmax_step_size,
    strictly_decreasing,
)
from widthlab.margin import hard_margin_svm, multiclass_hard_margin_svm


def separable_binary(n=30, d=12, seed=0):
    rng = np.random.default_rng(seed)
    h = np.maximum(rng.standard_normal((n, d)), 0) / np.sqrt(d)
    teacher = rng.standard_normal(d)
    return h, np.sign(h @ (teacher - teacher.mean()))


def test_log_spaced_steps_cover_one_to_the_end():
    t = log_spaced_steps(100_000, 10)
    assert t[0] == 1 and t[-1] == 100_000 and np.all(np.diff(t) > 0)
    assert 40 <= len(t) <= 51  # 10 per decade, duplicates at small t merged


def test_logistic_gd_matches_autograd_steps():
    h, y = separable_binary()
    lr = logistic_step_size(h)
    path = logistic_gradient_descent(h, y, 50, [1, 7, 50], lr)
    beta = torch.zeros(h.shape[1], dtype=torch.float64, requires_grad=True)
    ht, yt = torch.from_numpy(h), torch.from_numpy(y)
    seen = {}
    for t in range(1, 51):
        loss = torch.nn.functional.softplus(-yt * (ht @ beta)).mean()
        (grad,) = torch.autograd.grad(loss, beta)
        with torch.no_grad():
            beta -= lr * grad
        seen[t] = beta.detach().numpy().copy()
    for t, w in zip(path.steps, path.weights, strict=True):
        np.testing.assert_allclose(w, seen[t], rtol=1e-12, atol=1e-14)
    assert path.losses[-1] == pytest.approx(float(np.mean(np.log1p(np.exp(-y * (h @ seen[50]))))))


def test_softmax_gd_matches_autograd_steps():
    rng = np.random.default_rng(1)
    n, d, classes = 25, 8, 4
    h = rng.standard_normal((n, d))
    labels = rng.integers(0, classes, n)
    lr = softmax_step_size(h)
    path = softmax_gradient_descent(h, labels, classes, 40, [3, 40], lr)
    b = torch.zeros((classes, d), dtype=torch.float64, requires_grad=True)
    ht, lt = torch.from_numpy(h), torch.from_numpy(labels)
    seen = {}
    for t in range(1, 41):
        loss = torch.nn.functional.cross_entropy(ht @ b.T, lt)
        (grad,) = torch.autograd.grad(loss, b)
        with torch.no_grad():
            b -= lr * grad
        seen[t] = b.detach().numpy().copy()
    for t, w in zip(path.steps, path.weights, strict=True):
        np.testing.assert_allclose(w, seen[t], rtol=1e-12, atol=1e-14)
    # Every step of GD from zero keeps Σ_c B_c = 0 (the softmax gradient's rows sum to 0).
    assert np.abs(path.weights[-1].sum(axis=0)).max() < 1e-13


def test_step_sizes_are_the_inverse_smoothness_constants():
    h, _ = separable_binary(40, 15)
    top = np.linalg.eigvalsh(h.T @ h)[-1]
    assert logistic_step_size(h) == pytest.approx(4 * 40 / top, rel=1e-12)
    assert softmax_step_size(h) == pytest.approx(2 * 40 / top, rel=1e-12)


def test_on_separable_data_gd_approaches_the_svm_from_below():
    """Issue 16's acceptance on a small problem: every step lowers the loss; the normalized
    margin never exceeds the SVM's; the direction gap and the non-support share fall over
    the last three decades."""
    h, y = separable_binary(30, 12, seed=3)
    svm = hard_margin_svm(h, y)
    steps = log_spaced_steps(20_000, 8)
    path = logistic_gradient_descent(h, y, 20_000, steps)
    assert np.all(np.diff(path.losses) < 0)
    ratio = np.array([normalized_margin(binary_margins(h, y, w), w) for w in path.weights])
    assert ratio.max() <= svm.margin * (1 + 1e-10)
    assert ratio[-1] > ratio[len(ratio) // 2] > 0  # positive and rising late
    gap = np.array([direction_gap(w, svm.weights) for w in path.weights])
    late = steps >= 20
    assert strictly_decreasing(gap[late]) and gap[-1] < 0.05
    share = np.array([binary_gradient_shares(h, y, w)[svm.support].sum() for w in path.weights])
    assert strictly_decreasing(-share[late]) and share[-1] > 0.9
    # ‖β_t‖ grows like ‖β̂‖ ln t: over the last decade, the growth per unit of ln t is a
    # sizeable fraction of ‖β̂‖ (it tends to 1 slowly).
    norms = np.linalg.norm(path.weights, axis=1)
    decade = steps >= 2000
    growth = (norms[-1] - norms[decade][0]) / math.log(steps[-1] / steps[decade][0])
    assert 0.5 < growth * svm.margin < 1.1


def test_multiclass_gd_approaches_the_multiclass_svm():
    rng = np.random.default_rng(2)
    n, d, classes = 30, 10, 3
    h = rng.standard_normal((n, d))
    labels = np.argmax(h @ rng.standard_normal((d, classes)), axis=1)
    svm = multiclass_hard_margin_svm(h, labels, classes)
    steps = log_spaced_steps(20_000, 8)
    path = softmax_gradient_descent(h, labels, classes, 20_000, steps)
    ratio = [normalized_margin(multiclass_margins(h, labels, w), w) for w in path.weights]
    assert max(ratio) <= svm.margin * (1 + 1e-10)
    gap = np.array([direction_gap(w, svm.weights) for w in path.weights])
    assert strictly_decreasing(gap[steps >= 20]) and gap[-1] < 0.05


def test_a_better_margin_than_the_svms_is_impossible_so_a_wrong_svm_is_caught():
    """The margin check can fail: against a feasible but suboptimal ŵ (tilted away from the
    SVM, so its margin 1/‖ŵ‖ is smaller), GD's normalized margin overtakes it."""
    h, y = separable_binary(30, 12, seed=3)
    svm = hard_margin_svm(h, y)
    tilt = np.random.default_rng(0).standard_normal(12)
    tilt -= tilt @ svm.weights / np.linalg.norm(svm.weights) ** 2 * svm.weights
    tilt *= 0.5 / np.abs(binary_margins(h, y, tilt)).max()  # margins stay ≥ 1/2
    suboptimal = svm.weights + tilt
    suboptimal /= binary_margins(h, y, suboptimal).min()  # feasible: smallest margin 1
    claimed = 1 / np.linalg.norm(suboptimal)
    assert claimed < svm.margin
    path = logistic_gradient_descent(h, y, 20_000, [20_000])
    w = path.weights[-1]
    assert normalized_margin(binary_margins(h, y, w), w) > claimed


def test_shares_and_gap_follow_their_definitions():
    h, y = separable_binary()
    beta = np.random.default_rng(0).standard_normal(h.shape[1])
    shares = binary_gradient_shares(h, y, beta)
    weights = 1 / (1 + np.exp(y * (h @ beta)))
    np.testing.assert_allclose(shares, weights / weights.sum(), rtol=1e-13)
    u = np.array([1.0, 0.0])
    assert direction_gap(3 * u, u) == pytest.approx(0.0, abs=1e-15)
    assert direction_gap(np.array([0.0, 2.0]), u) == pytest.approx(1.0)
    v = np.array([0.6, 0.8])
    assert direction_gap(v, u) == pytest.approx(0.5 * np.linalg.norm(v - u) ** 2)
    rng = np.random.default_rng(1)
    hm, labels, b = (
        rng.standard_normal((6, 4)),
        np.array([0, 1, 2, 0, 1, 2]),
        rng.normal(size=(3, 4)),
    )
    shares = multiclass_gradient_shares(hm, labels, b)
    assert shares.sum() == pytest.approx(1.0) and np.all(shares[np.arange(6), labels] == 0)
    margins = multiclass_margins(hm, labels, b)
    s = hm @ b.T
    assert margins[0, 1] == pytest.approx(s[0, 0] - s[0, 1])
    assert np.all(np.isinf(margins[np.arange(6), labels]))


def test_inverse_log_fit_recovers_its_parameters():
    t = log_spaced_steps(10**6, 10)[20:]
    c, t0 = 1.7, 30.0
    gap = 0.5 * (c / np.log(t / t0)) ** 2
    fit = inverse_log_fit(t, gap)
    assert 1 / fit.slope == pytest.approx(c, rel=1e-10)
    assert fit.t0 == pytest.approx(t0, rel=1e-8)
    assert fit.max_relative_deviation < 1e-10 and fit.ci_low <= fit.slope <= fit.ci_high
    bent = inverse_log_fit(t, gap * (1 + 0.1 * np.sin(np.log(t))))  # not of that form
    assert bent.max_relative_deviation > 0.02


def test_logistic_minimizer_matches_scikit_learn_and_refuses_separable_data():
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(4)
    h, y = rng.standard_normal((80, 5)), rng.choice([-1.0, 1.0], 80)  # not separable
    ours = logistic_minimizer(h, y)
    theirs = LogisticRegression(C=np.inf, fit_intercept=False, tol=1e-12, max_iter=10_000)
    theirs = theirs.fit(h, y).coef_[0]
    np.testing.assert_allclose(ours.beta, theirs, rtol=1e-5, atol=1e-7)
    # Gradient descent on that data converges to this point: not a failed convergence.
    path = logistic_gradient_descent(h, y, 20_000, [20_000])
    assert np.linalg.norm(path.weights[-1] - ours.beta) < 1e-6 * np.linalg.norm(ours.beta)
    with pytest.raises(ValueError, match="separable"):
        logistic_minimizer(*separable_binary())
