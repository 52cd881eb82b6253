"""Figures of the trained-network studies (`double_descent_mlp`, `lazy_training`).

Same conventions as `widthlab.figures`: rows as read by ``csv.DictReader``, a ``Figure``
built without pyplot, mean over seeds with a mean ± 1 sd band, the seed count in the title,
and a ``gid`` on every line.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib import colormaps
from matplotlib.figure import Figure

from widthlab.figures import Row, _band, _log_axes, _num, _series, format_slope, sample_size_note

__all__ = ["lazy_training_figure", "mlp_double_descent_figure"]

_P_OVER_NC = "parameters / (samples × classes)   P/(n·C)"


def mlp_double_descent_figure(rows: Sequence[Row], summary: Mapping | None = None) -> Figure:
    """Test error, and train loss / error, of the trained MLP vs P/(n·C) (log x), with the
    interpolation threshold P = n·C marked (Belkin et al. 2019, Fig. 4)."""
    fig = Figure(figsize=(11, 4.4), layout="constrained")
    ax_test, ax_train = fig.subplots(1, 2)
    x, m, s = _series(rows, "params_over_threshold", "test_error")
    _band(ax_test, x, 100 * m, 100 * s, colour="tab:red", label="test error (clean labels)",
          gid="test_error", log_y=False)  # fmt: skip
    x, m, s = _series(rows, "params_over_threshold", "train_error")
    _band(ax_test, x, 100 * m, 100 * s, colour="tab:blue", label="train error (noisy labels)",
          gid="train_error", log_y=False, marker="s", ls="--")  # fmt: skip
    _log_axes(ax_test, _P_OVER_NC, "error (%)", log_y=False)
    ax_test.set_ylim(bottom=0)
    x, m, s = _series(rows, "params_over_threshold", "train_loss")
    _band(ax_train, x, m, s, colour="tab:blue", label="train loss", gid="train_loss")
    x, m, s = _series(rows, "params_over_threshold", "test_loss")
    _band(ax_train, x, m, s, colour="tab:red", label="test loss", gid="test_loss", marker="s")
    stop = (summary or {}).get("stop_loss")
    if stop:
        ax_train.axhline(stop, color="0.5", ls=":", lw=1, label="stopping threshold")
    _log_axes(ax_train, _P_OVER_NC, r"loss $\frac{1}{2n}\sum_i \Vert y_i - f(x_i)\Vert^2$")
    for ax in (ax_test, ax_train):
        ax.axvline(1.0, color="0.35", ls="-.", lw=1, label="interpolation threshold P = n·C",
                   gid="threshold")  # fmt: skip
        ax.legend(fontsize=8)
    ax_test.set_title("Test error peaks where the network can first fit the noisy labels",
                      fontsize=10)  # fmt: skip
    ax_train.set_title("Training loss reaches the stopping threshold beyond P ≈ n·C",
                       fontsize=10)  # fmt: skip
    extra = ""
    if summary and summary.get("threshold"):
        extra = f"n·C = {summary['threshold']}, ≤ {summary.get('max_steps')} Adam steps; "
    note = sample_size_note(rows, ["test_error"])
    fig.suptitle(f"MLP double descent, one hidden layer ({extra}{note})")
    return fig


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
    depths = sorted({int(_num(r["depth"])) for r in rows})
    for i, depth in enumerate(depths):
        sub = [r for r in rows if int(_num(r["depth"])) == depth]
        fits = slopes.get(f"depth{depth}", {})
        colour = colormaps["tab10"](i)
        layers = sorted({k[: -len("_mean")] for r in sub for k in r
                         if k.startswith("weight_change_layer_") and k.endswith("_mean")
                         and r[k] != ""}, key=lambda k: int(k.rsplit("_", 1)[-1]))  # fmt: skip
        for metric in layers:
            fit = fits.get(metric, {})
            role = fit.get("role", "")
            layer = metric.rsplit("_", 1)[-1]
            x, m, s = _series(sub, "width", metric)
            label = f"depth {depth}, layer {layer}"
            if fit:
                label += f": {format_slope(fit)}"
            ls, marker = _ROLE_STYLE.get(role, ("-", "o"))
            _band(ax_w, x, m, s, colour=colour, label=label, gid=f"{metric}:{depth}",
                  ls=ls, marker=marker)  # fmt: skip
        for ax, metric, style in ((ax_k, "ntk_change", "-"), (ax_f, "linearization_gap", "-"),
                                  (ax_f, "limit_gap", "--")):  # fmt: skip
            x, m, s = _series(sub, "width", metric)
            if not x.size:
                continue
            name = {"ntk_change": f"depth {depth}", "linearization_gap":
                    f"depth {depth}, vs linearization", "limit_gap":
                    f"depth {depth}, vs ∞-width NTK"}[metric]  # fmt: skip
            fit = fits.get(metric)
            label = f"{name}: {format_slope(fit)}" if fit else name
            _band(ax, x, m, s, colour=colour, label=label, gid=f"{metric}:{depth}", ls=style,
                  marker="o" if style == "-" else "s")  # fmt: skip
    widths = np.array(sorted({_num(r["width"]) for r in rows}))
    for ax in (ax_w, ax_k, ax_f):
        lines = [ln for ln in ax.get_lines() if ln.get_gid() and ":" in ln.get_gid()]
        if widths.size and lines:
            y0 = float(np.exp(np.mean([np.log(ln.get_ydata()[0]) for ln in lines])))
            for power, ls in ((-0.5, (0, (1, 1))), (-1.0, (0, (3, 1, 1, 1)))):
                ax.plot(widths, y0 * (widths / widths[0]) ** power, color="0.45", ls=ls, lw=1.5,
                        label=rf"$\propto \mathrm{{width}}^{{{power:g}}}$",
                        gid=f"reference:{power:g}")  # fmt: skip
        ax.legend(fontsize=6.5, title="slope [95% CI]", title_fontsize=7, framealpha=0.9)
    _log_axes(ax_w, "hidden width", r"$\Vert W_l(T)-W_l(0)\Vert_F / \Vert W_l(0)\Vert_F$")
    ax_w.set_title("Weights move less (solid: first layer, dashed: hidden, dotted: last)",
                   fontsize=9)  # fmt: skip
    _log_axes(
        ax_k, "hidden width", r"$\Vert\hat\Theta_T-\hat\Theta_0\Vert_F/\Vert\hat\Theta_0\Vert_F$"
    )
    ax_k.set_title("The empirical NTK stays put during training", fontsize=9)
    _log_axes(
        ax_f,
        "hidden width",
        r"$\Vert f_T - f^{\mathrm{lin}}_T\Vert / \Vert f^{\mathrm{lin}}_T - f_0\Vert$ (test)",
    )
    ax_f.set_title("Trained network vs linearized model (solid) and ∞-width NTK (dashed)",
                   fontsize=9)  # fmt: skip
    note = sample_size_note(rows, ["ntk_change"])
    steps = next((r.get("steps_mean") for r in rows if r.get("steps_mean")), None)
    extra = (
        f"{int(_num(steps))} full-batch GD steps, " if steps and math.isfinite(_num(steps)) else ""
    )
    fig.suptitle(f"Lazy training in the NTK parameterization ({extra}{note})")
    return fig
