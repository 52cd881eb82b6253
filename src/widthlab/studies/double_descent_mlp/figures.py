"""`double_descent_mlp`'s figure: test and train error, and the losses, against P/(n·C)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from matplotlib.figure import Figure

from widthlab.plotting import Row, band, log_axes, sample_size_note, series

_P_OVER_NC = "parameters / (samples × classes)   P/(n·C)"


def mlp_double_descent_figure(rows: Sequence[Row], summary: Mapping | None = None) -> Figure:
    """Test error, and train loss / error, of the trained MLP vs P/(n·C) (log x), with the
    interpolation threshold P = n·C marked (Belkin et al. 2019, Fig. 4)."""
    fig = Figure(figsize=(11, 4.4), layout="constrained")
    ax_test, ax_train = fig.subplots(1, 2)
    x, m, s = series(rows, "params_over_threshold", "test_error")
    band(
        ax_test,
        x,
        m,
        s,
        colour="tab:red",
        label="test error (clean labels)",
        gid="test_error",
        log_y=False,
    )
    x, m, s = series(rows, "params_over_threshold", "train_error")
    band(
        ax_test,
        x,
        m,
        s,
        colour="tab:blue",
        label="train error (noisy labels)",
        gid="train_error",
        log_y=False,
        marker="s",
        ls="--",
    )
    log_axes(ax_test, _P_OVER_NC, "error (fraction)", log_y=False)
    ax_test.set_ylim(bottom=0)
    x, m, s = series(rows, "params_over_threshold", "train_loss")
    band(ax_train, x, m, s, colour="tab:blue", label="train loss", gid="train_loss")
    x, m, s = series(rows, "params_over_threshold", "test_loss")
    band(ax_train, x, m, s, colour="tab:red", label="test loss", gid="test_loss", marker="s")
    stop = (summary or {}).get("stop_loss")
    if stop:
        ax_train.axhline(stop, color="0.5", ls=":", lw=1, label="stopping threshold")
    loss = (summary or {}).get("loss", "squared")
    label = (
        r"loss $\frac{1}{2n}\sum_i \Vert y_i - f(x_i)\Vert^2$"
        if loss == "squared"
        else "cross-entropy loss"
    )
    log_axes(ax_train, _P_OVER_NC, label)
    for ax in (ax_test, ax_train):
        ax.axvline(
            1.0,
            color="0.35",
            ls="-.",
            lw=1,
            label="interpolation threshold P = n·C",
            gid="threshold",
        )
        ax.legend(fontsize=8)
    ax_test.set_title("Test and train error against P/(n·C)", fontsize=10)
    ax_train.set_title("Training and test loss against P/(n·C)", fontsize=10)
    extra = ""
    if summary and summary.get("threshold"):
        extra = (
            f"n·C = {summary['threshold']}, ≤ {summary.get('max_steps')} "
            f"{summary.get('optimizer')} steps; "
        )
    note = sample_size_note(rows, ["test_error"])
    fig.suptitle(f"One-hidden-layer MLP: error against size ({extra}{note})")
    return fig


LOSS_STYLE = {
    "squared": ("tab:red", "o", "squared loss"),
    "cross_entropy": ("tab:blue", "s", "cross-entropy"),
}


def loss_comparison_figure(rows: Sequence[Row], summary: Mapping | None = None) -> Figure:
    """The squared-loss and cross-entropy curves in one figure: test error (left) and train
    error on the noisy labels (right) against P/(n·C), one band per loss, with the
    interpolation threshold P = n·C marked."""
    fig = Figure(figsize=(11, 4.4), layout="constrained")
    axes = fig.subplots(1, 2)
    losses = sorted({str(r.get("loss") or "squared") for r in rows}, key=lambda v: v != "squared")
    for ax, metric, what in (
        (axes[0], "test_error", "test error, clean labels"),
        (axes[1], "train_error", "train error, noisy labels"),
    ):
        for i, loss in enumerate(losses):
            colour, marker, name = LOSS_STYLE.get(loss, (f"C{i + 2}", "^", loss))
            sub = [r for r in rows if str(r.get("loss") or "squared") == loss]
            x, m, s = series(sub, "params_over_threshold", metric)
            if x.size:
                band(
                    ax,
                    x,
                    m,
                    s,
                    colour=colour,
                    label=name,
                    gid=f"{metric}:{loss}",
                    log_y=False,
                    marker=marker,
                )
        ax.axvline(
            1.0,
            color="0.35",
            ls="-.",
            lw=1,
            label="interpolation threshold P = n·C",
            gid="threshold",
        )
        log_axes(ax, _P_OVER_NC, f"{what} (fraction)", log_y=False)
        ax.set_ylim(bottom=0)
        ax.legend(fontsize=8)
    axes[0].set_title("Test error: squared loss against cross-entropy", fontsize=10)
    axes[1].set_title("Train error on the noisy training labels", fontsize=10)
    extra = ""
    if summary and summary.get("threshold"):
        extra = f"n·C = {summary['threshold']}, ≤ {summary.get('max_steps')} steps; "
    note = sample_size_note(rows, ["test_error"])
    fig.suptitle(f"One-hidden-layer MLP, two losses ({extra}{note})")
    return fig
