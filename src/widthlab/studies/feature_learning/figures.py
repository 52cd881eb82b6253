"""`feature_learning`'s figures: the coordinate check, feature movement and NTK change against
width, and the training loss against the learning rate."""

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

COLOURS = {"standard": "tab:red", "ntk": "tab:blue", "mean_field": "tab:green", "mup": "tab:purple"}
LABELS = {"standard": "standard", "ntk": "NTK", "mean_field": "mean-field", "mup": "μP"}


def _parameterizations(rows: Sequence[Row]) -> list[str]:
    names = {str(r["parameterization"]) for r in rows}
    return [p for p in COLOURS if p in names] + sorted(names - set(COLOURS))


def _hidden(rows: Sequence[Row], prefix: str) -> list[str]:
    names = {
        k[: -len("_mean")]
        for r in rows
        for k in r
        if k.startswith(prefix) and k.endswith("_mean") and k[len(prefix) : -len("_mean")].isdigit()
    }
    return sorted(names, key=lambda k: int(k[len(prefix) :]))


def width_ticks(ax, widths) -> None:
    """Tick the width axis at the widths of the sweep, labelled as plain numbers."""
    ax.set_xticks(list(widths), [str(int(w)) for w in widths], fontsize=7)
    ax.minorticks_off()


def coordinate_check_figure(rows: Sequence[Row], summary: Mapping) -> Figure:
    """One log-log panel per parameterization: mean |h_l| of every hidden layer and mean
    |f_t − f_0| against width, one line per step (lighter = earlier), the judged step bold
    with its slope in the legend."""
    coord = summary.get("coord", {})
    names = _parameterizations(rows)
    fig = Figure(figsize=(4.2 * len(names), 4.2), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(names), sharey=True))
    steps = sorted({int(num(r["step"])) for r in rows if num(r["step"]) > 0})
    layers = _hidden(rows, "h")
    colours = {q: colormaps["tab10"](i) for i, q in enumerate(layers)}
    colours["output_change"] = "black"
    for ax, p in zip(axes, names, strict=True):
        entry = coord.get(p, {})
        judged = int(entry.get("step", steps[-1] if steps else 0))
        fits = entry.get("fits", {})
        for quantity in [*layers, "output_change"]:
            for step in steps:
                sub = [
                    r for r in rows if r["parameterization"] == p and int(num(r["step"])) == step
                ]
                x, m, s = series(sub, "width", quantity)
                if not x.size:
                    continue
                name = "|f_t − f_0|" if quantity == "output_change" else f"|{quantity}|"
                if step == judged:
                    fit = fits.get(quantity)
                    label = f"{name}: {format_slope(fit)}" if fit else name
                    band(ax, x, m, s, colour=colours[quantity], label=label, gid=f"{quantity}:{p}")
                    ax.lines[-1].set_linewidth(2.2)
                else:
                    alpha = 0.2 + 0.6 * step / max(steps)
                    ax.plot(x, m, "-", lw=0.8, color=colours[quantity], alpha=alpha)
        verdict = entry.get("verdict")
        title = f"{LABELS.get(p, p)} (step {judged}"
        title += f": {entry['prediction']}, {verdict})" if verdict else ")"
        ax.set_title(title)
        log_axes(ax, "width", "mean |coordinate|")
        width_ticks(ax, sorted({num(r["width"]) for r in rows}))
        ax.legend(fontsize=7, loc="best")
    note = sample_size_note(rows, [*layers, "output_change"])
    fig.suptitle(f"Coordinate check: steps 1 … {max(steps) if steps else 0} ({note})")
    return fig


def movement_figure(rows: Sequence[Row], summary: Mapping) -> Figure:
    """Two log-log panels against width, one colour per parameterization: feature movement
    of every hidden layer, and the NTK's relative change; width^−1/2 and width^−1 in grey."""
    movement = summary.get("movement", {})
    fig = Figure(figsize=(12, 4.8), layout="constrained")
    ax_h, ax_k = fig.subplots(1, 2)
    layers = _hidden(rows, "feature_movement_layer_")
    for p in _parameterizations(rows):
        sub = [r for r in rows if r["parameterization"] == p]
        fits = movement.get(p, {}).get("fits", {})
        for i, metric in enumerate(layers):
            x, m, s = series(sub, "width", metric)
            if not x.size:
                continue
            fit = fits.get(metric)
            label = f"{LABELS.get(p, p)}, layer {metric.rsplit('_', 1)[-1]}"
            label += f": {format_slope(fit)}" if fit else ""
            band(
                ax_h,
                x,
                m,
                s,
                colour=COLOURS.get(p, "0.3"),
                label=label,
                gid=f"{metric}:{p}",
                ls="-" if i == 0 else "--",
                marker="o" if i == 0 else "^",
            )
        x, m, s = series(sub, "width", "ntk_change")
        if x.size:
            fit = fits.get("ntk_change")
            label = f"{LABELS.get(p, p)}: {format_slope(fit)}" if fit else LABELS.get(p, p)
            band(ax_k, x, m, s, colour=COLOURS.get(p, "0.3"), label=label, gid=f"ntk_change:{p}")
    widths = np.array(sorted({num(r["width"]) for r in rows}))
    for ax, ylabel in ((ax_h, "‖h_T − h_0‖ / ‖h_0‖"), (ax_k, "‖Θ_T − Θ_0‖ / ‖Θ_0‖")):
        if widths.size:
            tops = [ln.get_ydata()[0] for ln in ax.get_lines() if ln.get_gid()]
            y0 = float(np.exp(np.mean(np.log(tops)))) if tops else 1.0
            for power, ls in ((-0.5, (0, (1, 1))), (-1.0, (0, (3, 1, 1, 1)))):
                power_reference(
                    ax,
                    widths,
                    y0,
                    power,
                    color="0.45",
                    ls=ls,
                    lw=1,
                    label=f"∝ width^{power:g}".replace("-", "−"),
                )
        log_axes(ax, "width", ylabel)
        width_ticks(ax, widths)
        ax.legend(fontsize=7)
    ax_h.set_title("(a) feature movement")
    ax_k.set_title("(b) NTK change (learning-rate weighted)")
    note = sample_size_note(rows, layers)
    fig.suptitle(f"How far training moves the features and the kernel ({note})")
    return fig


def transfer_figure(rows: Sequence[Row], summary: Mapping) -> Figure:
    """One panel per parameterization: training loss against log2 learning rate, one curve
    per width, the best rate of each width (with its interval) marked at the top."""
    transfer = summary.get("transfer", {})
    names = _parameterizations(rows)
    rows = [r for r in rows if int(num(r.get("diverged", 0)) or 0) == 0]
    fig = Figure(figsize=(4.2 * len(names), 4.4), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(names), sharey=True))
    widths = sorted({int(num(r["width"])) for r in rows})
    cmap = colormaps["viridis"]
    for ax, p in zip(axes, names, strict=True):
        entry = transfer.get(p, {})
        for i, width in enumerate(widths):
            colour = cmap(0.9 * i / max(len(widths) - 1, 1))
            sub = [r for r in rows if r["parameterization"] == p and int(num(r["width"])) == width]
            x, m, s = series(sub, "log2_lr", "train_loss")
            if not x.size:
                continue
            band(ax, x, m, s, colour=colour, label=f"width {width}", gid=f"loss:{p}:{width}")
            best = (entry.get("best") or {}).get(str(width))
            if best and math.isfinite(num(best.get("log2_lr"))):
                low, high = num(best.get("ci_low")), num(best.get("ci_high"))
                err = [[max(best["log2_lr"] - low, 0.0)], [max(high - best["log2_lr"], 0.0)]]
                y = 0.97 - 0.035 * i
                ax.errorbar(
                    [best["log2_lr"]],
                    [y],
                    xerr=err if math.isfinite(low) and math.isfinite(high) else None,
                    fmt="v",
                    color=colour,
                    ms=5,
                    capsize=2,
                    transform=ax.get_xaxis_transform(),
                    gid=f"best:{p}:{width}",
                )
        log_axes(ax, "log₂ learning rate", "training loss", log_x=False)
        shift = entry.get("shift_steps")
        title = LABELS.get(p, p)
        if shift is not None:
            moved = f"{int(shift):+d}".replace("-", "−")
            title += f": best rate moves {moved} step{'s' * (abs(int(shift)) != 1)}"
            if entry.get("verdict"):
                title += f" ({entry['prediction']}: {entry['verdict']})"
        ax.set_title(title, fontsize=10)
        ax.legend(fontsize=7, loc="lower left")
    note = sample_size_note(rows, ["train_loss"])
    fig.suptitle(f"Learning-rate transfer across widths ({note})")
    return fig
