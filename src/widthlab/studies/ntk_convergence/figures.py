"""`ntk_convergence`'s figures: distances against width, the Monte-Carlo NNGP against its
noise floor, and the NTK on the circle (Jacot et al. 2018, Fig. 1)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib import colormaps
from matplotlib.figure import Figure

from widthlab.plotting import (
    Row,
    band,
    format_slope,
    log_axes,
    num,
    power_reference,
    sample_size_note,
    series,
)

KERNEL_NAMES = {"ntk": "NTK", "nngp": "NNGP of one network"}


def kernel_convergence_figure(rows: Sequence[Row], summary: Mapping) -> Figure:
    """One log-log panel per kernel: the relative Frobenius distance of the empirical kernel
    to its limit against width, one band per (depth, activation), each labelled with its
    fitted slope and 95% interval, and a width^−1/2 reference line."""
    slopes = summary.get("slopes", {})
    fig = Figure(figsize=(11.2, 4.8), layout="constrained")
    axes = fig.subplots(1, 2)
    combos = sorted({(int(num(r["depth"])), r["activation"]) for r in rows}, key=lambda k: k[::-1])
    depths = sorted({d for d, _ in combos})
    acts = sorted({a for _, a in combos})
    for ax, kernel in zip(axes, KERNEL_NAMES, strict=True):
        first, widths = [], set()
        for depth, act in combos:
            sub = [r for r in rows if int(num(r["depth"])) == depth and r["activation"] == act]
            x, m, s = series(sub, "width", f"{kernel}_distance")
            if not x.size:
                continue
            label = f"{act}, depth {depth}"
            fit = slopes.get(f"{kernel}_depth{depth}_{act}")
            if fit:
                label += f": {format_slope(fit)}"
            k = acts.index(act)  # activation ↔ marker and line style, depth ↔ colour
            band(
                ax,
                x,
                m,
                s,
                colour=colormaps["tab10"](depths.index(depth) + 3 * k),
                label=label,
                gid=f"{kernel}:{depth}:{act}",
                marker="os^v"[k % 4],
                ls="-" if k == 0 else "--",
            )
            first.append((x[0], m[0]))
            widths.update(x.tolist())
        if first:
            y0 = float(np.exp(np.mean([np.log(f[1]) for f in first])))
            power_reference(
                ax,
                sorted(widths),
                y0,
                -0.5,
                color="0.4",
                ls=":",
                lw=2,
                label=r"$\propto \mathrm{width}^{-1/2}$",
                gid="reference:-0.5",
            )
        log_axes(
            ax, "hidden width (neurons per layer)", r"$\Vert\hat{K}-K\Vert_F\,/\,\Vert K\Vert_F$"
        )
        ax.set_title(f"{KERNEL_NAMES[kernel]} → infinite-width limit", fontsize=10)
        ax.legend(
            fontsize=7,
            loc="lower left",
            framealpha=0.9,
            title="slope [95% interval]",
            title_fontsize=7,
        )
    fig.suptitle(f"Kernel convergence with width ({sample_size_note(rows, ['ntk_distance'])})")
    return fig


def mc_nngp_figure(rows: Sequence[Row], summary: Mapping) -> Figure:
    """Per depth: the Monte-Carlo NNGP's distance to the limit (solid), its noise floor
    (dotted) and the bias estimate √(d² − floor²) (markers) against width; a width^−1
    reference beside the bias where one is resolved."""
    depths = sorted({int(num(r["depth"])) for r in rows})
    fig = Figure(figsize=(4.6 * len(depths), 4.4), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(depths)))
    mc = summary.get("mc_nngp", {})
    for ax, depth in zip(axes, depths, strict=True):
        for k, act in enumerate(sorted({r["activation"] for r in rows})):
            sub = sorted(
                (r for r in rows if int(num(r["depth"])) == depth and r["activation"] == act),
                key=lambda r: num(r["width"]),
            )
            if not sub:
                continue
            c = colormaps["tab10"](k)
            w = np.array([num(r["width"]) for r in sub])
            ax.plot(
                w,
                [num(r["mc_distance"]) for r in sub],
                "-o",
                ms=3,
                color=c,
                label=f"{act}: distance d",
                gid=f"mc_distance:{depth}:{act}",
            )
            ax.plot(
                w,
                [num(r["mc_floor"]) for r in sub],
                ":",
                color=c,
                lw=1.5,
                label=f"{act}: noise floor",
                gid=f"mc_floor:{depth}:{act}",
            )
            bias = np.array([num(r["mc_bias"]) for r in sub])
            shown = bias > 0
            ax.plot(
                w[shown],
                bias[shown],
                "s",
                ms=4,
                color=c,
                mfc="none",
                label=f"{act}: bias √(d² − floor²)",
                gid=f"mc_bias:{depth}:{act}",
            )
            fit = mc.get(f"depth{depth}_{act}", {}).get("bias_slope")
            if fit and shown.any():
                ax.plot(
                    w,
                    bias[shown][0] * (w / w[shown][0]) ** -1.0,
                    color=c,
                    ls=(0, (1, 3)),
                    lw=1,
                    gid=f"reference:-1:{act}",
                    label=f"{act}: ∝ width⁻¹; fit {format_slope(fit)}",
                )
        log_axes(ax, "hidden width", "relative Frobenius distance to the limit")
        note = "exact Gaussian: no bias" if depth == 1 else "bias O(1/width)"
        ax.set_title(f"depth {depth} ({note})", fontsize=10)
        ax.legend(fontsize=6.5, loc="lower left", framealpha=0.9)
    networks = next((r.get("mc_networks") for r in rows), "?")
    fig.suptitle(f"Monte-Carlo NNGP over {networks} networks: finite-width bias vs noise")
    return fig


def ntk_circle_figure(rows: Sequence[Row], seed_rows: Sequence[Row], summary: Mapping) -> Figure:
    """Θ(x₀, x(γ)) on the unit circle: per width, a few seeds (thin lines) and the mean ± 1 sd
    band over all seeds; the analytic limit in black."""
    fig = Figure(figsize=(7.5, 5), layout="constrained")
    ax = fig.subplots()
    colours = ("tab:orange", "tab:blue", "tab:green", "tab:purple")
    finite = sorted({int(num(r["width"])) for r in rows if r["width"] != "inf"})
    for i, w in enumerate(finite):
        c = colours[i % len(colours)]
        for seed in sorted({r["seed"] for r in seed_rows if int(num(r["width"])) == w}):
            pts = sorted(
                (num(r["gamma"]), num(r["ntk"]))
                for r in seed_rows
                if int(num(r["width"])) == w and r["seed"] == seed
            )
            g, v = zip(*pts, strict=True)
            ax.plot(g, v, color=c, lw=0.5, alpha=0.4, gid=f"seed:{w}:{seed}")
        x, m, s = series(
            [r for r in rows if r["width"] != "inf" and int(num(r["width"])) == w], "gamma", "ntk"
        )
        count = next(int(num(r["ntk_count"])) for r in rows if r["width"] == w)
        band(
            ax,
            x,
            m,
            s,
            colour=c,
            label=f"width {w:,} ({count} seeds, mean ± 1 sd)",
            gid=f"width:{w}",
            log_y=False,
            marker="",
        )
    limit = sorted((num(r["gamma"]), num(r["ntk_mean"])) for r in rows if r["width"] == "inf")
    if limit:
        g, v = zip(*limit, strict=True)
        ax.plot(g, v, color="k", lw=1.5, label="width → ∞ (analytic NTK)", gid="limit")
    ticks = np.pi * np.array([-1, -0.5, 0, 0.5, 1])
    ax.set_xticks(ticks, ["−π", "−π/2", "0", "π/2", "π"])
    ax.set_xlim(-np.pi, np.pi)
    log_axes(ax, "γ (x(γ) = (cos γ, sin γ), rad)", "Θ(x₀, x(γ))", log_x=False, log_y=False)
    ax.legend(fontsize=8, loc="upper right", framealpha=0.9)
    circle = summary.get("circle", {})
    title = "NTK on the unit circle, x₀ = (1, 0)"
    if circle.get("sd_ratio") is not None:
        title += (
            f"\nsd ratio {circle['sd_ratio']:.2f} [{circle['ci_low']:.2f}, "
            f"{circle['ci_high']:.2f}] vs √(width ratio) = {circle['sqrt_width_ratio']:.2f}"
        )
    ax.set_title(title, fontsize=10)
    return fig


def caption_seeds(rows: Sequence[Row], metric: str) -> str:
    """The seed counts of `metric`'s curve points, for a caption (`3`, or `2/3`)."""
    counts = {
        int(num(r.get(f"{metric}_count")))
        for r in rows
        if math.isfinite(num(r.get(f"{metric}_count")))
    }
    return "/".join(str(c) for c in sorted(counts)) or "?"
