"""Closed-form and iterative least-squares solvers for (random-)feature regression, float64.

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

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.linalg import blas, lapack

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
) -> list[LinearSolution]:
    """`ridge_solution` for several λ from one eigendecomposition of the Gram."""
    h, y = _problem(h, y, multi_output=True)
    ridges = [_check_ridge(r) for r in ridges]
    n, d = h.shape
    route = _route(n, d, route)
    rtol = default_rtol(n, d) if rtol is None else rtol
    s, v = np.linalg.eigh(h @ h.T if route == "kernel" else h.T @ h)
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


def default_learning_rate(h: np.ndarray) -> float:
    """η = 1/λ_max((1/n)HᵀH): the largest step with every mode of GD monotone (η < 2/λ_max
    is the stability limit); the top mode converges in a single step."""
    h = np.asarray(h, dtype=np.float64)
    n, d = h.shape
    gram = h @ h.T if n <= d else h.T @ h
    return n / float(np.linalg.eigvalsh(gram)[-1])


def gradient_descent(
    h: np.ndarray, y: np.ndarray, steps: int, lr: float | None = None
) -> np.ndarray:
    """β_T of full-batch GD on (1/2n)‖y − Hβ‖² from β₀ = 0:
    β_{t+1} = β_t + η (1/n) Σ_i (y_i − h(x_i)ᵀβ_t) h(x_i). Default η: `default_learning_rate`.
    """
    h, y = _problem(h, y)
    lr = default_learning_rate(h) if lr is None else float(lr)
    beta = np.zeros(h.shape[1])
    step = lr / h.shape[0]
    for _ in range(int(steps)):
        beta += step * (h.T @ (y - h @ beta))
    return beta


def gradient_descent_closed_form(
    h: np.ndarray,
    y: np.ndarray,
    t,
    lr: float | None = None,
    *,
    route: str = "auto",
    rtol: float | None = None,
) -> np.ndarray:
    """β_t of `gradient_descent` in closed form, for one t or an array of t (np.inf allowed).

    With HᵀH = V diag(s) Vᵀ:  β_t = V diag(φ_t(s)) Vᵀ Hᵀy,  φ_t(s) = (1 − (1 − ηs/n)^t)/s,
    (equivalently β_t = Hᵀ U diag(φ_t(s)) Uᵀ y with HHᵀ = U diag(s) Uᵀ on the kernel route).
    (1 − x)^t is evaluated as exp(t·log1p(−x)) through expm1, so φ_t(s) → ηt/n smoothly as
    s → 0; t = ∞ gives φ = 1/s, the min-norm solution H⁺y (needs η < 2n/s_max). Eigenvalues
    below the cutoff (module docstring) are the null space, where Hᵀy has no component.
    Returns β_t with shape [d] for scalar t, [len(t), d] otherwise.
    """
    h, y = _problem(h, y)
    n, d = h.shape
    lr = default_learning_rate(h) if lr is None else float(lr)
    route = _route(n, d, route)
    rtol = default_rtol(n, d) if rtol is None else rtol
    ts = np.atleast_1d(np.asarray(t, dtype=np.float64))
    if ts.ndim != 1 or np.any(ts < 0) or np.any(np.isnan(ts)):
        raise ValueError(f"t must be a number ≥ 0 or a 1-D array of them, got {t!r}")
    s, v = np.linalg.eigh(h @ h.T if route == "kernel" else h.T @ h)
    keep = s > rtol * max(float(s[-1]), 0.0)
    s, v = s[keep], v[:, keep]
    x = lr * s / n
    if np.any(np.isinf(ts)) and np.any(x >= 2):
        raise ValueError(f"lr={lr} ≥ 2/λ_max((1/n)HᵀH): gradient descent diverges at t = ∞")
    tt = ts[:, None]
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        decayed = np.where(
            x <= 1,
            -np.expm1(tt * np.log1p(-np.minimum(x, 1.0))),
            1.0 - np.power(1.0 - x, tt),  # oscillating modes (1 < ηs/n < 2): no cancellation
        )
    phi = np.where(tt == 0, 0.0, decayed) / s
    proj = v.T @ (y if route == "kernel" else h.T @ y)
    betas = (phi * proj) @ v.T
    if route == "kernel":
        betas = betas @ h
    return betas[0] if np.ndim(t) == 0 else betas


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
    dist = float("nan")
    if beta_min_norm is not None:
        dist = float(np.linalg.norm(beta - beta_min_norm) / np.linalg.norm(beta_min_norm))
    return KKTResiduals(
        float(np.linalg.norm(h @ beta - y) / np.linalg.norm(y)),
        float(np.linalg.norm(beta - h.T @ c) / np.linalg.norm(beta)),
        dist,
        c,
    )


@dataclass(frozen=True)
class WidthSweepResult:
    """Per (ridge λ_l, width d_j) results; arrays are [L, W] ([L, W, m] for predictions).

    routes[j] is "primal" (d×d Gram, d < n) or "kernel" (n×n Gram); methods[l][j] is
    "cholesky" or "eigh" (fallback with the pseudo-inverse cutoff). gram_condition is LAPACK's
    1-norm estimate of κ₁(Gram + nλI) on the Cholesky path and the exact κ₂ on the eigh path
    (or always κ₂ with exact_condition=True). KKT residuals are nan unless λ = 0 and d ≥ n;
    their multipliers solve the normal equations K_d c = Hβ of min‖Hᵀc − β‖ with the same
    factorisation (cheap, so only a round-off check here; `kkt_residuals` uses an independent
    lstsq). train_error = (1/n)‖y − Hβ‖²; test_error = mean((f̂(x_test) − y_test)²).
    """

    widths: np.ndarray
    ridges: np.ndarray
    routes: list[str]
    methods: list[list[str]]
    train_error: np.ndarray
    beta_norm: np.ndarray
    gram_condition: np.ndarray
    kkt_feasibility: np.ndarray
    kkt_stationarity: np.ndarray
    test_predictions: np.ndarray | None
    test_error: np.ndarray | None


def _factor_psd(
    gram_un: np.ndarray, scale: float, n: int, ridge: float, rtol: float, exact_condition: bool
):
    """A solver for (scale·gram_un + nλI)z = r, its condition number and the method used.

    Cholesky is used when LAPACK's κ₁ estimate is below 1/(size·rtol): κ₂ ≤ size·κ₁, so then
    no eigenvalue would fall under the cutoff and the eigh pseudo-inverse would coincide.
    """
    size = gram_un.shape[0]
    m = np.asfortranarray(gram_un * scale)
    m.flat[:: size + 1] += n * ridge
    anorm = lapack.dlange("1", m)
    cf, info = lapack.dpotrf(m, lower=0, overwrite_a=1, clean=0)
    if info == 0:
        rcond, _ = lapack.dpocon(cf, anorm)
        if rcond > size * rtol:
            cond = 1.0 / rcond
            if exact_condition:
                ev = np.linalg.eigvalsh(gram_un * scale)
                cond = (ev[-1] + n * ridge) / (ev[0] + n * ridge)
            return (lambda r: lapack.dpotrs(cf, r)[0]), cond, "cholesky"
    s, v = np.linalg.eigh(gram_un * scale)
    w = _spectral_weights(s, n, ridge, rtol)
    lo = max(float(s[0]), 0.0) + n * ridge
    cond = (s[-1] + n * ridge) / lo if lo > 0 else float("inf")
    return (lambda r: v @ (w * (v.T @ r))), cond, "eigh"


def width_sweep(
    features_train: np.ndarray,
    y_train: np.ndarray,
    widths: Sequence[int],
    features_test: np.ndarray | None = None,
    y_test: np.ndarray | None = None,
    *,
    ridges: Sequence[float] | float = (0.0,),
    rtol: float | None = None,
    exact_condition: bool = False,
    blas_threads: int | None = 1,
) -> WidthSweepResult:
    """Ridge(less) fits at nested widths d_1 < … < d_W from one unscaled draw S = σ(XA).

    `features_train` is S [n, d_max] (`feature_activations`), H_d = S[:, :d]/√d. Shared work:
    for d ≥ n the unscaled kernel Σ_{k≤d} s_k s_kᵀ is accumulated by rank-(d − d_prev) updates
    and K_d = (that)/d; for d < n every G_d = H_dᵀH_d is the leading d×d block of one
    S[:, :d']ᵀS[:, :d'] (d' the largest width below n, so that block stays ≤ n×n), divided by d.
    Each (d, λ) is then one Cholesky (eigh fallback near d ≈ n) shared by all outputs.
    `blas_threads` caps BLAS threads during the sweep (None: leave them): multithreaded
    factorisations of ≤ 1000×1000 Grams stalled for 10-100x their cost on loaded shared cores.
    """
    s_all = np.asfortranarray(features_train, dtype=np.float64)
    y = np.asarray(y_train, dtype=np.float64)
    n, d_max = s_all.shape
    if y.shape != (n,):
        raise ValueError(f"y_train must be [{n}], got {y.shape}")
    ws = np.asarray(widths)
    if (
        ws.ndim != 1
        or ws.size == 0
        or not np.issubdtype(ws.dtype, np.integer)
        or np.any(np.diff(ws) <= 0)
        or ws[0] < 1
        or ws[-1] > d_max
    ):
        raise ValueError(f"widths must be strictly increasing integers in [1, {d_max}]")
    lams = np.atleast_1d(np.asarray(ridges, dtype=np.float64))
    for lam in lams:
        _check_ridge(lam)
    rtol_of = (lambda d: default_rtol(n, d)) if rtol is None else (lambda d: rtol)
    t_all = None if features_test is None else np.asfortranarray(features_test, dtype=np.float64)
    if t_all is not None and t_all.shape[1] != d_max:
        raise ValueError(f"features_test must be [m, {d_max}], got {t_all.shape}")
    shape = (lams.size, ws.size)
    out = {k: np.full(shape, np.nan) for k in ("tr", "bn", "cond", "feas", "stat")}
    preds = None if t_all is None else np.empty((*shape, t_all.shape[0]))
    methods = [[""] * ws.size for _ in lams]
    with limit_blas_threads(blas_threads):
        _sweep_loop(s_all, y, ws, lams, t_all, rtol_of, exact_condition, out, preds, methods)
    test_error = None
    if preds is not None and y_test is not None:
        test_error = np.mean((preds - np.asarray(y_test, dtype=np.float64)) ** 2, axis=-1)
    return WidthSweepResult(
        ws.copy(),
        lams,
        ["kernel" if d >= n else "primal" for d in ws],
        methods,
        out["tr"],
        out["bn"],
        out["cond"],
        out["feas"],
        out["stat"],
        preds,
        test_error,
    )


def limit_blas_threads(limit: int | None):
    """Context manager capping BLAS threads (threadpoolctl); None or no threadpoolctl: no-op."""
    if limit is None:
        return contextlib.nullcontext()
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - threadpoolctl comes with scikit-learn
        return contextlib.nullcontext()
    return threadpool_limits(limits=limit, user_api="blas")


def _sweep_loop(s_all, y, ws, lams, t_all, rtol_of, exact_condition, out, preds, methods):
    n = s_all.shape[0]
    small = ws[ws < n]
    if small.size:
        blk = s_all[:, : small[-1]]
        g_small, b_small = blk.T @ blk, blk.T @ y
    k_un, done = np.zeros((n, n), order="F"), 0
    # Every BLAS/LAPACK call in the loop goes to scipy's OpenBLAS; alternating with numpy's
    # (a second OpenBLAS with its own thread pool) made each call stall on 2 shared cores.
    for j, d in enumerate(ws):
        d = int(d)
        sd, scale = s_all[:, :d], 1.0 / np.sqrt(d)
        if d < n:
            gram_un, rhs = g_small[:d, :d], b_small[:d] * scale
        else:
            if d > done:  # in-place rank update; a fresh n×n buffer per width is slow
                k_un = blas.dgemm(1.0, s_all[:, done:d], s_all[:, done:d], 1.0, k_un, 0, 1, 1)
                done = d
            gram_un, rhs = k_un, y
        for li, lam in enumerate(lams):
            solve, cond, methods[li][j] = _factor_psd(
                gram_un, 1.0 / d, n, lam, rtol_of(d), exact_condition
            )
            z = solve(rhs)
            beta = blas.dgemv(scale, sd, z, trans=1) if d >= n else z
            fit = blas.dgemv(scale, sd, beta)
            out["tr"][li, j] = np.mean((y - fit) ** 2)
            out["bn"][li, j] = blas.dnrm2(beta)
            out["cond"][li, j] = cond
            if d >= n and lam == 0:
                out["feas"][li, j] = blas.dnrm2(fit - y) / blas.dnrm2(y)
                c = solve(fit)  # multipliers of Hᵀc ≈ β from the normal equations K c = Hβ
                resid = beta - blas.dgemv(scale, sd, c, trans=1)
                out["stat"][li, j] = blas.dnrm2(resid) / blas.dnrm2(beta)
            if preds is not None:
                preds[li, j] = blas.dgemv(scale, t_all[:, :d], beta)
