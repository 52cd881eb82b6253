"""`finite_vs_infinite`'s figure: test accuracy and loss of trained networks against width
with their infinite-width asymptote, and the function-space gap."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib import colormaps
from matplotlib.figure import Figure
from matplotlib.ticker import NullLocator

from widthlab.plotting import Row, band, format_slope, log_axes, num, sample_size_note, series

# kernel → (marker, label) of the ridge-tuned kernel regressions drawn at "∞"
_TUNED = {
    "ntk": ("D", "NTK regression, tuned ridge"),
    "nngp": ("^", "NNGP regression, tuned ridge"),
}


def finite_vs_infinite_figure(rows: Sequence[Row], summary: Mapping) -> Figure:
    """(a) test accuracy, (b) test loss of the trained networks against width (log x), one
    colour per depth, with the NTK predictor of the same gradient descent as a dashed line
    and the ridge-tuned kernel regressions as markers at "∞"; (c) the function-space gap
    ‖f_T − f_∞,T‖/‖f_∞,T‖ against width, log-log, with its slope and a width^−1/2 guide."""
    depths_summary = summary.get("depths", {})
    fig = Figure(figsize=(16, 5), layout="constrained")
    ax_acc, ax_loss, ax_gap = fig.subplots(1, 3)
    depths = sorted({int(num(r["depth"])) for r in rows})
    widths = np.array(sorted({num(r["width"]) for r in rows}))
    at_infinity = widths.max() * 2.5 if widths.size else 1.0
    for i, depth in enumerate(depths):
        colour = colormaps["tab10"](i)
        sub = [r for r in rows if int(num(r["depth"])) == depth]
        entry = depths_summary.get(f"depth{depth}", {})
        asymptote = entry.get("asymptote", {})
        for ax, metric in ((ax_acc, "test_accuracy"), (ax_loss, "test_loss")):
            x, m, s = series(sub, "width", metric)
            band(
                ax,
                x,
                m,
                s,
                colour=colour,
                label=f"depth {depth}",
                gid=f"{metric}:{depth}",
                log_y=False,
            )
            if asymptote.get(metric) is not None:
                ax.axhline(
                    asymptote[metric],
                    color=colour,
                    ls="--",
                    lw=1,
                    label="NTK predictor of the same GD (width → ∞)" if i == 0 else None,
                    gid=f"asymptote:{metric}:{depth}",
                )
            for kernel, (marker, label) in _TUNED.items():
                value = (entry.get("kernels", {}).get(kernel) or {}).get(metric)
                if value is not None:
                    ax.plot(
                        [at_infinity],
                        [value],
                        marker,
                        color=colour,
                        ms=6,
                        mfc="none" if kernel == "nngp" else colour,
                        label=label if i == 0 else None,
                        gid=f"{kernel}:{metric}:{depth}",
                    )
        x, m, s = series(sub, "width", "function_gap")
        fit = (entry.get("slopes") or {}).get("function_gap")
        label = f"depth {depth}: {format_slope(fit)}" if fit else f"depth {depth}"
        band(ax_gap, x, m, s, colour=colour, label=label, gid=f"function_gap:{depth}")
    gap_lines = [ln for ln in ax_gap.get_lines() if (ln.get_gid() or "").startswith("function")]
    if widths.size and gap_lines:
        y0 = float(np.exp(np.mean([np.log(ln.get_ydata()[0]) for ln in gap_lines])))
        ax_gap.plot(
            widths,
            y0 * (widths / widths[0]) ** -0.5,
            color="0.45",
            ls=(0, (1, 1)),
            lw=1.5,
            label=r"$\propto \mathrm{width}^{-1/2}$",
            gid="reference:-0.5",
        )
    for ax, ylabel in (
        (ax_acc, "test accuracy"),
        (ax_loss, r"test loss $\frac{1}{2n}\sum\Vert y-f\Vert^2$"),
    ):
        log_axes(ax, "hidden width", ylabel, log_y=False)
        if widths.size:
            ticks = [*widths, at_infinity]
            ax.set_xticks(ticks, [f"{w:g}" for w in widths] + ["∞"])
            ax.xaxis.set_minor_locator(NullLocator())
        ax.legend(fontsize=6.5, framealpha=0.9)
    log_axes(
        ax_gap, "hidden width", r"$\Vert f_T - f_{\infty,T}\Vert / \Vert f_{\infty,T}\Vert$ (test)"
    )
    if widths.size:
        ax_gap.set_xticks(widths, [f"{w:g}" for w in widths])
        ax_gap.xaxis.set_minor_locator(NullLocator())
    ax_gap.legend(fontsize=7, title="slope [95% CI]", title_fontsize=7, framealpha=0.9)
    ax_acc.set_title("Test accuracy against width, and the NTK predictor's", fontsize=10)
    ax_loss.set_title("Test loss against width, and the NTK predictor's", fontsize=10)
    ax_gap.set_title("Distance to the NTK predictor in function space", fontsize=10)
    steps, n = summary.get("steps"), summary.get("n_train")
    note = sample_size_note(rows, ["test_accuracy"])
    fig.suptitle(
        f"Finite networks against their infinite-width kernels on {summary.get('data')} "
        f"(n = {n}, {steps} full-batch GD steps, centered; {note})"
    )
    return fig
