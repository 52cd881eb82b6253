"""The gradient-descent filter and the linearized network's closed form, against explicit
iterations written out here."""

import numpy as np
import torch

from widthlab.gradient_descent import gd_filter, linearized_prediction


def test_filter_matches_the_power_formula_and_its_limits():
    s = np.array([0.0, 1e-12, 0.3, 1.0, 1.5])
    lr, n = 0.8, 2
    g = gd_filter(s, lr, n, 25)
    x = lr * s / n
    np.testing.assert_allclose(g[2:], (1 - (1 - x[2:]) ** 25) / s[2:], rtol=1e-12)
    assert g[0] == lr * 25 / n  # λ → 0: ηT/n
    # Where the power formula loses every digit (x = 4e-13), the filter keeps them: its
    # Taylor expansion (ηT/n)(1 − (T − 1)x/2) is exact to O(x²).
    np.testing.assert_allclose(g[1], lr * 25 / n * (1 - 12 * x[1]), rtol=1e-15)
    np.testing.assert_allclose(gd_filter(s[2:], lr, n, np.inf), 1 / s[2:], rtol=1e-15)
    assert np.all(gd_filter(s, lr, n, 0) == 0)


def test_linearized_prediction_equals_gradient_descent_on_the_linear_model():
    g = torch.Generator().manual_seed(0)
    n, m, steps = 12, 5, 40
    # rank 30 ≥ n (full rank), and rank 6 < n (zero eigenvalues: g_T(0) = ηT/n)
    for rank, fraction in [(rank, f) for rank in (30, 6) for f in (0.3, 1.0, 1.9)]:
        a = torch.randn(n + m, rank, generator=g, dtype=torch.float64)
        kernel = a @ a.T  # PSD: [train + eval] × [train + eval]
        k_train, k_eval = kernel[:n, :n], kernel[n:, :n]
        residual = torch.randn(n, 2, generator=g, dtype=torch.float64)
        lr = fraction * n / float(torch.linalg.eigvalsh(k_train)[-1])  # 1.9: oscillating modes
        # Explicit GD on f_lin: the training residual r_t = (I − ηΘ/n)^t r_0, and every
        # output moves by (η/n) Θ(x, X) r_t per step.
        r, moved = residual.clone(), torch.zeros(m, 2, dtype=torch.float64)
        moved_train = torch.zeros(n, 2, dtype=torch.float64)
        for _ in range(steps):
            moved += lr / n * k_eval @ r
            moved_train += lr / n * k_train @ r
            r = r - lr / n * k_train @ r
        closed = linearized_prediction(k_train, k_eval, residual, lr, steps)
        torch.testing.assert_close(closed, moved, rtol=1e-9, atol=1e-9)
        closed_train = linearized_prediction(k_train, k_train, residual, lr, steps)
        torch.testing.assert_close(closed_train, moved_train, rtol=1e-9, atol=1e-9)
        torch.testing.assert_close(residual - closed_train, r, rtol=1e-8, atol=1e-9)


def test_linearized_prediction_with_output_blocks_counts_points_not_rows():
    # A kernel with k decoupled output blocks, Θ ⊗ I_k on rows (point, output), moves each
    # output column as Θ does, when the loss's n is the number of points.
    rng = np.random.default_rng(4)
    a = rng.standard_normal((6, 6))
    theta = torch.as_tensor(a @ a.T + 6 * np.eye(6))
    cross = torch.as_tensor(rng.standard_normal((4, 6)))
    residual = torch.as_tensor(rng.standard_normal((6, 3)))
    lr = 0.5 * 6 / float(torch.linalg.eigvalsh(theta)[-1])
    eye = torch.eye(3, dtype=torch.float64)
    blocks = linearized_prediction(
        torch.kron(theta, eye), torch.kron(cross, eye), residual.reshape(-1, 1), lr, 7, n_points=6
    )
    columns = linearized_prediction(theta, cross, residual, lr, 7)
    torch.testing.assert_close(blocks.reshape(4, 3), columns, rtol=1e-12, atol=1e-12)
