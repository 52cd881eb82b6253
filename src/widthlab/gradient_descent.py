"""Full-batch gradient descent on squared losses, explicit and in closed form, float64.

For the loss (1/2n)‖y − Hβ‖² from β₀ = 0 with step η (`widthlab.solvers` conventions: H is
n × d, rows h(x_i)), β_{t+1} = β_t + (η/n) Hᵀ(y − Hβ_t). Along an eigenvector of the Gram
with eigenvalue s, the residual contracts by (1 − ηs/n) per step, so after t steps

    β_t = V diag(g_t(s)) Vᵀ Hᵀy,      g_t(s) = (1 − (1 − ηs/n)^t) / s,      g_t(0) = ηt/n,

(HᵀH = V diag(s) Vᵀ; equivalently β_t = Hᵀ U diag(g_t(s)) Uᵀ y with HHᵀ = U diag(s) Uᵀ). This
spectral filter `gd_filter` is the one place the formula lives: the random-features GD
checks and the linearized network of the lazy-training study both use it. It is exact for
t discrete steps; e^{−ηst/n} is its small-η limit. t = ∞ gives 1/s, the minimum-norm
solution H⁺y, when every mode converges (η < 2n/s_max).
"""

from __future__ import annotations

import numpy as np
import torch

from widthlab.solvers import _problem, _route, default_rtol, gram


def default_learning_rate(h: np.ndarray) -> float:
    """η = 1/λ_max((1/n)HᵀH): the largest step with every mode of GD monotone (η < 2/λ_max
    is the stability limit); the top mode converges in a single step."""
    h = np.asarray(h, dtype=np.float64)
    n, d = h.shape
    gram = h @ h.T if n <= d else h.T @ h
    return n / float(np.linalg.eigvalsh(gram)[-1])


def gd_filter(s: np.ndarray, lr: float, n: int, t) -> np.ndarray:
    """g_t(s) = (1 − (1 − ηs/n)^t)/s elementwise (module docstring), for eigenvalues `s` ≥ 0
    and t a number or an array broadcasting against s (np.inf allowed).

    (1 − x)^t is evaluated as exp(t·log1p(−x)) through expm1 for x ≤ 1, where the power alone
    loses digits as x → 0 (g_t → ηt/n smoothly); for 1 < x < 2 the mode oscillates and
    1 − (1 − x)^t has no cancellation. t = 0 gives 0.
    """
    s = np.asarray(s, dtype=np.float64)
    t = np.asarray(t, dtype=np.float64)
    x = lr * s / n
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        decayed = np.where(
            x <= 1, -np.expm1(t * np.log1p(-np.minimum(x, 1.0))), 1.0 - np.power(1.0 - x, t)
        )
        g = np.where(s > 0, decayed / np.where(s > 0, s, 1.0), lr * t / n)
    return np.where(t == 0, 0.0, g)


def gradient_descent(
    h: np.ndarray, y: np.ndarray, steps: int, lr: float | None = None
) -> np.ndarray:
    """β_T of full-batch GD on (1/2n)‖y − Hβ‖² from β₀ = 0, step by step:
    β_{t+1} = β_t + η (1/n) Σ_i (y_i − h(x_i)ᵀβ_t) h(x_i). Default η: `default_learning_rate`.
    """
    h, y = _problem(h, y)
    lr = default_learning_rate(h) if lr is None else float(lr)
    beta = np.zeros(h.shape[1])
    step = lr / h.shape[0]
    for _ in range(int(steps)):
        beta += step * (h.T @ (y - h @ beta))
    return beta


def gradient_descent_dual(
    h: np.ndarray, y: np.ndarray, steps: int, lr: float, kernel: np.ndarray | None = None
) -> np.ndarray:
    """The same β_T as `gradient_descent`, iterated in the n-dimensional dual.

    From β₀ = 0 every update (η/n)Hᵀ(y − Hβ_t) lies in the row space of H, so β_t = Hᵀc_t
    with c₀ = 0 and c_{t+1} = c_t + (η/n)(y − K c_t), K = HHᵀ: the identical iterates, at
    O(n²) per step instead of O(nd) (d ≫ n in the interpolating regime). This is still the
    explicit step-by-step iteration, not the spectral formula of
    `gradient_descent_closed_form`, so comparing the two checks one against the other.
    `kernel`: K when the caller has it (it must be HHᵀ of this H).
    """
    h, y = _problem(h, y)
    k = h @ h.T if kernel is None else np.asarray(kernel, dtype=np.float64)
    if k.shape != (h.shape[0], h.shape[0]):
        raise ValueError(f"kernel must be HHᵀ, shape {(h.shape[0],) * 2}; got {k.shape}")
    c = np.zeros(h.shape[0])
    step = float(lr) / h.shape[0]
    for _ in range(int(steps)):
        c += step * (y - k @ c)
    return h.T @ c


def gradient_descent_closed_form(
    h: np.ndarray,
    y: np.ndarray,
    t,
    lr: float | None = None,
    *,
    route: str = "auto",
    rtol: float | None = None,
    eigh: tuple[np.ndarray, np.ndarray] | None = None,
) -> np.ndarray:
    """β_t of `gradient_descent` in closed form (`gd_filter`), for one t or an array of t.

    Eigenvalues below the pseudo-inverse cutoff (`widthlab.solvers`) are the null space,
    where Hᵀy has no component. Returns β_t with shape [d] for scalar t, [len(t), d]
    otherwise; t = ∞ needs η < 2n/s_max. `eigh`: the route's Gram eigendecomposition, when
    the caller has it.
    """
    h, y = _problem(h, y)
    n, d = h.shape
    lr = default_learning_rate(h) if lr is None else float(lr)
    route = _route(n, d, route)
    rtol = default_rtol(n, d) if rtol is None else rtol
    ts = np.atleast_1d(np.asarray(t, dtype=np.float64))
    if ts.ndim != 1 or np.any(ts < 0) or np.any(np.isnan(ts)):
        raise ValueError(f"t must be a number ≥ 0 or a 1-D array of them, got {t!r}")
    s, v = eigh if eigh is not None else np.linalg.eigh(gram(h, route))
    keep = s > rtol * max(float(s[-1]), 0.0)
    s, v = s[keep], v[:, keep]
    if np.any(np.isinf(ts)) and np.any(lr * s / n >= 2):
        raise ValueError(f"lr={lr} ≥ 2/λ_max((1/n)HᵀH): gradient descent diverges at t = ∞")
    phi = gd_filter(s, lr, n, ts[:, None])
    proj = v.T @ (y if route == "kernel" else h.T @ y)
    betas = (phi * proj) @ v.T
    if route == "kernel":
        betas = betas @ h
    return betas[0] if np.ndim(t) == 0 else betas


def linearized_prediction(
    kernel_train: torch.Tensor,
    kernel_eval: torch.Tensor,
    residual: torch.Tensor,
    lr: float,
    steps: int,
    n_points: int | None = None,
) -> torch.Tensor:
    """How T steps of GD on the network linearized at θ₀ move its outputs at the rows of
    `kernel_eval`: Θ(x, X) g_T(Θ) r, with Θ the NTK on the training inputs (n × n),
    r = y − f₀(X) the training residual and g_T the filter above (the loss is
    (1/2n)Σ(y − f)², so the outputs move by −(η/n)Θ(f − y) per step).

    `n_points`: the n of the loss, when it is not the kernel's size: a kernel with its k
    output blocks is nk × nk (rows (point, output), r flattened alike) while the loss still
    averages over the n points."""
    n = kernel_train.shape[0] if n_points is None else int(n_points)
    lam, vec = torch.linalg.eigh(kernel_train)
    lam = lam.clamp_min(0.0)  # round-off below 0 on a PSD kernel
    g = gd_filter(lam.cpu().numpy(), lr, n, steps)
    g = torch.as_tensor(g, dtype=kernel_train.dtype, device=kernel_train.device)
    return kernel_eval @ (vec @ (g[:, None] * (vec.T @ residual)))
