"""`double_descent_rf`'s figures: the double-descent curve per data set, gradient descent
reaching the minimum-norm interpolator, and early-stopped gradient descent."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from widthlab.plotting import COLOURS, Row, band, log_axes, num, sample_size_note, series

EPS64 = float(np.finfo(np.float64).eps)
_DN = "width / samples  d/n"


def _ridge_label(ridge) -> str:
    lam = float(ridge)
    return "λ = 0 (min-norm)" if lam == 0 else f"λ = {lam:g}"


def _threshold(ax: Axes) -> None:
    ax.axvline(
        1.0, color="0.35", ls="-.", lw=1, label="interpolation threshold d = n", gid="threshold"
    )


def rf_double_descent_figure(rows: Sequence[Row], name: str = "sphere_linear") -> Figure:
    """Double descent of random-features ridge regression on data set ``name``.

    Panel 1: test risk vs d/n (excess risk for sphere_linear, test MSE otherwise), one
    band per ridge λ, the Mei–Montanari prediction dashed (where the table has it) and the
    infinite-width kernel ridge limit dotted, with the interpolation threshold d = n marked.
    Panel 2: train MSE (it falls to round-off once d ≥ n and λ = 0). Panel 3: ‖β‖,
    which peaks at the threshold. For classification data (digits) a fourth panel shows the
    test classification error and its kernel limit.
    """
    rows = [r for r in rows if r.get("name") == name]
    if not rows:
        raise ValueError(f"no rows for data set {name!r}")
    has_excess = any(math.isfinite(num(r.get("excess_risk_mean"))) for r in rows)
    risk = "excess_risk" if has_excess else "test_mse"
    has_cls = any(math.isfinite(num(r.get("test_error_mean"))) for r in rows)
    panels = ["risk", "train", "norm"] + (["cls"] if has_cls else [])
    # Four panels in one row are too wide to read; use a 2 × 2 grid then.
    shape = (2, 2) if len(panels) == 4 else (1, len(panels))
    fig = Figure(figsize=(5.4 * shape[1], 4.4 * shape[0]), layout="constrained")
    axes = np.ravel(fig.subplots(*shape))
    ridges = sorted({r["ridge"] for r in rows}, key=float)
    risk_label = "excess test risk  E(f̂ − f*)²" if has_excess else "test MSE"

    ax = axes[0]
    shown = []  # empirical band edges: the y-range is set from data, not from theory spikes
    for i, ridge in enumerate(ridges):
        sub = [r for r in rows if r["ridge"] == ridge]
        c = COLOURS[i % len(COLOURS)]
        x, m, s = series(sub, "d_over_n", risk)
        band(ax, x, m, s, colour=c, label=_ridge_label(ridge), gid=f"empirical:{ridge}")
        shown += [*(m + s), *m]
        tx, tm, _ = series(sub, "d_over_n", f"theory_{risk}")
        if tx.size:
            ax.plot(tx, tm, "--", color=c, lw=1.2, gid=f"theory:{ridge}")
        _, km, _ = series(sub, "d_over_n", f"kernel_limit_{risk}")
        if km.size:
            # Interleaved dash phases: kernel limits of small ridges nearly coincide, and
            # plain dotted lines would hide each other.
            ls = (3 * i, (1.5, 3 * len(ridges) - 1.5))
            ax.axhline(float(np.mean(km)), color=c, ls=ls, lw=1.5, gid=f"kernel:{ridge}")
            shown.append(float(np.mean(km)))
    _threshold(ax)
    log_axes(ax, _DN, risk_label)
    shown = np.asarray([v for v in shown if v > 0])
    # Ridgeless theory diverges at d = n (~1e7 here): clip to the data to keep curves legible.
    ax.set_ylim(shown.min() / 1.5, shown.max() * 3)
    ax.set_title("test risk against d/n, per ridge λ")
    handles, _ = ax.get_legend_handles_labels()
    styles = [Line2D([], [], color="0.3", ls="-", marker="o", ms=3, label="experiment")]
    if any(ln.get_gid().startswith("theory") for ln in ax.get_lines()):
        styles.append(Line2D([], [], color="0.3", ls="--", label="theory (Mei–Montanari)"))
    styles.append(Line2D([], [], color="0.3", ls=":", lw=1.5, label="kernel limit d → ∞"))
    ax.legend(handles=handles + styles, fontsize=8, loc="upper right", framealpha=0.9)

    for ax, panel in zip(axes[1:], panels[1:], strict=True):
        metric, ylabel, title = {
            "train": ("train_mse", "train MSE", "training error: interpolation for d ≥ n"),
            "norm": ("beta_norm", "‖β‖ (Euclidean norm of weights)", "norm of the solution"),
            "cls": ("test_error", "test classification error (fraction)", "test misclassification"),
        }[panel]
        for i, ridge in enumerate(ridges):
            sub = [r for r in rows if r["ridge"] == ridge]
            c = COLOURS[i % len(COLOURS)]
            x, m, s = series(sub, "d_over_n", metric)
            if x.size:
                band(ax, x, m, s, colour=c, label=_ridge_label(ridge), gid=f"{panel}:{ridge}")
            _, km, _ = series(sub, "d_over_n", f"kernel_limit_{metric}")
            if panel == "cls" and km.size:
                ax.axhline(
                    float(np.mean(km)),
                    color=c,
                    ls=":",
                    lw=1.5,
                    label="kernel limit d → ∞",
                    gid=f"kernel:{ridge}",
                )
        _threshold(ax)
        log_axes(ax, _DN, ylabel)
        ax.set_title(title)
        ax.legend(fontsize=8, loc="best", framealpha=0.9)
    note = sample_size_note(rows, [risk, "train_mse", "beta_norm"])
    fig.suptitle(f"Random-features regression on {name}: test risk against width ({note})")
    return fig


_GD_METRICS = (
    ("kkt_feasibility", "KKT primal feasibility ‖Hβ − y‖/‖y‖"),
    ("kkt_stationarity", "KKT stationarity ‖β − Hᵀc‖/‖β‖"),
    ("gd_limit_distance", "‖β_GD(∞) − β_min-norm‖ / ‖β‖"),
    ("gd_explicit_vs_closed_form", "explicit GD vs closed form, relative distance"),
)


def gd_min_norm_figure(rows: Sequence[Row], name: str = "sphere_linear") -> Figure:
    """Gradient descent from zero converges to the minimum-norm interpolator (λ = 0, d ≥ n).

    Left: the four numerical checks (KKT feasibility and stationarity of the closed-form
    min-norm solution, distance of the GD limit to it, and explicit GD vs its closed form)
    sit at the float64 epsilon level for every d/n. Right: the number of GD steps needed to
    get within 1e-6 of the min-norm solution, which blows up as d → n (the Gram matrix
    becomes ill-conditioned).
    """
    rows = [
        r
        for r in rows
        if r.get("name") == name and num(r.get("ridge")) == 0 and num(r.get("d_over_n")) >= 1
    ]
    fig = Figure(figsize=(11, 4.6), layout="constrained")
    ax, ax2 = fig.subplots(1, 2)
    colours = colormaps["tab10"].colors
    for i, (metric, label) in enumerate(_GD_METRICS):
        x, m, s = series(rows, "d_over_n", metric)
        if x.size:
            band(ax, x, m, s, colour=colours[i], label=label, gid=metric)
    ax.axhline(EPS64, color="k", ls="--", lw=1, label=f"float64 ε = {EPS64:.1e}", gid="eps")
    log_axes(ax, _DN, "relative error (dimensionless)")
    ax.set_title("GD limit against the minimum-norm interpolator")
    lo, hi = ax.get_ylim()
    ax.set_ylim(min(lo, EPS64 / 10), max(hi, 1e-9))
    ax.legend(fontsize=8, loc="upper right", framealpha=0.9)

    x, m, s = series(rows, "d_over_n", "gd_steps_to_min_norm")
    if x.size:
        band(
            ax2,
            x,
            m,
            s,
            colour="tab:red",
            label="GD steps to within 1e-6 of β_min-norm",
            gid="gd_steps_to_min_norm",
        )
    _threshold(ax2)
    log_axes(ax2, _DN, "gradient-descent steps")
    ax2.set_title("steps to reach the minimum-norm solution")
    ax2.legend(fontsize=8, loc="upper right", framealpha=0.9)
    note = sample_size_note(rows, [m for m, _ in _GD_METRICS] + ["gd_steps_to_min_norm"])
    fig.suptitle(f"Gradient descent and the minimum-norm solution on {name}, λ = 0 ({note})")
    return fig


def gd_early_stopping_figure(
    rows: Sequence[Row], name: str = "sphere_linear", min_norm_rows: Sequence[Row] | None = None
) -> Figure:
    """Excess risk of gradient descent stopped after t steps vs d/n, one curve per t.

    Early-stopped GD acts as an implicit ridge and shows no peak at d = n; the min-norm
    solution (t = ∞, ridge 0 in ``min_norm_rows``) is drawn in black over the same d/n range
    for comparison.
    """
    rows = [r for r in rows if r.get("name") == name]
    fig = Figure(figsize=(7, 5), layout="constrained")
    ax = fig.subplots()
    steps = sorted({num(r["steps"]) for r in rows})
    cmap = colormaps["viridis"]
    xmin = xmax = None
    for i, t in enumerate(steps):
        sub = [r for r in rows if num(r["steps"]) == t]
        x, m, s = series(sub, "d_over_n", "gd_excess_risk")
        c = cmap(i / max(len(steps) - 1, 1) * 0.9)
        band(ax, x, m, s, colour=c, label=f"t = {t:,.0f} steps", gid=f"gd:{t:g}")
        if x.size:
            xmin = x.min() if xmin is None else min(xmin, x.min())
            xmax = x.max() if xmax is None else max(xmax, x.max())
    note = sample_size_note(rows, ["gd_excess_risk"])
    if min_norm_rows is not None and xmin is not None:
        mn = [
            r
            for r in min_norm_rows
            if r.get("name") == name
            and num(r.get("ridge")) == 0
            and xmin <= num(r.get("d_over_n")) <= xmax
        ]
        x, m, s = series(mn, "d_over_n", "excess_risk")
        if x.size:
            band(ax, x, m, s, colour="k", label="t = ∞ (min-norm)", gid="min_norm")
    _threshold(ax)
    log_axes(ax, _DN, "excess test risk  E(f̂ − f*)²")
    ax.legend(fontsize=8, loc="upper right", framealpha=0.9)
    ax.set_title(
        f"Early-stopped GD on {name} against t = ∞ (min-norm), excess risk against d/n\n({note})",
        fontsize=10,
    )
    return fig
