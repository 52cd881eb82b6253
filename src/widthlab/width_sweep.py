"""Ridge(less) fits at many nested widths from one draw of random features, float64.

The double-descent sweep of `widthlab.models.random_features` fits every width d of a grid
on the first d columns of one feature draw. `width_sweep` shares the work across widths
(rank updates of one Gram, leading blocks of another) and factors each (width, ridge) once,
with the conventions of `widthlab.solvers` (ridge (1/n)‖y − Hβ‖² + λ‖β‖², pseudo-inverse
cutoff rtol·s_max).
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.linalg import blas, lapack

from widthlab.solvers import _check_ridge, _spectral_weights, default_rtol


@dataclass(frozen=True)
class WidthSweepResult:
    """Per (ridge λ_l, width d_j) results; arrays are [L, W] ([L, W, m] for predictions).

    `routes[j]` is "primal" (d×d Gram, d < n) or "kernel" (n×n Gram); `methods[l][j]` is
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
    gram_un: np.ndarray,
    scale: float,
    n: int,
    ridge: float,
    rtol: float,
    exact_condition: bool,
    upper_only: bool = False,
    work: np.ndarray | None = None,
    scratch: np.ndarray | None = None,
):
    """A solver for (scale·gram_un + nλI)z = r, its condition number and the method used.

    Cholesky is used when LAPACK's κ₁ estimate is below 1/(size·rtol): κ₂ ≤ size·κ₁, so then
    no eigenvalue would fall under the cutoff and the eigh pseudo-inverse would coincide.
    `upper_only`: only the upper triangle of `gram_un` holds the matrix and its strict lower
    triangle is zero (a syrk's output). `work` (float64, at least size² entries) holds the
    factor, so the returned solver is valid until the next call with the same `work`;
    `scratch` (the same size) takes the entry-wise |·| of the 1-norm (fresh arrays otherwise).
    """
    size = gram_un.shape[0]
    if work is None:
        m = np.empty((size, size), order="F")
    else:
        m = np.ndarray((size, size), dtype=np.float64, buffer=work, order="F")
    np.multiply(gram_un, scale, out=m)
    m.flat[:: size + 1] += n * ridge
    if upper_only:
        # The 1-norm of the symmetric matrix from its upper triangle U (zero below):
        # column j sums U's column j and U's row j, counting the diagonal once.
        a = np.abs(m, out=None if scratch is None else _view(scratch, size, size, "F"))
        anorm = float(np.max(a.sum(axis=0) + a.sum(axis=1) - np.abs(np.diagonal(m))))
    else:
        anorm = lapack.dlange("1", m)
    cf, info = lapack.dpotrf(m, lower=0, overwrite_a=1, clean=0)
    uplo = "U" if upper_only else "L"
    if info == 0:
        rcond, _ = lapack.dpocon(cf, anorm)
        if rcond > size * rtol:
            cond = 1.0 / rcond
            if exact_condition:
                ev = np.linalg.eigvalsh(gram_un * scale, UPLO=uplo)
                cond = (ev[-1] + n * ridge) / (ev[0] + n * ridge)
            return (lambda r: lapack.dpotrs(cf, r)[0]), cond, "cholesky"
    s, v = np.linalg.eigh(gram_un * scale, UPLO=uplo)
    w = _spectral_weights(s, n, ridge, rtol)
    lo = max(float(s[0]), 0.0) + n * ridge
    cond = (s[-1] + n * ridge) / lo if lo > 0 else float("inf")
    return (lambda r: v @ (w * (v.T @ r))), cond, "eigh"


def _view(buffer: np.ndarray, rows: int, cols: int, order: str) -> np.ndarray:
    """A [rows, cols] float64 array on the first rows·cols entries of `buffer`."""
    return np.ndarray((rows, cols), dtype=np.float64, buffer=buffer, order=order)


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
    # Either memory layout is used as it comes (no copy of the [n, d_max] features): the
    # passes over S[:, :d] are numpy products, which take a row- or column-strided block.
    s_all = np.asarray(features_train, dtype=np.float64)
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
    t_all = None if features_test is None else np.asarray(features_test, dtype=np.float64)
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
    # Reused buffers (a fresh n×n or n×block array per width costs page faults): the factor
    # of the current (width, ridge), the |·| of its 1-norm, and a column-block copy of
    # row-major features for the rank update.
    work, scratch = np.empty(n * n), np.empty(n * n)
    big = [int(d) for d in ws if d >= n]
    steps = np.diff([0, *big]) if big else np.zeros(0, dtype=int)
    block_buf = None if s_all.flags.f_contiguous or not big else np.empty(n * int(steps.max()))
    # The factorisations and rank updates go to scipy's LAPACK/BLAS, the matrix-vector passes
    # over the features to numpy's; both run on the threads `width_sweep` allows (one by
    # default: two BLAS thread pools alternating stalled each call on 2 shared cores).
    for j, d in enumerate(ws):
        d = int(d)
        sd, scale = s_all[:, :d], 1.0 / np.sqrt(d)
        if d < n:
            gram_un, rhs = g_small[:d, :d], b_small[:d] * scale
        else:
            if d > done:  # in-place rank update of the upper triangle (syrk: half a gemm's
                # flops) by the columns done..d
                k_un = _rank_update(k_un, s_all, done, d, block_buf)
                done = d
            gram_un, rhs = k_un, y
        for li, lam in enumerate(lams):
            solve, cond, methods[li][j] = _factor_psd(
                gram_un, 1.0 / d, n, lam, rtol_of(d), exact_condition, d >= n, work, scratch
            )
            z = solve(rhs)
            beta = (sd.T @ z) * scale if d >= n else z
            fit = (sd @ beta) * scale
            out["tr"][li, j] = np.mean((y - fit) ** 2)
            out["bn"][li, j] = np.linalg.norm(beta)
            out["cond"][li, j] = cond
            if d >= n and lam == 0:
                out["feas"][li, j] = np.linalg.norm(fit - y) / np.linalg.norm(y)
                c = solve(fit)  # multipliers of Hᵀc ≈ β from the normal equations K c = Hβ
                resid = beta - (sd.T @ c) * scale
                out["stat"][li, j] = np.linalg.norm(resid) / np.linalg.norm(beta)
            if preds is not None:
                preds[li, j] = (t_all[:, :d] @ beta) * scale


def _rank_update(k_un, s_all, lo, hi, block_buf):
    """k_un += S[:, lo:hi] S[:, lo:hi]ᵀ in its upper triangle (syrk, in place). Column-major S
    gives the block as it is; row-major S is copied block-wise into `block_buf` first (the
    BLAS wrapper takes contiguous arrays only)."""
    if block_buf is None:
        return blas.dsyrk(1.0, s_all[:, lo:hi], beta=1.0, c=k_un, overwrite_c=1)
    block = _view(block_buf, s_all.shape[0], hi - lo, "C")
    np.copyto(block, s_all[:, lo:hi])
    # block is row-major [n, b], i.e. its transpose is a column-major [b, n] array: aᵀa.
    return blas.dsyrk(1.0, block.T, beta=1.0, c=k_un, trans=1, overwrite_c=1)


def nested_grams(features: np.ndarray, widths: Sequence[int]):
    """For each width d of an increasing grid: (d, route, Gram of H_d = S[:, :d]/√d).

    `features` is the unscaled S = σ(XA) [n, d_max]. The route is "kernel" for d ≥ n (the
    n × n Gram K_d = (Σ_{k ≤ d} s_k s_kᵀ)/d, accumulated by rank updates across widths) and
    "primal" for d < n (G_d = S_dᵀS_d/d, the leading block of one S_{d'}ᵀS_{d'}, d' the
    largest width below n): every column enters each Gram once, not once per width.
    """
    s_all = np.asarray(features, dtype=np.float64)
    n = s_all.shape[0]
    ws = [int(d) for d in widths]
    if any(b <= a for a, b in itertools.pairwise(ws)) or ws[0] < 1 or ws[-1] > s_all.shape[1]:
        raise ValueError(f"widths must be strictly increasing integers in [1, {s_all.shape[1]}]")
    small = [d for d in ws if d < n]
    g_small = s_all[:, : small[-1]].T @ s_all[:, : small[-1]] if small else None
    k_un, done = np.zeros((n, n)), 0
    for d in ws:
        if d < n:
            yield d, "primal", g_small[:d, :d] / d
            continue
        block = s_all[:, done:d]
        k_un += block @ block.T
        done = d
        yield d, "kernel", k_un / d
