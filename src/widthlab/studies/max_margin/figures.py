"""`max_margin`'s figures: gradient descent's approach to the SVM, the gradient shares against
the SVM's duals, the separable fraction against Cover's count, and the test-error curves of
GD's logistic limit and of min-norm least squares."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.figure import Figure

from widthlab.margin import cover_fraction
from widthlab.plotting import COLOURS, Row, band, log_axes, num, sample_size_note, series

PROBLEMS = {
    "binary_sphere_linear": "sphere_linear, sign labels (logistic)",
    "binary_digits": "digits, two classes (logistic)",
    "binary_digits_noisy": "digits_noisy, two classes (logistic)",
    "multiclass_digits": "digits, ten classes (softmax)",
    "multiclass_digits_noisy": "digits_noisy, ten classes (softmax)",
}


def problem_label(problem: str) -> str:
    """A problem's readable name."""
    return PROBLEMS.get(problem, problem)


def _problems(rows: Sequence[Row]) -> list[str]:
    return list(dict.fromkeys(str(r["problem"]) for r in rows))


def implicit_bias_figure(rows: Sequence[Row], summary: Mapping) -> Figure:
    """Four panels against the step t, one colour per problem: (a) the direction gap with
    its c/ln(t/t₀) fit, (b) γ_t/γ̂ ≤ 1, (c) ‖w_t‖/‖ŵ‖ against a slope-1 line in ln t, (d) the
    training loss against a 1/t line."""
    fig = Figure(figsize=(11, 8.4), layout="constrained")
    (ax_gap, ax_margin), (ax_norm, ax_loss) = fig.subplots(2, 2)
    entries = summary.get("implicit_bias", {})
    for i, problem in enumerate(_problems(rows)):
        mine = [r for r in rows if r["problem"] == problem]
        colour, label = COLOURS[i % len(COLOURS)], problem_label(problem)
        x, m, s = series(mine, "step", "direction_gap")
        band(ax_gap, x, m, s, colour=colour, label=label, gid=f"gap:{problem}", marker="")
        e = entries.get(problem, {})
        slope, t0 = (e.get("fit_slope") or {}).get("mean"), (e.get("fit_t0") or {}).get("mean")
        decades = e.get("fit_decades")
        if slope and t0 and decades and x.size:
            t = np.geomspace(x[-1] / 10**decades, x[-1], 50)
            t = t[t > t0 * 1.5]
            fit = 0.5 / (slope * np.log(t / t0)) ** 2
            ax_gap.plot(t, fit, "--", color="k", lw=1, gid=f"fit:{problem}")
        x, m, s = series(mine, "step", "margin_ratio")
        band(
            ax_margin,
            x,
            m,
            s,
            colour=colour,
            label=label,
            gid=f"margin:{problem}",
            log_y=False,
            marker="",
        )
        x, m, s = series(mine, "step", "norm_ratio")
        band(
            ax_norm,
            x,
            m,
            s,
            colour=colour,
            label=label,
            gid=f"norm:{problem}",
            log_y=False,
            marker="",
        )
        if x.size:
            late = x >= x[-1] / 1e3  # references over the last three decades only
            ax_norm.plot(
                x[late],
                np.log(x[late]) - math.log(x[-1]) + m[-1],
                ":",
                color=colour,
                lw=1.2,
                gid=f"norm_reference:{problem}",
            )
        x, m, s = series(mine, "step", "loss")
        band(ax_loss, x, m, s, colour=colour, label=label, gid=f"loss:{problem}", marker="")
        if x.size:
            late = x >= x[-1] / 1e3
            ax_loss.plot(
                x[late],
                m[-1] * x[-1] / x[late],
                ":",
                color=colour,
                lw=1,
                gid=f"loss_1_over_t:{problem}",
            )
    log_axes(ax_gap, "gradient-descent step t", "direction gap 1 − cos(w_t, ŵ)")
    ax_gap.plot([], [], "--", color="k", lw=1, label="fit √(2·gap) = c / ln(t/t₀)")
    ax_gap.set_title("(a) direction gap ‖w_t/‖w_t‖ − ŵ/‖ŵ‖‖", fontsize=10)
    ax_margin.axhline(1.0, color="k", lw=1, label="the SVM's margin 1/‖ŵ‖ (the maximum)")
    log_axes(ax_margin, "gradient-descent step t", "normalized margin γ_t / γ̂", log_y=False)
    ax_margin.set_ylim(-0.5, 1.08)
    ax_margin.set_title("(b) min_k a_kᵀw_t/‖w_t‖ over the SVM's margin", fontsize=10)
    log_axes(ax_norm, "gradient-descent step t", "‖w_t‖ / ‖ŵ‖", log_y=False)
    ax_norm.plot([], [], ":", color="0.3", label="slope 1 in ln t (w_t ≈ ŵ ln t)")
    ax_norm.set_title("(c) the norm ‖w_t‖ against ln t", fontsize=10)
    log_axes(ax_loss, "gradient-descent step t", "training cross-entropy")
    ax_loss.plot([], [], ":", color="0.3", label="∝ 1/t")
    ax_loss.set_title("(d) the training loss against t", fontsize=10)
    for ax in (ax_gap, ax_margin, ax_norm, ax_loss):
        ax.legend(fontsize=7, loc="best", framealpha=0.9)
    note = sample_size_note(rows, ["direction_gap"])
    fig.suptitle(f"Gradient descent on the cross-entropy and the hard-margin SVM ({note})")
    return fig


def gradient_shares_figure(share_rows: Sequence[Row], rows: Sequence[Row]) -> Figure:
    """Left: each constraint's GD gradient share at the last step against its SVM dual share
    (log-log, one colour per problem; non-support constraints in a strip on the left).
    Right: the support vectors' total share against t."""
    fig = Figure(figsize=(11, 4.6), layout="constrained")
    ax_pts, ax_t = fig.subplots(1, 2)
    problems = list(dict.fromkeys([*_problems(rows), *_problems(share_rows)]))
    duals = [num(r["svm_dual_share"]) for r in share_rows if num(r["support"]) == 1]
    floor = min(duals) / 10 if duals else 1e-6
    for i, problem in enumerate(problems):
        colour, label = COLOURS[i % len(COLOURS)], problem_label(problem)
        mine = [r for r in share_rows if r["problem"] == problem]
        sv = [r for r in mine if num(r["support"]) == 1]
        other = [r for r in mine if num(r["support"]) == 0]
        if sv:
            ax_pts.loglog(
                [num(r["svm_dual_share"]) for r in sv],
                [num(r["gd_share"]) for r in sv],
                "o",
                ms=3,
                color=colour,
                alpha=0.8,
                label=f"{label}: support vectors",
                gid=f"support:{problem}",
            )
        if other:
            jitter = np.exp(np.random.default_rng(i).uniform(-0.3, 0.3, len(other)))
            ax_pts.loglog(
                floor * jitter,
                [max(num(r["gd_share"]), 1e-300) for r in other],
                "x",
                ms=3,
                color=colour,
                alpha=0.5,
                label=f"{label}: α = 0",
                gid=f"other:{problem}",
            )
        x, m, s = series([r for r in rows if r["problem"] == problem], "step", "support_share")
        band(
            ax_t,
            x,
            m,
            s,
            colour=colour,
            label=label,
            gid=f"share:{problem}",
            log_y=False,
            marker="",
        )
    if duals:
        ends = np.array([min(duals), max(duals)])
        ax_pts.plot(ends, ends, ":", color="k", lw=1, label="GD share = SVM share", gid="diagonal")
        ax_pts.axvline(floor * 2.2, color="0.6", lw=0.8)
    log_axes(ax_pts, "SVM dual share α_k / Σα", "GD gradient share at the last step")
    ax_pts.set_title("GD's gradient shares approach the SVM's dual variables", fontsize=10)
    ax_pts.legend(fontsize=6.5, loc="lower right", framealpha=0.9)
    ax_t.axhline(1.0, color="k", lw=0.8)
    log_axes(
        ax_t, "gradient-descent step t", "gradient share of the SVM's support vectors", log_y=False
    )
    ax_t.set_ylim(0, 1.02)
    ax_t.set_title("The gradient concentrates on the support vectors", fontsize=10)
    ax_t.legend(fontsize=7, loc="lower right", framealpha=0.9)
    fig.suptitle("Support vectors: the SVM's dual variables and gradient descent's gradient")
    return fig


def separability_figure(rows: Sequence[Row], summary: Mapping) -> Figure:
    """The separable fraction at each d/n (markers) against Cover's C(n, d)/2ⁿ (line) with
    its ±2 binomial SE for the number of draws (band)."""
    fig = Figure(figsize=(7, 4.8), layout="constrained")
    ax = fig.subplots()
    sep = summary.get("separability", {})
    n = int(sep.get("n_points") or 0)
    ratio = np.array([num(r["d_over_n"]) for r in rows])
    measured = np.array([num(r["separable_fraction"]) for r in rows])
    cover = np.array([num(r["cover_fraction"]) for r in rows])
    se = np.array([num(r["se"]) for r in rows])
    z_max = 2.0  # the band drawn: Cover's binomial ± 2 SE (the verdicts are exact tests)
    if n:
        d = np.arange(1, math.ceil(ratio.max() * n * 1.1) + 1)
        ax.plot(
            d / n,
            [cover_fraction(n, int(k)) for k in d],
            "-",
            color="k",
            lw=1.2,
            label=f"Cover: C(n, d)/2ⁿ, n = {n}",
            gid="cover",
        )
    ax.fill_between(
        ratio,
        np.clip(cover - z_max * se, 0, 1),
        np.clip(cover + z_max * se, 0, 1),
        color="0.6",
        alpha=0.35,
        lw=0,
        label=f"± {z_max:g} SE for {sep.get('draws', '?')} draws",
    )
    ax.plot(
        ratio,
        measured,
        "o",
        color="tab:red",
        ms=5,
        label="random features, random labels",
        gid="measured",
    )
    ax.axvline(0.5, color="0.35", ls="-.", lw=1, label="d/n = ½ (n = 2d)", gid="half")
    log_axes(ax, "features / points  d/n", "fraction of separable draws", log_x=False, log_y=False)
    ax.set_ylim(-0.02, 1.02)
    ax.legend(fontsize=8, loc="lower right", framealpha=0.9)
    ax.set_title(
        f"Separability of random labels (Cover 1965): {sep.get('differ', '?')} of "
        f"{sep.get('points', '?')} points differ (exact binomial tests, Holm)",
        fontsize=10,
    )
    return fig


def classification_figure(rows: Sequence[Row], summary: Mapping) -> Figure:
    """Left: test error against d/n of GD's logistic limit and of min-norm least squares,
    with the separability and interpolation thresholds. Right: the separable fraction, the
    support-vector fraction and the direction gap between the two classifiers."""
    fig = Figure(figsize=(11, 4.6), layout="constrained")
    ax_err, ax_sep = fig.subplots(1, 2)
    c = summary.get("classification", {})
    for metric, colour, label, marker in (
        (
            "logistic_limit_test_error",
            "tab:red",
            "GD's logistic limit (max-margin if separable)",
            "o",
        ),
        ("least_squares_test_error", "tab:blue", "min-norm least squares on ±1 labels", "s"),
    ):
        x, m, s = series(rows, "d_over_n", metric)
        band(ax_err, x, m, s, colour=colour, label=label, gid=metric, log_y=False, marker=marker)
    for ax in (ax_err, ax_sep):
        half = c.get("separable_half_crossing_d_over_n")
        if half:
            ax.axvline(
                half,
                color="tab:red",
                ls=":",
                lw=1.2,
                label="half the sets separable",
                gid="separability",
            )
        ax.axvline(1.0, color="0.35", ls="-.", lw=1, label="d = n", gid="interpolation")
    log_axes(ax_err, "features / samples  d/n", "test error (clean labels, fraction)", log_y=False)
    ax_err.set_ylim(bottom=0)
    ax_err.set_title("Classification double descent", fontsize=10)
    ax_err.legend(fontsize=7, loc="lower left", framealpha=0.9)
    for metric, colour, label in (
        ("separable", "k", "separable training sets (fraction)"),
        ("support_fraction", "tab:green", "support vectors / n"),
        ("svm_least_squares_gap", "tab:purple", "1 − cos(β_SVM, β_LS)"),
    ):
        x, m, s = series(rows, "d_over_n", metric)
        if x.size:
            band(ax_sep, x, m, s, colour=colour, label=label, gid=metric, log_y=False, marker=".")
    log_axes(ax_sep, "features / samples  d/n", "fraction", log_y=False)
    ax_sep.set_ylim(-0.02, 1.02)
    ax_sep.set_title("Separability, support vectors, SVM vs least squares", fontsize=10)
    ax_sep.legend(fontsize=7, loc="center right", framealpha=0.9)
    note = sample_size_note(rows, ["least_squares_test_error"])
    fig.suptitle(f"Max-margin against min-norm least squares on noisy sign labels ({note})")
    return fig
