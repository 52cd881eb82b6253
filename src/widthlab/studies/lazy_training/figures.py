"""`lazy_training`'s figure: weight change, NTK change and the linearization gap against
width, with their slopes."""

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

# layer role → (line style, marker)
_ROLE_STYLE = {"first_layer": ("-", "o"), "hidden_layers": ("--", "^"), "last_layer": (":", "s")}


def lazy_training_figure(rows: Sequence[Row], summary: Mapping) -> Figure:
    """Three log-log panels against width, one colour per depth, slopes in the legends:
    (a) relative weight change of the first, hidden and last layers; (b) relative NTK change
    ‖Θ̂_T − Θ̂₀‖/‖Θ̂₀‖; (c) trained network vs its linearization and vs the infinite-width
    NTK prediction. Dotted grey lines: width^−1/2 and width^−1 references (Lee et al. 2019)."""
    slopes = summary.get("slopes", {})
    fig = Figure(figsize=(16, 5), layout="constrained")
    ax_w, ax_k, ax_f = fig.subplots(1, 3)
    depths = sorted({int(num(r["depth"])) for r in rows})
    for i, depth in enumerate(depths):
        sub = [r for r in rows if int(num(r["depth"])) == depth]
        fits = slopes.get(f"depth{depth}", {})
        colour = colormaps["tab10"](i)
        layers = sorted(
            {
                k[: -len("_mean")]
                for r in sub
                for k in r
                if k.startswith("weight_change_layer_") and k.endswith("_mean") and r[k] != ""
            },
            key=lambda k: int(k.rsplit("_", 1)[-1]),
        )
        for metric in layers:
            fit = fits.get(metric, {})
            role = fit.get("role", "")
            layer = metric.rsplit("_", 1)[-1]
            x, m, s = series(sub, "width", metric)
            label = f"depth {depth}, layer {layer}"
            if fit:
                label += f": {format_slope(fit)}"
            ls, marker = _ROLE_STYLE.get(role, ("-", "o"))
            band(
                ax_w,
                x,
                m,
                s,
                colour=colour,
                label=label,
                gid=f"{metric}:{depth}",
                ls=ls,
                marker=marker,
            )
        for ax, metric, style in (
            (ax_k, "ntk_change", "-"),
            (ax_f, "linearization_gap", "-"),
            (ax_f, "limit_gap", "--"),
        ):
            x, m, s = series(sub, "width", metric)
            if not x.size:
                continue
            name = {
                "ntk_change": f"depth {depth}",
                "linearization_gap": f"depth {depth}, vs linearization",
                "limit_gap": f"depth {depth}, vs ∞-width NTK",
            }[metric]
            fit = fits.get(metric)
            label = f"{name}: {format_slope(fit)}" if fit else name
            band(
                ax,
                x,
                m,
                s,
                colour=colour,
                label=label,
                gid=f"{metric}:{depth}",
                ls=style,
                marker="o" if style == "-" else "s",
            )
    widths = np.array(sorted({num(r["width"]) for r in rows}))
    for ax in (ax_w, ax_k, ax_f):
        lines = [ln for ln in ax.get_lines() if ln.get_gid() and ":" in ln.get_gid()]
        if widths.size and lines:
            y0 = float(np.exp(np.mean([np.log(ln.get_ydata()[0]) for ln in lines])))
            for power, ls in ((-0.5, (0, (1, 1))), (-1.0, (0, (3, 1, 1, 1)))):
                power_reference(
                    ax,
                    widths,
                    y0,
                    power,
                    color="0.45",
                    ls=ls,
                    lw=1.5,
                    label=rf"$\propto \mathrm{{width}}^{{{power:g}}}$",
                    gid=f"reference:{power:g}",
                )
        ax.legend(fontsize=6.5, title="slope [95% CI]", title_fontsize=7, framealpha=0.9)
    log_axes(ax_w, "hidden width", r"$\Vert W_l(T)-W_l(0)\Vert_F / \Vert W_l(0)\Vert_F$")
    ax_w.set_title(
        "Relative weight change (solid: first layer, dashed: hidden, dotted: last)", fontsize=9
    )
    log_axes(
        ax_k, "hidden width", r"$\Vert\hat\Theta_T-\hat\Theta_0\Vert_F/\Vert\hat\Theta_0\Vert_F$"
    )
    ax_k.set_title("Relative change of the empirical NTK during training", fontsize=9)
    log_axes(
        ax_f,
        "hidden width",
        r"$\Vert f_T - f^{\mathrm{lin}}_T\Vert / \Vert f^{\mathrm{lin}}_T - f_0\Vert$ (test)",
    )
    ax_f.set_title(
        "Trained network vs linearized model (solid) and ∞-width NTK (dashed)", fontsize=9
    )
    note = sample_size_note(rows, ["ntk_change"])
    steps = next((r.get("steps_mean") for r in rows if r.get("steps_mean")), None)
    extra = (
        f"{int(num(steps))} full-batch GD steps, " if steps and math.isfinite(num(steps)) else ""
    )
    fig.suptitle(f"Lazy training in the NTK parameterization ({extra}{note})")
    return fig
