"""The job of `double_descent_rf`: random-features fits at every width of the sweep for one
training set and one feature draw.

One job = (data set, seed). Replicate `seed` trains on block `seed` of `study.n_train`
points of the data set's training pool (disjoint blocks, so seeds are independent draws of
the training set as well as of the features; `study.n_train: null` trains every seed on the
whole pool) and tests on the data set's test split.

The model (`widthlab.models.random_features`): f(x) = h(x)ᵀβ, h_k(x) = σ(xᵀα_k)/√d, with the
features α_k drawn once from the seed and nested across widths (the first d columns of the
widest draw), d = round(r · n) for every ratio r of `study.width_ratios`. β is the
ridge(less) solution of (1/n)‖y − Hβ‖² + λ‖β‖² for every λ of `study.ridges` (`widthlab.
solvers`; Mei–Montanari's λ is D·λ), from one eigendecomposition of the width's Gram
(`widthlab.width_sweep.nested_grams`). Per width and ridge (`width=<d>,ridge=<λ>` in the
record):
  test_mse        mean over test points of ‖f̂(x) − y‖² against the noisy test labels;
  excess_risk     mean of (f̂(x) − f★(x))² against the noiseless target (regression data);
  test_error / train_error   misclassification rates (classification data);
  train_mse, beta_norm ‖β‖, gram_condition (s_max/s_min of the λ-free Gram);
  theory_excess_risk   Mei & Montanari (2019) at ψ₁ = d/D, ψ₂ = n/D (sphere_linear only);
  kernel_limit_*  the same errors for kernel ridge(less) regression with the analytic
                  infinite-width kernel E_α[σ(xᵀα)σ(x'ᵀα)] (exact for Gaussian features);
and, for ridgeless fits with d ≥ n on regression data, the KKT check of min ‖β‖² s.t. Hβ = y
(primal feasibility, stationarity, against an independent least-squares solve) and gradient
descent from β₀ = 0 (`widthlab.gradient_descent`): the closed form at t = ∞ against β̂, the
explicit iteration (in the dual, β_t = Hᵀc_t) against the closed form after
`study.gd_check_steps` steps, the steps after which ‖β_t − β̂‖/‖β̂‖ ≤ `study.gd_tolerance` is
guaranteed, log(tol)/log(1 − η s_min/n) (the slowest mode's contraction), and the excess risk
of early-stopped GD at `study.gd_times`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig

from widthlab.dataset import Dataset
from widthlab.distances import relative_distance
from widthlab.gradient_descent import gradient_descent_closed_form, gradient_descent_dual
from widthlab.kernels import random_features_kernel
from widthlab.models.random_features import draw_features, feature_activations
from widthlab.rf_theory import mei_montanari_risk
from widthlab.runtime.datafiles import load_job_data
from widthlab.solvers import kernel_ridge_regression, kkt_residuals, ridge_path
from widthlab.width_sweep import nested_grams


def width_ratios(study: Any) -> list[float]:
    """The ratios d/n a job fits: `study.width_ratios`, or every ratio of
    `study.width_ratio_grid` when that is null (the laptop and gpu profiles)."""
    ratios = study["width_ratios"]
    return list(study["width_ratio_grid"] if ratios is None else ratios)


def widths_for(ratios: list[float], n: int) -> list[int]:
    """d = max(1, round(r·n)) for each ratio, in the order given."""
    return [max(1, round(r * n)) for r in ratios]


def prediction_metrics(ds: Dataset, pred_train: np.ndarray, pred_test: np.ndarray) -> dict:
    """Errors of predictions on both splits (conventions in the module docstring)."""

    def sq(a, b):
        d = (a - b).reshape(a.shape[0], -1)
        return float(np.mean(np.sum(d**2, axis=1)))

    out = {"train_mse": sq(pred_train, ds.y_train), "test_mse": sq(pred_test, ds.y_test)}
    if ds.task == "regression":
        out["excess_risk"] = sq(pred_test, ds.extras["f_test"])
    else:
        out["train_error"] = float(np.mean(pred_train.argmax(1) != ds.y_train.argmax(1)))
        out["test_error"] = float(np.mean(pred_test.argmax(1) != ds.y_test.argmax(1)))
    return out


def training_set(ds: Dataset, n_train: int | None, seed: int) -> Dataset:
    """The training set of replicate `seed`: block `seed` of `n_train` points of the data
    set's training pool (disjoint blocks: independent training sets), or the whole pool."""
    if n_train is None:
        return ds
    block = slice(seed * n_train, (seed + 1) * n_train)
    extras = dict(ds.extras)
    if "f_train" in extras:
        extras["f_train"] = extras["f_train"][block]
    return replace(ds, x_train=ds.x_train[block], y_train=ds.y_train[block], extras=extras)


def kernel_limits(ds: Dataset, activation: str, ridges: list[float]) -> dict[float, dict]:
    """Errors of the d → ∞ limit, kernel ridge(less) regression with the analytic kernel."""
    x_train = torch.as_tensor(ds.x_train, dtype=torch.float64)
    x_test = torch.as_tensor(ds.x_test, dtype=torch.float64)
    k_train = random_features_kernel(x_train, activation=activation).numpy()
    k_test = random_features_kernel(x_test, x_train, activation=activation).numpy()
    out = {}
    for ridge in ridges:
        fit = kernel_ridge_regression(k_train, ds.y_train, k_test, ridge)
        limit = prediction_metrics(ds, fit.train_predictions, fit.test_predictions)
        out[ridge] = {f"kernel_limit_{k}": v for k, v in limit.items()}
    return out


def measure(cfg: DictConfig) -> dict[str, Any]:
    """One data set and seed: every width and ridge of the sweep, with the theory and the checks."""
    m, s = cfg.model, cfg.study
    ds = training_set(load_job_data(cfg), s.n_train, int(cfg.seed))
    n, dim = ds.x_train.shape
    ridges = [float(r) for r in s.ridges]
    widths = widths_for(width_ratios(s), n)
    alpha = draw_features(dim, max(widths), m.feature_distribution, int(cfg.seed))
    s_train = feature_activations(ds.x_train, alpha, m.activation)
    s_test = feature_activations(ds.x_test, alpha, m.activation)
    limits = kernel_limits(ds, m.activation, ridges)
    metrics: dict[str, Any] = {"n_train": n, "dim": dim}
    for d, route, gram in nested_grams(s_train, widths):
        scale = 1.0 / math.sqrt(d)
        h_train = s_train[:, :d] * scale
        # Test features stay an unscaled view (no [m, d] copy per width): H_test β = S_test β/√d.
        h_test = _ScaledView(s_test[:, :d], scale)
        eig = np.linalg.eigh(gram)
        solutions = ridge_path(h_train, ds.y_train, ridges, route=route, eigh=eig)
        for ridge, sol in zip(ridges, solutions, strict=True):
            out = {
                "gram_condition": sol.gram_condition,
                "beta_norm": float(np.linalg.norm(sol.beta)),
                **prediction_metrics(ds, h_train @ sol.beta, h_test @ sol.beta),
                **limits[ridge],
            }
            if ds.name == "sphere_linear":
                st = ds.settings
                out["theory_excess_risk"] = mei_montanari_risk(
                    d / dim,
                    n / dim,
                    dim * ridge,
                    activation=m.activation,
                    signal=st["signal"],
                    nonlinear=st["nonlinear"],
                    noise=st["noise"],
                )
            if ridge == 0 and d >= n and ds.task == "regression":
                out.update(gradient_descent_checks(s, ds, h_train, h_test, sol, gram, eig))
            metrics[f"width={d},ridge={ridge:g}"] = out
    return metrics


def gradient_descent_checks(s, ds, h_train, h_test, solution, gram, eig) -> dict[str, Any]:
    """KKT residuals of β̂ and how gradient descent from zero reaches it; the width's Gram
    K = HHᵀ runs the explicit iteration in the dual (`gradient_descent_dual`, the same
    iterates at O(n²) a step), its eigendecomposition gives the learning rate, the slowest
    mode and the closed form."""
    y, beta_min_norm = ds.y_train, solution.beta
    kkt = kkt_residuals(h_train, y, beta_min_norm)
    eigenvalues = solution.gram_eigenvalues  # of HHᵀ, ascending
    lr = len(y) / float(eigenvalues[-1])  # η = 1/λ_max((1/n)HᵀH)
    steps = int(s.gd_check_steps)
    explicit = gradient_descent_dual(h_train, y, steps, lr, gram)
    times = [float(t) for t in s.gd_times]
    beta_inf, closed, *betas = gradient_descent_closed_form(
        h_train, y, np.asarray([np.inf, steps, *times]), lr, route="kernel", eigh=eig
    )
    # GD contracts the error along the Gram's eigenvector i by (1 − η s_i/n) per step, so
    # reaching `tol` of β̂ takes log(tol)/log(1 − η s_min/n) steps (s_min > 0 for d ≥ n).
    rate = lr * eigenvalues[0] / len(y)
    tol = float(s.gd_tolerance)
    steps_needed = np.log(tol) / np.log1p(-rate) if 0 < rate < 1 else float("inf")
    early_predictions = h_test @ np.stack(betas, axis=1)  # [m, len(times)]
    f_test = np.asarray(ds.extras["f_test"]).reshape(-1, 1)
    early = [float(v) for v in np.mean((early_predictions - f_test) ** 2, axis=0)]
    return {
        "kkt_feasibility": kkt.primal_feasibility,
        "kkt_stationarity": kkt.stationarity,
        "gd_limit_distance": relative_distance(beta_inf, beta_min_norm),
        "gd_explicit_vs_closed_form": relative_distance(explicit, closed),
        "gd_steps_to_min_norm": float(steps_needed),
        "gd_learning_rate": lr,
        "gd_times": times,
        "gd_excess_risk": early,
    }


class _ScaledView:
    """A feature block S[:, :d] times 1/√d, multiplied without forming the scaled copy."""

    def __init__(self, block: np.ndarray, scale: float):
        self.block, self.scale = block, scale

    def __matmul__(self, other: np.ndarray) -> np.ndarray:
        return (self.block @ other) * self.scale


def peak_memory(cfg: Mapping[str, Any]) -> float:
    """Bytes: the unscaled features on both splits at the widest d, their scaled copies, the
    n × n Grams and eigenvectors, and the analytic kernel on train and test."""
    s, data = cfg["study"], cfg["data"]
    n = s["n_train"] or data["n_train"]
    m = data.get("n_test") or 1797 - data["n_train"]  # digits: every image left
    d = max(1, round(max(width_ratios(s)) * n))
    return 8 * (2 * (n + m) * d + 6 * n * n + 2 * (n + m) * n)
