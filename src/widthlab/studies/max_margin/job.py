"""The jobs of `max_margin`: cross-entropy on frozen random features against the hard-margin
SVM on the same features (`widthlab.margin`, `widthlab.implicit_bias`).

Features are those of `double_descent_rf` (`widthlab.models.random_features`, `model.*`):
h(x) = σ(xᵀα_k)/√d, α_k drawn from the job's seed, nested across widths; d = round(r·n).
Binary labels: sphere_linear's y = ⟨β₁, x⟩ + ε turned into sign(y) (a linear teacher whose
noise ε flips the labels of points near its boundary; the test labels are the clean
sign(f★(x))), or digits restricted to `study.digit_classes` (+1 for the first class, −1 for
the second). Replicate `seed` trains sphere_linear on block `seed` of n points of the pool
and digits on the same images with its own features.

`binary` — one job = (data set, seed): the SVM, then `study.steps` steps of gradient
  descent on the logistic loss from 0 with η = lr_fraction/L_s, recorded at log-spaced
  checkpoints (`study.checkpoints_per_decade`): the loss, ‖β_t‖, and, on separable data, the
  direction gap 1 − cos(β_t, β̂), the normalized margin over the SVM's (γ_t/γ̂) and the share
  of the gradient carried by the SVM's support vectors; at the last step each point's
  gradient share beside α_i/Σα. On data that are not separable the job says so
  (`separable` = 0): GD then converges to the logistic loss's finite minimizer, and its
  distance to it is recorded instead.
`multiclass` — one job = seed: the same on all ten digits with the softmax loss against
  the Crammer–Singer SVM (constraints per (point, wrong class)).
`separability` — one job = seed: `study.separability.draws` draws of features and uniform
  random labels for the first `n_points` sphere_linear inputs; per width, how many draws
  are linearly separable (LP, bisection over nested widths) and Cover's C(n, d)/2ⁿ.
`classification` — one job = seed: at every width of `study.classification.width_ratios`,
  the test error (against clean labels) of GD's limit on the logistic loss — the max-margin
  classifier where the training set is separable, the logistic minimizer where it is not —
  and of the minimum-norm least-squares fit of the ±1 labels, with the number of support
  vectors and the direction gap between the two.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
from omegaconf import DictConfig

from widthlab.dataset import Dataset
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
from widthlab.margin import (
    MaxMarginSolution,
    cover_fraction,
    hard_margin_svm,
    multiclass_hard_margin_svm,
    separable_at_widths,
)
from widthlab.models.random_features import draw_features, feature_activations
from widthlab.runtime.datafiles import load_job_data
from widthlab.seeding import rng_for
from widthlab.solvers import min_norm_solution

F64 = 8  # bytes


def width_for(ratio: float, n: int) -> int:
    """The number of features d = ratio·n, at least 1."""
    return max(1, round(ratio * n))


def binary_training_set(
    ds: Dataset, n: int | None, seed: int, classes: list[int]
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(x_train, y_train ∈ ±1, x_test, clean y_test ∈ ±1) of a binary job (module docstring)."""
    if ds.name == "sphere_linear":
        block = slice(seed * n, (seed + 1) * n)
        return (
            ds.x_train[block],
            np.sign(ds.y_train[block]),
            ds.x_test,
            np.sign(ds.extras["f_test"]),
        )
    first = classes[0]
    labels, test = ds.extras["labels_train"], ds.extras["labels_test"]
    train = np.flatnonzero(np.isin(labels, classes))[:n]
    keep = np.isin(test, classes)
    return (
        ds.x_train[train],
        np.where(labels[train] == first, 1.0, -1.0),
        ds.x_test[keep],
        np.where(test[keep] == first, 1.0, -1.0),
    )


def features(x: np.ndarray, width: int, model: Mapping[str, Any], seed: int) -> np.ndarray:
    """H = σ(x A)/√d for the job's draw A of `width` features."""
    alpha = draw_features(x.shape[1], width, model["feature_distribution"], seed)
    return feature_activations(x, alpha, model["activation"]) / math.sqrt(width)


def checkpoints(s: Mapping[str, Any]) -> np.ndarray:
    """The log-spaced steps at which gradient descent is measured."""
    return log_spaced_steps(int(s["steps"]), int(s["checkpoints_per_decade"]))


def last_decades(steps: np.ndarray, decades: int) -> np.ndarray:
    """The checkpoints within the last `decades` decades of steps, t ≥ T/10^decades."""
    return steps >= steps[-1] / 10**decades


def svm_metrics(svm: MaxMarginSolution) -> dict[str, Any]:
    """The SVM's record fields: separable, its KKT residuals, margin and support vectors."""
    out: dict[str, Any] = {"separable": int(svm.separable)}
    if svm.separable:
        out.update(svm.kkt.as_dict("svm_kkt_"))
        out.update(
            svm_kkt_largest=svm.kkt.largest,
            svm_margin=svm.margin,
            svm_norm=float(np.linalg.norm(svm.weights)),
            support_vectors=int(svm.support.sum()),
            support_points=int(svm.support.reshape(len(svm.support), -1).any(axis=1).sum()),
        )
    return out


def trajectory_metrics(
    steps: np.ndarray,
    weights: np.ndarray,
    losses: np.ndarray,
    svm: MaxMarginSolution,
    margins: Callable[[np.ndarray], np.ndarray],
    shares: Callable[[np.ndarray], np.ndarray],
    decades: int,
    fit_decades: int,
    constraints: np.ndarray | None = None,
) -> dict[str, Any]:
    """Per checkpoint: loss, ‖w_t‖, and on separable data the direction gap, γ_t/γ̂ and the
    support vectors' gradient share; then the checks over the last `decades` decades and
    the 1/log t fit over the last `fit_decades`. `margins(w)` gives the constraint margins
    a_kᵀw, `shares(w)` the gradient shares, in the shape of the SVM's duals;
    `constraints` masks the entries of the shares that are constraints (multiclass: every
    wrong class of every point); default all."""
    norms = np.array([np.linalg.norm(w) for w in weights])
    out: dict[str, Any] = {
        "steps": steps.tolist(),
        "loss": losses.tolist(),
        "weight_norm": norms.tolist(),
        "final_loss": float(losses[-1]),
        "final_weight_norm": float(norms[-1]),
    }
    if not svm.separable:
        return out
    gap = np.array([direction_gap(w, svm.weights) for w in weights])
    ratio = np.array([normalized_margin(margins(w), w) for w in weights]) / svm.margin
    support_share = np.array([shares(w)[svm.support].sum() for w in weights])
    late = last_decades(steps, decades)
    window = last_decades(steps, fit_decades)
    fit = inverse_log_fit(steps[window], gap[window])
    final_shares = shares(weights[-1])
    others = ~svm.support if constraints is None else constraints & ~svm.support
    duals = svm.duals / svm.duals.sum()
    # ‖w_t‖ ≈ ‖ŵ‖ ln t + const: the growth per unit of ln t over the last decade, over ‖ŵ‖.
    decade = steps >= steps[-1] / 10
    first = int(np.argmax(decade))
    growth = (norms[-1] - norms[first]) / math.log(steps[-1] / steps[first])
    out.update(
        direction_gap=gap.tolist(),
        margin_ratio=ratio.tolist(),
        norm_ratio=(norms * svm.margin).tolist(),
        support_share=support_share.tolist(),
        final_direction_gap=float(gap[-1]),
        final_margin_ratio=float(ratio[-1]),
        # (γ_t − γ̂)/γ̂ at its largest: the SVM's margin is the maximum, so never above 0
        # beyond rounding.
        margin_excess=float(ratio.max() - 1.0),
        gap_decreasing=int(strictly_decreasing(gap[late])),
        final_support_share=float(support_share[-1]),
        support_share_increasing=int(strictly_decreasing(-support_share[late])),
        share_distance=float(0.5 * np.abs(final_shares - duals).sum()),
        norm_growth_ratio=float(growth * svm.margin),
        fit_slope=fit.slope,
        fit_slope_ci_low=fit.ci_low,
        fit_slope_ci_high=fit.ci_high,
        fit_t0=fit.t0,
        fit_max_relative_deviation=fit.max_relative_deviation,
        svm_dual_shares=duals[svm.support].tolist(),
        gd_shares_support=final_shares[svm.support].tolist(),
        gd_shares_other=np.sort(final_shares[others])[::-1].tolist(),
    )
    return out


def measure_binary(cfg: DictConfig) -> dict[str, Any]:
    """One binary problem and seed: gradient descent on the cross-entropy against the hard-margin
    SVM."""
    s, seed = cfg.study, int(cfg.seed)
    ds = load_job_data(cfg)
    x, y, _, _ = binary_training_set(ds, s.n_train, seed, list(s.digit_classes))
    n = len(y)
    d = width_for(float(s.width_ratio), n)
    h = features(x, d, cfg.model, seed)
    svm = hard_margin_svm(h, y)
    lr = float(s.lr_fraction) * logistic_step_size(h)
    path = logistic_gradient_descent(h, y, int(s.steps), checkpoints(s), lr)
    out: dict[str, Any] = {
        "n_train": n,
        "width": d,
        "d_over_n": d / n,
        "gd_lr": lr,
        **svm_metrics(svm),
    }
    out.update(
        trajectory_metrics(
            path.steps,
            path.weights,
            path.losses,
            svm,
            lambda w: binary_margins(h, y, w),
            lambda w: binary_gradient_shares(h, y, w),
            int(s.decades_checked),
            int(s.fit_decades),
        )
    )
    if not svm.separable:
        # Not a failed convergence: GD approaches the loss's finite minimizer.
        limit = logistic_minimizer(h, y)
        out["gd_distance_to_minimizer"] = float(
            np.linalg.norm(path.weights[-1] - limit.beta) / np.linalg.norm(limit.beta)
        )
        out["minimizer_loss"] = limit.loss
        out["final_min_margin"] = float(binary_margins(h, y, path.weights[-1]).min())
    return out


def measure_multiclass(cfg: DictConfig) -> dict[str, Any]:
    """One seed: softmax gradient descent on every class against the multiclass (Crammer–Singer)
    SVM."""
    s, seed = cfg.study, int(cfg.seed)
    ds = load_job_data(cfg)
    n = s.n_train or len(ds.x_train)
    x, labels = ds.x_train[:n], ds.extras["labels_train"][:n]
    classes = ds.n_outputs
    d = width_for(float(s.width_ratio), n)
    h = features(x, d, cfg.model, seed)
    svm = multiclass_hard_margin_svm(h, labels, classes)
    lr = float(s.lr_fraction) * softmax_step_size(h)
    path = softmax_gradient_descent(h, labels, classes, int(s.steps), checkpoints(s), lr)
    out: dict[str, Any] = {
        "n_train": n,
        "n_classes": classes,
        "width": d,
        "d_over_n": d / n,
        "gd_lr": lr,
        **svm_metrics(svm),
    }
    out.update(
        trajectory_metrics(
            path.steps,
            path.weights,
            path.losses,
            svm,
            lambda w: multiclass_margins(h, labels, w),
            lambda w: multiclass_gradient_shares(h, labels, w),
            int(s.decades_checked),
            int(s.fit_decades),
            constraints=np.arange(classes)[None, :] != labels[:, None],
        )
    )
    return out


def implicit_bias_memory(cfg: Mapping[str, Any]) -> float:
    """Bytes: the features, the QP's constraint matrix (dense for the LP, sparse for
    Clarabel) and its interior-point factorization, the GD checkpoints."""
    s, data = cfg["study"], cfg["data"]
    n = s["n_train"] or data["n_train"]
    d = width_for(s["width_ratio"], n)
    classes = 10 if s["job"] == "multiclass" else 1
    m, p = n * max(classes - 1, 1), d * classes
    steps = s["checkpoints_per_decade"] * math.log10(max(s["steps"], 10)) + 2
    return F64 * (4 * n * d + 6 * m * p + 2 * (m + p) ** 2 + steps * p + 3 * n * classes)


def measure_separability(cfg: DictConfig) -> dict[str, Any]:
    """One seed: the fraction of random labelings that are linearly separable, per d/n."""
    sep, m, seed = cfg.study.separability, cfg.model, int(cfg.seed)
    ds = load_job_data(cfg)
    n = int(sep.n_points)
    x = ds.x_train[:n]
    widths = [width_for(float(r), n) for r in sep.width_ratios]
    draws = int(sep.draws)
    # One nested draw of every feature the job uses: draw k takes its own block of columns,
    # so draws are independent and the job reproducible from its seed.
    top = max(widths)
    alpha = draw_features(x.shape[1], top * draws, m.feature_distribution, seed)
    labels = rng_for(seed, "max_margin:random labels")
    counts = dict.fromkeys(widths, 0)
    for k in range(draws):
        s = feature_activations(x, alpha[:, k * top : (k + 1) * top], m.activation)
        y = labels.choice([-1.0, 1.0], size=n)
        for d, separable in separable_at_widths(s, y, widths).items():
            counts[d] += int(separable)
    out: dict[str, Any] = {"n_points": n, "draws": draws}
    for d in widths:
        out[f"width={d}"] = {
            "d_over_n": d / n,
            "separable_count": counts[d],
            "separable_fraction": counts[d] / draws,
            "cover_fraction": cover_fraction(n, d),
        }
    return out


def separability_memory(cfg: Mapping[str, Any]) -> float:
    """The separability job's estimated peak memory in bytes."""
    sep, data = cfg["study"]["separability"], cfg["data"]
    n, top = sep["n_points"], width_for(max(sep["width_ratios"]), sep["n_points"])
    return F64 * (data["dim"] * top * sep["draws"] + 8 * n * top + 4 * (n + top) ** 2)


def measure_classification(cfg: DictConfig) -> dict[str, Any]:
    """One seed: test error of the max-margin classifier and of the minimum-norm fit, across
    widths."""
    c, m, seed = cfg.study.classification, cfg.model, int(cfg.seed)
    ds = load_job_data(cfg)
    n = int(c.n_train)
    x, y, x_test, y_test = binary_training_set(ds, n, seed, [])
    widths = [width_for(float(r), n) for r in c.width_ratios]
    alpha = draw_features(x.shape[1], max(widths), m.feature_distribution, seed)
    s_train = feature_activations(x, alpha, m.activation)
    s_test = feature_activations(x_test, alpha, m.activation)
    out: dict[str, Any] = {"n_train": n, "n_test": len(y_test)}
    for d in widths:
        h, h_test = s_train[:, :d] / math.sqrt(d), s_test[:, :d] / math.sqrt(d)
        svm = hard_margin_svm(h, y)
        least_squares = min_norm_solution(h, y).beta
        row: dict[str, Any] = {
            "d_over_n": d / n,
            "separable": int(svm.separable),
            "least_squares_test_error": float(np.mean(np.sign(h_test @ least_squares) != y_test)),
            "least_squares_train_error": float(np.mean(np.sign(h @ least_squares) != y)),
        }
        if svm.separable:
            limit = svm.weights
            row.update(
                max_margin_test_error=float(np.mean(np.sign(h_test @ limit) != y_test)),
                support_fraction=float(svm.support.mean()),
                svm_kkt_largest=svm.kkt.largest,
                svm_least_squares_gap=direction_gap(least_squares, limit),
            )
        else:
            limit = logistic_minimizer(h, y).beta
            row["logistic_minimizer_norm"] = float(np.linalg.norm(limit))
        row["logistic_limit_test_error"] = float(np.mean(np.sign(h_test @ limit) != y_test))
        out[f"width={d}"] = row
    return out


def classification_memory(cfg: Mapping[str, Any]) -> float:
    """The classification job's estimated peak memory in bytes."""
    c, data = cfg["study"]["classification"], cfg["data"]
    n, d = c["n_train"], width_for(max(c["width_ratios"]), c["n_train"])
    m = data["n_test"]
    return F64 * (2 * (n + m) * d + 8 * n * d + 4 * (n + d) ** 2)
