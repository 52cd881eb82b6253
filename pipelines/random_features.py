"""One job of the `double_descent_rf` study: a random-features fit at one width, seed and ridge.

Usage:
    python pipelines/random_features.py -m study=double_descent_rf         # sphere_linear sweep
    python pipelines/random_features.py -m study=double_descent_rf_digits  # digits, one-hot
    python pipelines/random_features.py study=double_descent_rf study.width_ratio=2.0 seed=3

One job = (data set, width ratio, seed); every ridge λ in `study.ridges` is solved in the job
from one eigendecomposition of the Gram. Replicate `seed` trains on block `seed` of
`study.n_train` points of the data set's training pool (disjoint blocks, so seeds are
independent draws of the training set as well as of the features; `study.n_train: null`
trains every seed on the whole pool) and tests on the data set's test split.

The model (`widthlab.models.random_features`): f(x) = h(x)ᵀβ, h_k(x) = σ(xᵀα_k)/√d, with
d = round(study.width_ratio · n) features α_k drawn from the seed (nested across widths:
the first d features at a larger width are these), β fitted in closed form by ridge(less)
regression with the convention (1/n)‖y − Hβ‖² + λ‖β‖² (`widthlab.solvers`;
Mei–Montanari's λ is D·λ). Per job and ridge (under `ridge=<λ>` in the record) it records:
  test_mse        mean over test points of ‖f̂(x) − y‖² against the noisy test labels;
  excess_risk     mean of (f̂(x) − f★(x))² against the noiseless target (regression data);
  test_error / train_error   misclassification rates (classification data);
  train_mse, beta_norm ‖β‖, gram_condition (s_max/s_min of the λ-free Gram);
  theory_excess_risk   Mei & Montanari (2019) asymptotics at ψ₁ = d/D, ψ₂ = n/D
                       (sphere_linear data only);
  kernel_limit_*  the same errors for kernel ridge(less) regression with the analytic
                  infinite-width kernel E_α[σ(xᵀα)σ(x'ᵀα)] (`widthlab.kernels`);
and, for ridgeless fits with d ≥ n on regression data, the KKT check of min ‖β‖² s.t.
Hβ = y (primal feasibility, stationarity) and gradient descent from β₀ = 0: the closed form
at t = ∞ against the min-norm β̂, the explicit iteration against the closed form after
`study.gd_check_steps` steps, `gd_steps_to_min_norm` — the number of steps after which
‖β_t − β̂‖/‖β̂‖ ≤ 1e-6 is guaranteed, log(1e-6)/log(1 − η s_min/n), the contraction of the
slowest eigenmode — and the excess risk of early-stopped GD at the times `study.gd_times`.

The kernel limit is exact for `model.feature_distribution: gaussian` (the default); for
sphere features the true d → ∞ kernel differs from it by O(1/D).
"""

from dataclasses import replace
from functools import cache

import hydra
import numpy as np
import torch
from omegaconf import DictConfig

from widthlab.data import Dataset, load_dataset
from widthlab.jobs import run_study_job
from widthlab.kernels import random_features_kernel
from widthlab.models.random_features import draw_features, feature_activations
from widthlab.rf_theory import mei_montanari_risk
from widthlab.schemas import validate_config
from widthlab.solvers import (
    gradient_descent,
    gradient_descent_closed_form,
    kernel_ridge_regression,
    kkt_residuals,
    ridge_path,
)
from widthlab.validation import (
    ConfigError,
    check_nonnegative,
    check_positive,
    check_positive_int,
    exit_on_config_error,
)


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
    """The training set of replicate `seed`: block `seed` of `n_train` points of the data set's
    training pool (disjoint blocks: independent training sets), or the whole pool if None."""
    if n_train is None:
        return ds
    pool = len(ds.x_train)
    check_positive_int("study.n_train", n_train)
    if (seed + 1) * n_train > pool:
        raise ConfigError(
            "study.n_train", n_train,
            f"(seed + 1)·n_train ≤ data.n_train = {pool} (one disjoint block per seed; "
            f"seed={seed})",
        )  # fmt: skip
    block = slice(seed * n_train, (seed + 1) * n_train)
    extras = dict(ds.extras)
    if "f_train" in extras:
        extras["f_train"] = extras["f_train"][block]
    return replace(ds, x_train=ds.x_train[block], y_train=ds.y_train[block], extras=extras)


@cache
def limit_kernels(data_dir: str, name: str, activation: str, n_train, seed):
    """The analytic d → ∞ kernel on a replicate's training set and test × training."""
    ds = training_set(load_dataset(name, data_dir), n_train, seed)
    x_train = torch.as_tensor(ds.x_train, dtype=torch.float64)
    x_test = torch.as_tensor(ds.x_test, dtype=torch.float64)
    k_train = random_features_kernel(x_train, activation=activation).numpy()
    k_test = random_features_kernel(x_test, x_train, activation=activation).numpy()
    return ds, k_train, k_test


@cache
def kernel_limit(data_dir: str, name: str, activation: str, ridge: float, n_train, seed) -> dict:
    """Errors of the d → ∞ limit: kernel ridge(less) regression with the analytic kernel."""
    ds, k_train, k_test = limit_kernels(data_dir, name, activation, n_train, seed)
    fit = kernel_ridge_regression(k_train, ds.y_train, k_test, ridge)
    return prediction_metrics(ds, fit.train_predictions, fit.test_predictions)


def measure(cfg: DictConfig) -> dict:
    m, s = cfg.model, cfg.study
    ridges = [check_nonnegative("study.ridges", r) for r in s.ridges]
    ratio = check_positive("study.width_ratio", s.width_ratio)
    ds = training_set(load_dataset(cfg.data.name, cfg.paths.data_dir), s.n_train, cfg.seed)
    n, dim = ds.x_train.shape
    width = max(1, round(ratio * n))
    alpha = draw_features(dim, width, m.feature_distribution, cfg.seed)
    scale = 1.0 / np.sqrt(width)
    h_train = feature_activations(ds.x_train, alpha, m.activation) * scale
    h_test = feature_activations(ds.x_test, alpha, m.activation) * scale
    solutions = ridge_path(h_train, ds.y_train, ridges)
    metrics: dict = {"width": width, "n_train": n, "dim": dim,
                     "gram_condition": solutions[0].gram_condition}  # fmt: skip
    for ridge, sol in zip(ridges, solutions, strict=True):
        out = {
            "beta_norm": float(np.linalg.norm(sol.beta)),
            **prediction_metrics(ds, h_train @ sol.beta, h_test @ sol.beta),
        }
        limit = kernel_limit(str(cfg.paths.data_dir), ds.name, m.activation, ridge,
                             s.n_train, cfg.seed)  # fmt: skip
        out.update({f"kernel_limit_{k}": v for k, v in limit.items()})
        if ds.name == "sphere_linear":
            st = ds.settings
            out["theory_excess_risk"] = mei_montanari_risk(
                width / dim, n / dim, dim * ridge, activation=m.activation,
                signal=st["signal"], nonlinear=st["nonlinear"], noise=st["noise"],
            )  # fmt: skip
        if ridge == 0 and width >= n and ds.task == "regression":
            out.update(gradient_descent_checks(cfg, ds, h_train, h_test, sol))
        metrics[f"ridge={ridge:g}"] = out
    return metrics


def gradient_descent_checks(cfg, ds, h_train, h_test, solution) -> dict:
    """KKT residuals of β̂ and how gradient descent from zero reaches it.

    The ridgeless `solution` (d ≥ n: the n×n route) brings the Gram's eigenvalues, which give
    the learning rate and the slowest mode; one closed-form call gives β_t at t = ∞, at the
    explicit iteration's step count and at every early-stopping time.
    """
    y, beta_min_norm = ds.y_train, solution.beta
    kkt = kkt_residuals(h_train, y, beta_min_norm)
    s = solution.gram_eigenvalues  # of HHᵀ, ascending: same spectrum as HᵀH away from 0
    lr = len(y) / float(s[-1])  # = default_learning_rate(h_train), without a second eigvalsh
    steps = int(cfg.study.gd_check_steps)
    explicit = gradient_descent(h_train, y, steps, lr)
    times = [float(t) for t in cfg.study.gd_times]
    beta_inf, closed, *betas = gradient_descent_closed_form(
        h_train, y, np.asarray([np.inf, steps, *times]), lr
    )
    # GD contracts the error along the Gram's eigenvector i by (1 − η s_i/n) per step, so
    # reaching 1e-6 of β̂ takes log(1e-6)/log(1 − η s_min/n) steps (s_min > 0 for d ≥ n).
    rate = lr * s[0] / len(y)
    steps_needed = np.log(1e-6) / np.log1p(-rate) if 0 < rate < 1 else float("inf")
    early = [float(np.mean((h_test @ b - ds.extras["f_test"]) ** 2)) for b in betas]
    rel = lambda a, b: float(np.linalg.norm(a - b) / np.linalg.norm(b))  # noqa: E731
    return {
        "kkt_feasibility": kkt.primal_feasibility,
        "kkt_stationarity": kkt.stationarity,
        "gd_limit_distance": rel(beta_inf, beta_min_norm),
        "gd_explicit_vs_closed_form": rel(explicit, closed),
        "gd_steps_to_min_norm": float(steps_needed),
        "gd_learning_rate": lr,
        "gd_times": times,
        "gd_excess_risk": early,
    }


@hydra.main(version_base="1.3", config_path="../conf", config_name="config")
@exit_on_config_error
def main(cfg: DictConfig) -> None:
    validate_config(cfg, "random_features")  # every group it reads, before any work
    run_study_job(cfg, measure, headline="test_mse", entry=__file__)


if __name__ == "__main__":
    main()
