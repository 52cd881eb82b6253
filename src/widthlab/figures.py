"""Matplotlib figures from a study's result tables: data in, ``Figure`` out.

Every function takes rows as read by ``csv.DictReader`` (all values strings, ``""`` = missing)
and returns a :class:`matplotlib.figure.Figure` built without pyplot, so nothing here touches
global state or needs a display. Curves are the mean over seeds with a shaded mean ± 1 sd band;
the number of seeds behind each point is written into the figure title, ready for a caption.

Lines carry a ``gid`` (e.g. ``"empirical:0"``, ``"theory:1e-05"``, ``"threshold"``) so that
tests and later scripts can find a particular curve without relying on colours or order.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import matplotlib
import numpy as np
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

__all__ = [
    "format_slope",
    "gd_early_stopping_figure",
    "gd_min_norm_figure",
    "kernel_convergence_figure",
    "ntk_circle_figure",
    "rf_double_descent_figure",
    "sample_size_note",
    "save_figure",
]

Row = Mapping[str, str]
EPS64 = float(np.finfo(np.float64).eps)
_RIDGE_COLOURS = ("tab:red", "tab:blue", "tab:green", "tab:purple", "tab:orange", "tab:brown")
_THRESHOLD_LABEL = "interpolation threshold d = n"


def _num(value: object) -> float:
    """A CSV cell as a float; empty or absent cells become NaN so they can be skipped."""
    if value is None or (isinstance(value, str) and value.strip() == ""):
        return math.nan
    return float(value)


def _series(rows: Iterable[Row], x_key: str, metric: str) -> tuple[np.ndarray, ...]:
    """(x, mean, std) sorted by x, dropping rows whose mean is missing (never plotted as 0)."""
    pts = [
        (_num(r.get(x_key)), _num(r.get(f"{metric}_mean")), _num(r.get(f"{metric}_std")))
        for r in rows
    ]
    pts = sorted(p for p in pts if math.isfinite(p[0]) and math.isfinite(p[1]))
    if not pts:
        return np.empty(0), np.empty(0), np.empty(0)
    x, mean, std = (np.asarray(c, dtype=float) for c in zip(*pts, strict=True))
    return x, mean, np.nan_to_num(std)


def _band(ax: Axes, x, mean, std, *, colour, label, gid, log_y=True, marker="o", ls="-"):
    """Mean line plus a mean ± sd band; returns the mean line."""
    (line,) = ax.plot(x, mean, ls, marker=marker, ms=3, lw=1.5, color=colour, label=label, gid=gid)
    lo, hi = mean - std, mean + std
    if log_y:
        # A log axis cannot show mean − sd ≤ 0 (e.g. one diverging seed at d = n); cap the
        # band a decade below the mean instead of letting it run off the bottom of the axis.
        lo = np.where(lo > 0, lo, mean / 10)
    ax.fill_between(x, lo, hi, color=colour, alpha=0.2, lw=0)
    return line


def sample_size_note(rows: Iterable[Row], metrics: Sequence[str]) -> str:
    """'5 seeds per point' (or '3–5 seeds per point') from the ``<metric>_count`` columns."""
    counts = {
        int(c)
        for r in rows
        for m in metrics
        if math.isfinite(c := _num(r.get(f"{m}_count"))) and c > 0
    }
    if not counts:
        return "seed count unknown"
    lo, hi = min(counts), max(counts)
    n = f"{lo}" if lo == hi else f"{lo}–{hi}"
    return f"{n} seed{'s' if hi > 1 else ''} per point; band = mean ± 1 sd"


def _ridge_label(ridge: str) -> str:
    lam = float(ridge)
    return "λ = 0 (min-norm)" if lam == 0 else f"λ = {lam:g}"


def _threshold(ax: Axes) -> None:
    ax.axvline(1.0, color="0.35", ls="-.", lw=1, label=_THRESHOLD_LABEL, gid="threshold")


def _log_axes(ax: Axes, xlabel: str, ylabel: str, log_x=True, log_y=True) -> None:
    if log_x:
        ax.set_xscale("log")
    if log_y:
        ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(True, which="major", alpha=0.3)


_DN = "width / samples  d/n"


def rf_double_descent_figure(rows: Sequence[Row], name: str = "sphere_linear") -> Figure:
    """Double descent of random-features ridge regression on data set ``name``.

    Panel 1: test risk vs d/n (excess risk for sphere_linear, test MSE otherwise), one
    band per ridge λ, the Mei–Montanari prediction dashed (where the table has it) and the
    infinite-width kernel ridge limit dotted, with the interpolation threshold d = n marked.
    Panel 2: train MSE (it reaches machine precision once d ≥ n and λ = 0). Panel 3: ‖β‖,
    which peaks at the threshold. For classification data (digits) a fourth panel shows the
    test classification error and its kernel limit.
    """
    rows = [r for r in rows if r.get("name") == name]
    if not rows:
        raise ValueError(f"no rows for data set {name!r}")
    has_excess = any(math.isfinite(_num(r.get("excess_risk_mean"))) for r in rows)
    risk = "excess_risk" if has_excess else "test_mse"
    has_cls = any(math.isfinite(_num(r.get("test_error_mean"))) for r in rows)
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
        c = _RIDGE_COLOURS[i % len(_RIDGE_COLOURS)]
        x, m, s = _series(sub, "d_over_n", risk)
        _band(ax, x, m, s, colour=c, label=_ridge_label(ridge), gid=f"empirical:{ridge}")
        shown += [*(m + s), *m]
        tx, tm, _ = _series(sub, "d_over_n", f"theory_{risk}")
        if tx.size:
            ax.plot(tx, tm, "--", color=c, lw=1.2, gid=f"theory:{ridge}")
        _, km, _ = _series(sub, "d_over_n", f"kernel_limit_{risk}")
        if km.size:
            # Interleaved dash phases: kernel limits of small ridges nearly coincide, and
            # plain dotted lines would hide each other.
            ls = (3 * i, (1.5, 3 * len(ridges) - 1.5))
            ax.axhline(float(np.mean(km)), color=c, ls=ls, lw=1.5, gid=f"kernel:{ridge}")
            shown.append(float(np.mean(km)))
    _threshold(ax)
    _log_axes(ax, _DN, risk_label)
    shown = np.asarray([v for v in shown if v > 0])
    # Ridgeless theory diverges at d = n (~1e7 here): clip to the data to keep curves legible.
    ax.set_ylim(shown.min() / 1.5, shown.max() * 3)
    ax.set_title("test risk: peak at d = n, tamed by ridge")
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
            c = _RIDGE_COLOURS[i % len(_RIDGE_COLOURS)]
            x, m, s = _series(sub, "d_over_n", metric)
            if x.size:
                _band(ax, x, m, s, colour=c, label=_ridge_label(ridge), gid=f"{panel}:{ridge}")
            _, km, _ = _series(sub, "d_over_n", f"kernel_limit_{metric}")
            if panel == "cls" and km.size:
                ax.axhline(
                    float(np.mean(km)),
                    color=c,
                    ls=":",
                    lw=1.5,
                    label="kernel limit d → ∞",
                    gid=f"kernel:{ridge}",
                )
        if panel == "train":
            ax.axhline(EPS64, color="0.5", ls="--", lw=1, label="float64 ε", gid="eps")
        _threshold(ax)
        _log_axes(ax, _DN, ylabel)
        ax.set_title(title)
        ax.legend(fontsize=8, loc="best", framealpha=0.9)
    note = sample_size_note(rows, [risk, "train_mse", "beta_norm"])
    fig.suptitle(f"Random-features regression on {name}: double descent ({note})")
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
        if r.get("name") == name and _num(r.get("ridge")) == 0 and _num(r.get("d_over_n")) >= 1
    ]
    fig = Figure(figsize=(11, 4.6), layout="constrained")
    ax, ax2 = fig.subplots(1, 2)
    colours = colormaps["tab10"].colors
    for i, (metric, label) in enumerate(_GD_METRICS):
        x, m, s = _series(rows, "d_over_n", metric)
        if x.size:
            _band(ax, x, m, s, colour=colours[i], label=label, gid=metric)
    ax.axhline(EPS64, color="k", ls="--", lw=1, label=f"float64 ε = {EPS64:.1e}", gid="eps")
    _log_axes(ax, _DN, "relative error (dimensionless)")
    ax.set_title("GD limit = minimum-norm interpolator")
    lo, hi = ax.get_ylim()
    ax.set_ylim(min(lo, EPS64 / 10), max(hi, 1e-9))
    ax.legend(fontsize=8, loc="upper right", framealpha=0.9)

    x, m, s = _series(rows, "d_over_n", "gd_steps_to_min_norm")
    if x.size:
        _band(
            ax2,
            x,
            m,
            s,
            colour="tab:red",
            label="GD steps to within 1e-6 of β_min-norm",
            gid="gd_steps_to_min_norm",
        )
    _threshold(ax2)
    _log_axes(ax2, _DN, "gradient-descent steps")
    ax2.set_title("convergence slows down near d = n")
    ax2.legend(fontsize=8, loc="upper right", framealpha=0.9)
    note = sample_size_note(rows, [m for m, _ in _GD_METRICS] + ["gd_steps_to_min_norm"])
    fig.suptitle(f"Gradient descent → minimum norm on {name}, λ = 0 ({note})")
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
    steps = sorted({_num(r["steps"]) for r in rows})
    cmap = colormaps["viridis"]
    xmin = xmax = None
    for i, t in enumerate(steps):
        sub = [r for r in rows if _num(r["steps"]) == t]
        x, m, s = _series(sub, "d_over_n", "gd_excess_risk")
        c = cmap(i / max(len(steps) - 1, 1) * 0.9)
        _band(ax, x, m, s, colour=c, label=f"t = {t:,.0f} steps", gid=f"gd:{t:g}")
        if x.size:
            xmin = x.min() if xmin is None else min(xmin, x.min())
            xmax = x.max() if xmax is None else max(xmax, x.max())
    note = sample_size_note(rows, ["gd_excess_risk"])
    if min_norm_rows is not None and xmin is not None:
        mn = [
            r
            for r in min_norm_rows
            if r.get("name") == name
            and _num(r.get("ridge")) == 0
            and xmin <= _num(r.get("d_over_n")) <= xmax
        ]
        x, m, s = _series(mn, "d_over_n", "excess_risk")
        if x.size:
            _band(ax, x, m, s, colour="k", label="t = ∞ (min-norm)", gid="min_norm")
    _threshold(ax)
    _log_axes(ax, _DN, "excess test risk  E(f̂ − f*)²")
    ax.legend(fontsize=8, loc="upper right", framealpha=0.9)
    ax.set_title(
        f"Early-stopped GD on {name} stays bounded at d = n; t = ∞ blows up\n({note})",
        fontsize=10,
    )
    return fig


def format_slope(fit: Mapping[str, float]) -> str:
    """'−0.50 [−0.52, −0.48]': the fitted log-log slope with its confidence interval."""

    def f(v: float | None) -> str:
        if v is None or not math.isfinite(v):
            return "n/a"
        return f"{v:.2f}".replace("-", "−")

    if fit.get("ci_low") is None or fit.get("ci_high") is None:
        return f"{f(fit.get('slope'))} [no interval: too few points]"
    return f"{f(fit['slope'])} [{f(fit['ci_low'])}, {f(fit['ci_high'])}]"


_KERNEL_NAMES = {
    "ntk": "NTK",
    "nngp": "NNGP",
    "mc_nngp": "output covariance, Monte-Carlo over networks",
}


def kernel_convergence_figure(
    rows: Sequence[Row], summary: Mapping, kernels: Sequence[str] = ("ntk", "nngp")
) -> Figure:
    """Relative Frobenius distance of the empirical kernel to its infinite-width limit vs width.

    One log-log panel per kernel, one band per (depth, activation), each labelled with the
    fitted slope and its 95% interval from ``summary["slopes"]``, and a width^−1/2 reference
    line (the rate predicted by the central limit theorem). The optional ``"mc_nngp"`` panel
    (output covariance over a finite number of networks) plateaus at its Monte-Carlo error.
    """
    slopes = summary.get("slopes", {})
    fig = Figure(figsize=(5.6 * len(kernels), 4.8), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(kernels)))
    combos = sorted({(int(_num(r["depth"])), r["activation"]) for r in rows}, key=lambda k: k[::-1])
    depths = sorted({d for d, _ in combos})
    acts = sorted({a for _, a in combos})
    for ax, kernel in zip(axes, kernels, strict=True):
        first, lowest, panel_widths = [], math.inf, set()
        for depth, act in combos:
            sub = [r for r in rows if int(_num(r["depth"])) == depth and r["activation"] == act]
            x, m, s = _series(sub, "width", f"{kernel}_distance")
            if not x.size:
                continue
            label = f"{act}, depth {depth}"
            fit = slopes.get(f"{kernel}_depth{depth}_{act}")
            if fit:
                label += f": slope {format_slope(fit)}"
            c = colormaps["tab10"](depths.index(depth) + 3 * acts.index(act))
            k = acts.index(act)  # activation ↔ marker and line style, depth ↔ colour
            _band(
                ax,
                x,
                m,
                s,
                colour=c,
                label=label,
                gid=f"{kernel}:{depth}:{act}",
                marker="os^v"[k % 4],
                ls="-" if k == 0 else "--",
            )
            first.append((x[0], m[0]))
            panel_widths.update(x.tolist())
            lowest = min(lowest, float(np.min(m - s)))
        if first:
            # Anchor the reference at the geometric mean of the narrowest-width errors.
            w0 = min(f[0] for f in first)
            y0 = float(np.exp(np.mean([np.log(f[1]) for f in first])))
            w = np.array(sorted(panel_widths))  # only widths this panel has data for
            ax.plot(
                w,
                y0 * (w / w0) ** -0.5,
                color="0.4",
                ls=":",
                lw=2,
                label=r"$\propto \mathrm{width}^{-1/2}$",
                gid="reference",
            )
        _log_axes(
            ax, "hidden width (neurons per layer)", r"$\Vert\hat{K}-K\Vert_F\,/\,\Vert K\Vert_F$"
        )
        ax.set_title(f"{_KERNEL_NAMES.get(kernel, kernel)} → infinite-width limit", fontsize=10)
        if math.isfinite(lowest) and lowest > 0:
            ax.set_ylim(bottom=lowest / 6)  # room below the curves for the slope legend
        ax.legend(
            fontsize=7, loc="lower left", framealpha=0.9, title="slope [95% CI]", title_fontsize=7
        )
    note = sample_size_note(rows, [f"{k}_distance" for k in kernels])
    fig.suptitle(f"Kernel convergence with width ({note})")
    return fig


def ntk_circle_figure(rows: Sequence[Row], show_seeds: bool = True) -> Figure:
    """Jacot et al. (2018) Fig. 1: Θ(x₀, x(γ)) for x(γ) = (cos γ, sin γ), γ ∈ [−π, π].

    For each finite width, the empirical NTK of independently initialised networks (thin
    lines, one per seed) with their mean ± 1 sd band; the analytic infinite-width NTK
    (width ``inf``) is the solid black line. The spread shrinks as the width grows.
    """
    widths = sorted({_num(r["width"]) for r in rows})
    finite = [w for w in widths if math.isfinite(w)]
    fig = Figure(figsize=(7.5, 5), layout="constrained")
    ax = fig.subplots()
    colours = ("tab:orange", "tab:blue", "tab:green", "tab:purple", "tab:red")
    notes = []
    for i, w in enumerate(finite):
        c = colours[i % len(colours)]
        sub = [r for r in rows if _num(r["width"]) == w and math.isfinite(_num(r.get("ntk")))]
        seeds = sorted({r["seed"] for r in sub})
        curves = {}
        for seed in seeds:
            pts = sorted((_num(r["gamma"]), _num(r["ntk"])) for r in sub if r["seed"] == seed)
            curves[seed] = dict(pts)
            if show_seeds:
                g, v = zip(*pts, strict=True)
                ax.plot(g, v, color=c, lw=0.5, alpha=0.35, gid=f"seed:{w:g}:{seed}")
        gammas = sorted({g for cur in curves.values() for g in cur})
        vals = np.array([[cur.get(g, np.nan) for g in gammas] for cur in curves.values()])
        mean = np.nanmean(vals, axis=0)
        std = np.nanstd(vals, axis=0, ddof=1) if len(seeds) > 1 else np.zeros_like(mean)
        label = f"width {w:,.0f} ({len(seeds)} seed{'s' if len(seeds) != 1 else ''}, mean ± 1 sd)"
        _band(
            ax,
            np.array(gammas),
            mean,
            std,
            colour=c,
            label=label,
            gid=f"width:{w:g}",
            log_y=False,
            marker="",
        )
        notes.append(f"{len(seeds)}")
    limit = sorted((_num(r["gamma"]), _num(r["ntk"])) for r in rows if _num(r["width"]) == math.inf)
    if limit:
        g, v = zip(*limit, strict=True)
        ax.plot(g, v, color="k", lw=1.5, label="width → ∞ (analytic NTK)", gid="limit")
    ticks = np.pi * np.array([-1, -0.5, 0, 0.5, 1])
    ax.set_xticks(ticks, ["−π", "−π/2", "0", "π/2", "π"])
    ax.set_xlim(-np.pi, np.pi)
    _log_axes(ax, "γ  (x(γ) = (cos γ, sin γ), rad)", "Θ(x₀, x(γ))", log_x=False, log_y=False)
    ax.legend(fontsize=8, loc="upper right", framealpha=0.9)
    seeds_note = "/".join(dict.fromkeys(notes)) if notes else "no"
    ax.set_title(f"NTK on the unit circle, x₀ = (1, 0) ({seeds_note} seeds per width)")
    return fig


def save_figure(fig: Figure, path_without_suffix: str | Path) -> list[Path]:
    """Write ``<path>.png`` (150 dpi) and ``<path>.svg``; returns both paths."""
    base = Path(path_without_suffix)
    base.parent.mkdir(parents=True, exist_ok=True)
    out = []
    # No timestamps in the files (SVG records a Date by default, PNG a Software tag): the
    # same numbers must give the same bytes, so that DVC and git see no spurious change.
    svg_kw = {"metadata": {"Date": None}}
    svg_kw["metadata"]["Creator"] = None
    for ext, kw in ((".png", {"dpi": 150, "metadata": {"Software": None}}), (".svg", svg_kw)):
        # Append rather than with_suffix: a name like "fig.v2" must not lose its ".v2".
        p = base.parent / f"{base.name}{ext}"
        # A fixed salt makes the SVG's element ids (clip paths, glyphs) the same every run.
        with matplotlib.rc_context({"svg.hashsalt": "widthlab"}):
            fig.savefig(p, bbox_inches="tight", **kw)
        out.append(p)
    return out
