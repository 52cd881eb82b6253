"""The studies' figures: the plotted data are the input means, in order, with missing values
skipped; references, bands and labels where the captions say."""

import math

import numpy as np
import pytest
from matplotlib.collections import PolyCollection
from matplotlib.figure import Figure

from widthlab import plotting
from widthlab.studies.double_descent_rf import figures as rf_figures
from widthlab.studies.ntk_convergence import figures as ntk_figures


class F:  # the figure functions under test, by their names
    rf_double_descent_figure = staticmethod(rf_figures.rf_double_descent_figure)
    gd_min_norm_figure = staticmethod(rf_figures.gd_min_norm_figure)
    gd_early_stopping_figure = staticmethod(rf_figures.gd_early_stopping_figure)
    kernel_convergence_figure = staticmethod(ntk_figures.kernel_convergence_figure)
    mc_nngp_figure = staticmethod(ntk_figures.mc_nngp_figure)
    ntk_circle_figure = staticmethod(ntk_figures.ntk_circle_figure)
    format_slope = staticmethod(plotting.format_slope)
    sample_size_note = staticmethod(plotting.sample_size_note)


# d/n values deliberately out of order: figures must sort them.
DN = [2.0, 0.5, 1.0, 4.0, 0.25]


def _cell(v):
    return "" if v is None else repr(float(v))


def _metric(row, metric, mean, std=0.1, count=5):
    row[f"{metric}_mean"] = _cell(mean)
    row[f"{metric}_std"] = "" if mean is None else _cell(std)
    row[f"{metric}_count"] = "" if mean is None else str(count)


def _risk(x, ridge):
    return 1.0 / abs(x - 1.0 + 0.01) + 10 * ridge  # a peak at d/n = 1


def rf_rows(name="sphere_linear", ridges=("0", "0.001"), count=5):
    rows = []
    for ridge in ridges:
        lam = float(ridge)
        for x in DN:
            r = {"name": name, "ridge": ridge, "d_over_n": repr(x)}
            if name == "sphere_linear":
                _metric(r, "excess_risk", _risk(x, lam), std=0.05, count=count)
                # Ridgeless theory is missing exactly at the threshold.
                _metric(r, "theory_excess_risk", None if x == 1 and lam == 0 else 2 * _risk(x, lam))
                _metric(r, "kernel_limit_excess_risk", 0.2 + lam)
            else:
                _metric(r, "excess_risk", None)
                _metric(r, "test_error", None if x == 4.0 else 0.01 * x, count=3)
                _metric(r, "kernel_limit_test_error", 0.015, count=3)
            _metric(r, "test_mse", 3 * _risk(x, lam), count=count)
            _metric(r, "train_mse", 1e-3 * x, count=count)
            _metric(r, "beta_norm", 5 + x, count=count)
            if lam == 0 and x >= 1:
                for m in ("kkt_feasibility", "kkt_stationarity", "gd_limit_distance"):
                    _metric(r, m, 1e-14 * x, std=1e-15)
                _metric(r, "gd_explicit_vs_closed_form", 3e-15 * x, std=1e-15)
                _metric(r, "gd_steps_to_min_norm", 1e4 / (x - 0.99), std=10)
            else:  # values the GD figure must filter out (d < n or λ > 0)
                for m in ("kkt_feasibility", "gd_steps_to_min_norm", "gd_limit_distance"):
                    _metric(r, m, 99.0)
            rows.append(r)
    return rows


def line(fig_or_ax, gid):
    axes = fig_or_ax.axes if isinstance(fig_or_ax, Figure) else [fig_or_ax]
    found = [ln for ax in axes for ln in ax.get_lines() if ln.get_gid() == gid]
    assert len(found) == 1, f"expected one line with gid {gid!r}, found {len(found)}"
    return found[0]


def xy(ln):
    return np.asarray(ln.get_xdata(), float), np.asarray(ln.get_ydata(), float)


def band_y_range(ax, colour):
    """(min, max) y of the fill_between band drawn in `colour`."""
    from matplotlib.colors import to_rgba

    for coll in ax.collections:
        if isinstance(coll, PolyCollection) and np.allclose(
            coll.get_facecolor()[0][:3], to_rgba(colour)[:3]
        ):
            v = coll.get_paths()[0].vertices
            return v[:, 1].min(), v[:, 1].max()
    raise AssertionError(f"no band in colour {colour}")


def assert_labelled(fig):
    for ax in fig.axes:
        assert ax.get_xlabel().strip() and ax.get_ylabel().strip()
        assert ax.get_legend() is not None


def test_rf_double_descent_sphere_plots_means_theory_kernel_and_threshold():
    rows = rf_rows()
    fig = F.rf_double_descent_figure(rows)
    assert isinstance(fig, Figure) and len(fig.axes) == 3
    assert_labelled(fig)
    assert all(ax.get_xscale() == "log" and ax.get_yscale() == "log" for ax in fig.axes)
    risk_ax = fig.axes[0]
    xs = sorted(DN)
    for ridge in ("0", "0.001"):
        x, y = xy(line(risk_ax, f"empirical:{ridge}"))
        np.testing.assert_allclose(x, xs)
        np.testing.assert_allclose(y, [_risk(v, float(ridge)) for v in xs])
        _, ky = xy(line(risk_ax, f"kernel:{ridge}"))
        np.testing.assert_allclose(ky, 0.2 + float(ridge))
    # The missing theory point at d = n is skipped, not drawn as 0.
    tx, ty = xy(line(risk_ax, "theory:0"))
    np.testing.assert_allclose(tx, [0.25, 0.5, 2.0, 4.0])
    np.testing.assert_allclose(ty, [2 * _risk(v, 0) for v in tx])
    _, ty = xy(line(risk_ax, "theory:0.001"))
    assert len(ty) == 5
    for ax in fig.axes:
        np.testing.assert_allclose(xy(line(ax, "threshold"))[0], [1, 1])
    np.testing.assert_allclose(xy(line(fig, "train:0"))[1], [1e-3 * v for v in xs])
    np.testing.assert_allclose(xy(line(fig, "norm:0.001"))[1], [5 + v for v in xs])
    legend = [t.get_text() for t in risk_ax.get_legend().get_texts()]
    assert "λ = 0 (min-norm)" in legend and "λ = 0.001" in legend
    assert "interpolation threshold d = n" in legend
    assert "5 seeds per point" in fig.get_suptitle()
    # Band = mean ± sd (sd = 0.05), lower edge positive on the log axis.
    lo, hi = band_y_range(risk_ax, "tab:red")
    assert hi == pytest.approx(max(_risk(v, 0) for v in xs) + 0.05)
    assert lo == pytest.approx(min(_risk(v, 0) for v in xs) - 0.05) and lo > 0


def test_log_band_is_capped_above_zero_when_sd_exceeds_mean():
    rows = rf_rows(ridges=("0",))
    for r in rows:
        r["excess_risk_std"] = repr(3 * float(r["excess_risk_mean"]))
    lo, _ = band_y_range(F.rf_double_descent_figure(rows).axes[0], "tab:red")
    assert lo == pytest.approx(min(_risk(v, 0) for v in DN) / 10)


def test_rf_double_descent_digits_uses_test_mse_and_adds_classification_panel():
    rows = rf_rows(name="digits", ridges=("0",), count=3) + rf_rows(ridges=("0",))
    fig = F.rf_double_descent_figure(rows, name="digits")
    assert len(fig.axes) == 4
    assert_labelled(fig)
    assert "test MSE" in fig.axes[0].get_ylabel()
    _, y = xy(line(fig.axes[0], "empirical:0"))
    np.testing.assert_allclose(y, [3 * _risk(v, 0) for v in sorted(DN)])
    assert not any(ln.get_gid().startswith("theory") for ln in fig.axes[0].get_lines())
    # d/n = 4 has no classification error: skipped, not plotted as 0.
    cx, cy = xy(line(fig.axes[3], "cls:0"))
    np.testing.assert_allclose(cx, [0.25, 0.5, 1.0, 2.0])
    np.testing.assert_allclose(cy, 0.01 * cx)
    np.testing.assert_allclose(xy(line(fig.axes[3], "kernel:0"))[1], 0.015)
    assert "3 seeds per point" in fig.get_suptitle()
    with pytest.raises(ValueError, match="no rows"):
        F.rf_double_descent_figure(rows, name="mnist")


def test_gd_min_norm_uses_only_ridgeless_overparameterized_rows():
    fig = F.gd_min_norm_figure(rf_rows())
    assert len(fig.axes) == 2
    assert_labelled(fig)
    assert all(ax.get_xscale() == "log" and ax.get_yscale() == "log" for ax in fig.axes)
    x, y = xy(line(fig.axes[0], "kkt_feasibility"))
    np.testing.assert_allclose(x, [1.0, 2.0, 4.0])
    np.testing.assert_allclose(y, 1e-14 * x)
    np.testing.assert_allclose(xy(line(fig.axes[0], "gd_explicit_vs_closed_form"))[1], 3e-15 * x)
    np.testing.assert_allclose(xy(line(fig.axes[0], "eps"))[1], np.finfo(float).eps)
    # The train-MSE panel of the double-descent figure draws no ε line: ε is no floor for a
    # squared error.
    assert not any(
        ln.get_gid() == "eps" for ln in F.rf_double_descent_figure(rf_rows()).axes[1].get_lines()
    )
    assert fig.axes[0].get_ylim()[0] < np.finfo(float).eps
    sx, sy = xy(line(fig.axes[1], "gd_steps_to_min_norm"))
    np.testing.assert_allclose(sy, 1e4 / (sx - 0.99))
    assert "5 seeds" in fig.get_suptitle()


def gd_rows():
    rows = []
    for steps in (1000.0, 10.0, 100.0):
        for x in (1.0, 2.0, 4.0):
            r = {"name": "sphere_linear", "steps": repr(steps), "d_over_n": repr(x)}
            _metric(r, "gd_excess_risk", math.log10(steps) / x)
            rows.append(r)
    return rows


def test_gd_early_stopping_one_curve_per_step_count_plus_min_norm():
    fig = F.gd_early_stopping_figure(gd_rows(), min_norm_rows=rf_rows())
    (ax,) = fig.axes
    assert_labelled(fig)
    assert ax.get_xscale() == "log" and ax.get_yscale() == "log"
    colours = set()
    for steps in (10, 100, 1000):
        x, y = xy(line(ax, f"gd:{steps}"))
        np.testing.assert_allclose(x, [1, 2, 4])
        np.testing.assert_allclose(y, math.log10(steps) / x)
        colours.add(tuple(line(ax, f"gd:{steps}").get_color()))
    assert len(colours) == 3
    # Min-norm comparison: ridge 0 only, restricted to the GD d/n range.
    mx, my = xy(line(ax, "min_norm"))
    np.testing.assert_allclose(mx, [1, 2, 4])
    np.testing.assert_allclose(my, [_risk(v, 0) for v in mx])
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "t = 1,000 steps" in legend and "t = ∞ (min-norm)" in legend
    assert "5 seeds per point" in ax.get_title()
    assert not any(
        ln.get_gid() == "min_norm"
        for ln in F.gd_early_stopping_figure(gd_rows()).axes[0].get_lines()
    )


WIDTHS = [64, 128, 256, 512]


def kernel_rows():
    rows = []
    for depth in (1, 2):
        for act in ("relu", "erf"):
            for w in WIDTHS:
                r = {"depth": str(depth), "activation": act, "width": str(w)}
                _metric(r, "ntk_distance", depth * w**-0.5)
                _metric(r, "nngp_distance", 2 * depth * w**-0.5)
                _metric(r, "mc_nngp_distance", 0.3 if w <= 128 else None)
                rows.append(r)
    return rows


SUMMARY = {
    "slopes": {
        "ntk_depth2_relu": {"slope": -0.5, "ci_low": -0.523, "ci_high": -0.4751, "intercept": 0.0},
        "nngp_depth1_erf": {"slope": -0.4949, "ci_low": -0.51, "ci_high": -0.48, "intercept": 0.0},
    }
}


def test_format_slope_uses_unicode_minus_and_two_decimals():
    assert F.format_slope(SUMMARY["slopes"]["ntk_depth2_relu"]) == "−0.50 [−0.52, −0.48]"


def test_kernel_convergence_legend_slopes_reference_and_means():
    fig = F.kernel_convergence_figure(kernel_rows(), SUMMARY)
    assert len(fig.axes) == 2
    assert_labelled(fig)
    assert all(ax.get_xscale() == "log" and ax.get_yscale() == "log" for ax in fig.axes)
    ntk_ax, nngp_ax = fig.axes
    ntk_legend = [t.get_text() for t in ntk_ax.get_legend().get_texts()]
    assert "relu, depth 2: −0.50 [−0.52, −0.48]" in ntk_legend
    assert "erf, depth 1" in ntk_legend  # no fit in the summary: plain label
    nngp_legend = [t.get_text() for t in nngp_ax.get_legend().get_texts()]
    assert "erf, depth 1: −0.49 [−0.51, −0.48]" in nngp_legend
    x, y = xy(line(ntk_ax, "ntk:2:relu"))
    np.testing.assert_allclose(x, WIDTHS)
    np.testing.assert_allclose(y, 2 * x**-0.5)
    np.testing.assert_allclose(xy(line(nngp_ax, "nngp:1:erf"))[1], 2 * x**-0.5)
    rx, ry = xy(line(ntk_ax, "reference:-0.5"))
    slope = np.polyfit(np.log(rx), np.log(ry), 1)[0]
    assert slope == pytest.approx(-0.5)


def mc_rows():
    rows = []
    for depth in (1, 2):
        for w in (8, 16, 32, 64):
            floor = 0.1 * w**-0.5
            bias = 0.0 if depth == 1 else 2.0 / w
            distance = float(np.hypot(floor, bias))
            rows.append(
                {
                    "depth": depth,
                    "activation": "relu",
                    "width": w,
                    "mc_distance": distance,
                    "mc_floor": floor,
                    "mc_bias": bias,
                    "mc_networks": 1024,
                }
            )
    return rows


def test_mc_nngp_panels_show_distance_floor_and_resolved_bias():
    summary = {
        "mc_nngp": {"depth2_relu": {"bias_slope": {"slope": -1.0, "ci_low": -1.1, "ci_high": -0.9}}}
    }
    fig = F.mc_nngp_figure(mc_rows(), summary)
    assert len(fig.axes) == 2
    assert_labelled(fig)
    x, y = xy(line(fig.axes[1], "mc_bias:2:relu"))
    np.testing.assert_allclose(x, [8, 16, 32, 64])
    np.testing.assert_allclose(y, 2.0 / x)
    np.testing.assert_allclose(xy(line(fig.axes[0], "mc_floor:1:relu"))[1], 0.1 * x**-0.5)
    # Depth 1: no bias, so no bias markers and no reference line.
    assert len(xy(line(fig.axes[0], "mc_bias:1:relu"))[0]) == 0
    rx, ry = xy(line(fig.axes[1], "reference:-1:relu"))
    assert np.polyfit(np.log(rx), np.log(ry), 1)[0] == pytest.approx(-1.0)


def circle_tables():
    gammas = np.linspace(-np.pi, np.pi, 7)
    rows = [
        {
            "width": "inf",
            "gamma": float(g),
            "ntk_mean": float(np.cos(g)),
            "ntk_std": 0.0,
            "ntk_count": 1,
        }
        for g in gammas
    ]
    seeds = []
    for w in (500, 10000):
        rows += [
            {
                "width": w,
                "gamma": float(g),
                "ntk_mean": float(np.cos(g)),
                "ntk_std": 100 / w,
                "ntk_count": 3,
            }
            for g in gammas
        ]
        for seed in range(2):
            seeds += [
                {
                    "width": w,
                    "seed": seed,
                    "gamma": float(g),
                    "ntk": float(np.cos(g) + (seed - 0.5) * 100 / w),
                }
                for g in gammas
            ]
    return gammas, rows, seeds


def test_ntk_circle_mean_band_per_width_and_limit():
    gammas, rows, seeds = circle_tables()
    summary = {
        "circle": {"sd_ratio": 19.0, "ci_low": 12.0, "ci_high": 25.0, "sqrt_width_ratio": 4.47}
    }
    fig = F.ntk_circle_figure(rows, seeds, summary)
    (ax,) = fig.axes
    assert_labelled(fig)
    lx, ly = xy(line(ax, "limit"))
    np.testing.assert_allclose(lx, gammas)
    np.testing.assert_allclose(ly, np.cos(gammas))
    for w in (500, 10000):
        x, y = xy(line(ax, f"width:{w}"))
        np.testing.assert_allclose(x, gammas)
        np.testing.assert_allclose(y, np.cos(gammas))
        for seed in range(2):
            line(ax, f"seed:{w}:{seed}")
    lo, hi = band_y_range(ax, "tab:orange")  # width 500: sd over seeds = 100/500 = 0.2
    assert hi == pytest.approx(1.2) and lo == pytest.approx(-1.2)
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert any("width 10,000" in t and "3 seeds" in t for t in legend)
    assert "sd ratio 19.00 [12.00, 25.00] vs √(width ratio) = 4.47" in ax.get_title()


def test_sample_size_note_reports_ranges():
    rows = rf_rows(count=5) + rf_rows(name="digits", ridges=("0",), count=3)
    assert F.sample_size_note(rows, ["test_mse"]).startswith("3–5 seeds per point")
    assert F.sample_size_note(rows, ["nonexistent"]) == "seed count unknown"


def test_figure_bytes_carry_no_timestamp_and_repeat_exactly():
    def draw():
        fig = Figure(figsize=(2, 2))
        fig.subplots().plot([1, 2], [3, 4])
        return fig

    files = plotting.figure_bytes(draw())
    png, svg = files["png"], files["svg"]
    assert png.startswith(b"\x89PNG") and b"<svg" in svg
    assert plotting.figure_bytes(draw()) == files
    assert b"<dc:date>" not in svg and b"Matplotlib v" not in svg
