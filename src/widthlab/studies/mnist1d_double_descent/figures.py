"""`mnist1d_double_descent`'s figure: test and train error against width beside the
published curve, and the losses."""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import NullLocator

from widthlab.plotting import Row, band, log_axes, num, sample_size_note, series

_TICKS = (2, 5, 10, 20, 50, 100, 200, 500, 1000)


def threshold_width(rows: Sequence[Row], n_train: float) -> float | None:
    """The width where P = n, interpolated in log P between the sweep's widths (None when
    the sweep does not cross it)."""
    pts = sorted(
        (num(r["width"]), num(r.get("n_parameters_mean")))
        for r in rows
        if np.isfinite(num(r.get("n_parameters_mean")))
    )
    for (w0, p0), (w1, p1) in itertools.pairwise(pts):
        if p0 <= n_train <= p1:
            t = (np.log(n_train) - np.log(p0)) / (np.log(p1) - np.log(p0))
            return float(np.exp(np.log(w0) + t * (np.log(w1) - np.log(w0))))
    return None


def mnist1d_double_descent_figure(rows: Sequence[Row], summary: Mapping) -> Figure:
    """Left: test error (clean labels) and train error (noisy labels) against the hidden
    width h, with the published single-run curves; right: training and test cross-entropy.
    Dash-dotted: the width where P = n."""
    fig = Figure(figsize=(11, 4.4), layout="constrained")
    ax_err, ax_loss = fig.subplots(1, 2)
    x, m, s = series(rows, "width", "test_error")
    band(
        ax_err, x, m, s, colour="tab:red", label="test error (ours)", gid="test_error", log_y=False
    )
    x, m, s = series(rows, "width", "train_error")
    band(
        ax_err,
        x,
        m,
        s,
        colour="tab:blue",
        label="train error, noisy labels (ours)",
        gid="train_error",
        log_y=False,
        marker="s",
        ls="--",
    )
    published = (summary.get("published") or {}).get("curve") or {}
    if published:
        ax_err.plot(
            published["width"],
            published["test_error"],
            ":",
            marker="x",
            ms=4,
            color="black",
            label="test error (published, one run)",
            gid="published_test_error",
        )
        ax_err.plot(
            published["width"],
            published["train_error"],
            ":",
            marker="+",
            ms=4,
            color="0.5",
            label="train error (published, one run)",
            gid="published_train_error",
        )
    log_axes(ax_err, "hidden width h (two hidden layers)", "error (fraction)", log_y=False)
    ax_err.set_ylim(bottom=0)
    x, m, s = series(rows, "width", "train_loss")
    band(ax_loss, x, m, s, colour="tab:blue", label="train loss (noisy labels)", gid="train_loss")
    x, m, s = series(rows, "width", "test_loss")
    band(ax_loss, x, m, s, colour="tab:red", label="test loss", gid="test_loss", marker="s")
    log_axes(ax_loss, "hidden width h (two hidden layers)", "cross-entropy loss")
    n_train = summary.get("n_train")
    at = threshold_width(rows, float(n_train)) if n_train else None
    ours = list(series(rows, "width", "test_error")[0])
    for ax, shown in ((ax_err, [*ours, *published.get("width", [])]), (ax_loss, ours)):
        ticks = [w for w in _TICKS if min(shown) <= w <= max(shown)]
        ax.set_xticks(ticks, [str(w) for w in ticks])
        ax.xaxis.set_minor_locator(NullLocator())
    for ax in (ax_err, ax_loss):
        if at is not None:
            ax.axvline(at, color="0.35", ls="-.", lw=1, label="P = n", gid="threshold")
        ax.legend(fontsize=8)
    ax_err.set_title("Test and train error against width, and the published run", fontsize=10)
    ax_loss.set_title("Training and test loss against width", fontsize=10)
    note = sample_size_note(rows, ["test_error"])
    fig.suptitle(
        f"MNIST-1D: a two-hidden-layer MLP against width ({summary.get('epochs', '?'):g} epochs of "
        f"{summary.get('optimizer')}, {note})"
        if isinstance(summary.get("epochs"), int | float)
        else f"MNIST-1D: a two-hidden-layer MLP against width ({note})"
    )
    return fig
