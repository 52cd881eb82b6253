"""From job records to a study's tables and headline numbers (pure functions, no files).

Every study gets:
- a tidy table, one row per job: its identifying values, status, metrics, seconds;
- curves, one row per (group, width): mean, standard deviation and count over seeds;
- a summary dict: the headline numbers, and the failed jobs (listed, never dropped).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import numpy as np

from widthlab.stats import loglog_slope


def _short(key: str) -> str:
    return key.rsplit(".", 1)[-1]


def _parse(value: str) -> Any:
    try:
        return int(value)
    except ValueError:
        try:
            return float(value)
        except ValueError:
            return value


def tidy_rows(records: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One flat row per job and condition: identity (short names), status, reason, metrics,
    seconds. A metric that is itself a mapping under a key `name=value` (e.g. `ridge=1e-05`,
    several conditions solved in one job) becomes a row of its own with a column `name`."""
    rows = []
    for rec in records:
        base = {_short(k): v for k, v in rec["job"].items()}
        base["status"] = rec["status"]
        base["reason"] = rec.get("reason", "")
        metrics = rec.get("metrics", {})
        scalars = {k: v for k, v in metrics.items() if not isinstance(v, Mapping)}
        conditions = {k: v for k, v in metrics.items() if isinstance(v, Mapping)}
        seconds = rec.get("timing", {}).get("seconds")
        if not conditions:
            rows.append({**base, **scalars, "seconds": seconds})
        for key, values in conditions.items():
            name, _, value = key.partition("=")
            rows.append({**base, name: _parse(value), **scalars, **values, "seconds": seconds})
    return rows


def failed_jobs(records: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    return [
        {"key": r["key"], "reason": r.get("reason", "")} for r in records if r["status"] != "ok"
    ]


def job_counts(study: str, records: list[Mapping[str, Any]]) -> dict[str, Any]:
    """The head of every summary: the study, how many jobs, how many failed and which."""
    return {
        "study": study,
        "n_jobs": len(records),
        "n_failed": sum(r["status"] != "ok" for r in records),
        "failed": failed_jobs(records),
    }


def mean_std_curves(
    rows: list[Mapping[str, Any]], group_by: tuple[str, ...], x: str, metrics: Iterable[str]
) -> list[dict[str, Any]]:
    """Mean, sample standard deviation and count over the rows sharing (group, x)."""
    cells: dict[tuple, list[Mapping[str, Any]]] = defaultdict(list)
    for row in rows:
        if row["status"] == "ok":
            cells[(*(row[g] for g in group_by), row[x])].append(row)
    out = []
    for key in sorted(cells):  # each position holds one type (names, numbers)
        cell = cells[key]
        entry = dict(zip((*group_by, x), key, strict=True))
        for metric in metrics:
            values = np.array([r[metric] for r in cell if r.get(metric) is not None], float)
            if values.size == 0:
                continue
            entry[f"{metric}_mean"] = float(values.mean())
            entry[f"{metric}_std"] = float(values.std(ddof=1)) if values.size > 1 else 0.0
            entry[f"{metric}_count"] = int(values.size)
        out.append(entry)
    return out


def _slope_summary(rows: list[Mapping[str, Any]], x: str, metric: str) -> dict[str, Any]:
    """Pooled OLS slope over every (seed, width) point, and the spread of per-seed slopes."""
    ok = [r for r in rows if r["status"] == "ok" and r.get(metric) is not None]
    fit = loglog_slope(np.array([r[x] for r in ok]), np.array([r[metric] for r in ok]))
    per_seed = []
    for seed in sorted({r["seed"] for r in ok}):
        mine = [r for r in ok if r["seed"] == seed]
        s = loglog_slope(np.array([r[x] for r in mine]), np.array([r[metric] for r in mine]))
        if math.isfinite(s.slope):
            per_seed.append(s.slope)
    return {
        **fit.as_dict(),
        "per_seed_slope_mean": float(np.mean(per_seed)) if per_seed else None,
        "per_seed_slope_std": float(np.std(per_seed, ddof=1)) if len(per_seed) > 1 else None,
        "widths": sorted({r[x] for r in ok}),
    }


NTK_KERNELS = {
    "ntk": "ntk_distance",
    "nngp": "nngp_distance",
    "mc_nngp": "mc_nngp_distance",
}


def summarize_ntk_convergence(records: list[Mapping[str, Any]]) -> dict[str, Any]:
    """Slopes of log distance vs log width per (kernel, depth, activation)."""
    rows = tidy_rows(records)
    slopes: dict[str, Any] = {}
    for depth, activation in sorted({(r["depth"], r["activation"]) for r in rows}):
        group = [r for r in rows if r["depth"] == depth and r["activation"] == activation]
        for kernel, metric in NTK_KERNELS.items():
            if any(r.get(metric) is not None for r in group):
                name = f"{kernel}_depth{depth}_{activation}"
                slopes[name] = _slope_summary(group, "width", metric)
    return {
        **job_counts("ntk_convergence", records),
        "slopes": slopes,
    }


def ntk_convergence_curves(records: list[Mapping[str, Any]]) -> list[dict[str, Any]]:
    metrics = [*NTK_KERNELS.values(), "ntk_diagonal_error", "nngp_diagonal_error"]
    curves = mean_std_curves(tidy_rows(records), ("depth", "activation"), "width", metrics)
    # One label per curve, so DVC's plot template can draw one line per group.
    return [{"group": f"{c['activation']} depth {c['depth']}", **c} for c in curves]


RF_METRICS = (
    "excess_risk", "test_mse", "train_mse", "test_error", "train_error", "beta_norm",
    "gram_condition", "theory_excess_risk", "kernel_limit_excess_risk", "kernel_limit_test_mse",
    "kernel_limit_test_error", "kkt_feasibility", "kkt_stationarity", "gd_limit_distance",
    "gd_explicit_vs_closed_form", "gd_steps_to_min_norm",
)  # fmt: skip


def double_descent_rf_curves(records: list[Mapping[str, Any]]) -> list[dict[str, Any]]:
    rows = [r for r in tidy_rows(records) if "ridge" in r]  # failed jobs have no conditions
    for row in rows:  # d/n as the x axis: the actual width over n, after rounding
        row["d_over_n"] = row["width"] / row["n_train"]
    curves = mean_std_curves(rows, ("name", "ridge"), "d_over_n", RF_METRICS)
    return [{"group": f"{c['name']} λ={c['ridge']:g}", **c} for c in curves]


def _max_over_ok(rows: list[Mapping[str, Any]], metric: str) -> float | None:
    values = [r[metric] for r in rows if r["status"] == "ok" and r.get(metric) is not None]
    return float(max(values)) if values else None


def summarize_double_descent_rf(
    records: list[Mapping[str, Any]], threshold_band: tuple[float, float] = (0.8, 1.25)
) -> dict[str, Any]:
    """Per (data set, ridge): where the seed-averaged test error peaks and how high, the
    infinite-width kernel's error, agreement with the theory outside `threshold_band` (in
    d/n), and the worst KKT / gradient-descent residuals over interpolating jobs."""
    rows = tidy_rows(records)
    curves = double_descent_rf_curves(records)
    out: dict[str, Any] = {}
    for name, ridge in sorted({(c["name"], c["ridge"]) for c in curves}):
        mine = [c for c in curves if c["name"] == name and c["ridge"] == ridge]
        metric = "excess_risk" if "excess_risk_mean" in mine[0] else "test_mse"
        peak = max(mine, key=lambda c: c[f"{metric}_mean"])
        last = max(mine, key=lambda c: c["d_over_n"])
        entry: dict[str, Any] = {
            "metric": metric,
            "peak_d_over_n": peak["d_over_n"],
            "peak_height": peak[f"{metric}_mean"],
            "largest_width_d_over_n": last["d_over_n"],
            "largest_width_error": last[f"{metric}_mean"],
            "kernel_limit_error": last.get(f"kernel_limit_{metric}_mean"),
            "seeds": peak[f"{metric}_count"],
        }
        if "test_error_mean" in peak:
            entry["peak_test_error"] = peak["test_error_mean"]
            entry["largest_width_test_error"] = last["test_error_mean"]
            entry["kernel_limit_test_error"] = last.get("kernel_limit_test_error_mean")
        theory = [c for c in mine if "theory_excess_risk_mean" in c
                  and not threshold_band[0] <= c["d_over_n"] <= threshold_band[1]]  # fmt: skip
        if theory:
            dev = [abs(c["excess_risk_mean"] / c["theory_excess_risk_mean"] - 1) for c in theory]
            worst = theory[int(np.argmax(dev))]
            entry["theory_max_relative_deviation"] = float(max(dev))
            entry["theory_worst_d_over_n"] = worst["d_over_n"]
        group = [r for r in rows if r["name"] == name and r.get("ridge") == ridge]
        for check in ("kkt_feasibility", "kkt_stationarity", "gd_limit_distance",
                      "gd_explicit_vs_closed_form"):  # fmt: skip
            worst_value = _max_over_ok(group, check)
            if worst_value is not None:
                entry[f"max_{check}"] = worst_value
        out[f"{name}_ridge{ridge:g}"] = entry
    return {**job_counts("double_descent_rf", records), "curves": out}


def gd_early_stopping_curves(records: list[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Excess risk of gradient descent stopped after t steps, mean ± sd over seeds, per d/n."""
    rows = []
    for row in tidy_rows(records):
        if row["status"] != "ok" or "gd_times" not in row:
            continue
        for t, risk in zip(row["gd_times"], row["gd_excess_risk"], strict=True):
            rows.append({"status": "ok", "name": row["name"], "steps": t,
                         "d_over_n": row["width"] / row["n_train"], "seed": row["seed"],
                         "gd_excess_risk": risk})  # fmt: skip
    curves = mean_std_curves(rows, ("name", "steps"), "d_over_n", ["gd_excess_risk"])
    return [{"group": f"{c['name']} t={c['steps']:g}", **c} for c in curves]


def summarize_ntk_circle(rows: list[Mapping[str, Any]]) -> dict[str, Any]:
    """Spread over seeds of Θ̂(x₀, x(γ)) on the circle, relative to the limit, per width.

    relative_sd = mean over γ of the sample sd over seeds, divided by the mean over γ of
    |Θ(γ)|; its ratio between the smallest and the largest width is compared with
    √(width ratio), the O(width^−1/2) prediction. `rows` as in circle.csv (strings allowed).
    """
    limit = [abs(float(r["ntk"])) for r in rows if str(r["width"]) == "inf"]
    by_width: dict[int, dict[float, list[float]]] = defaultdict(lambda: defaultdict(list))
    for r in rows:
        if str(r["width"]) != "inf":
            by_width[int(r["width"])][float(r["gamma"])].append(float(r["ntk"]))
    scale = float(np.mean(limit)) if limit else float("nan")
    widths: dict[str, Any] = {}
    for width in sorted(by_width):
        curves = by_width[width]
        sds = [np.std(v, ddof=1) for v in curves.values() if len(v) > 1]
        seeds = min(len(v) for v in curves.values())
        widths[str(width)] = {
            "relative_sd": float(np.mean(sds) / scale) if sds else None,
            "seeds": seeds,
        }
    out: dict[str, Any] = {"widths": widths}
    finite = sorted(by_width)
    lo, hi = widths.get(str(finite[0]), {}), widths.get(str(finite[-1]), {}) if finite else {}
    if len(finite) > 1 and lo.get("relative_sd") and hi.get("relative_sd"):
        out["sd_ratio"] = lo["relative_sd"] / hi["relative_sd"]
        out["sqrt_width_ratio"] = float(np.sqrt(finite[-1] / finite[0]))
    return out


MLP_DD_METRICS = (
    "test_error", "test_loss", "train_error", "train_loss", "noisy_fit", "n_parameters",
    "params_over_threshold", "steps", "reached_stop_loss",
)  # fmt: skip


def double_descent_mlp_curves(records: list[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Per width: mean ± sd over seeds, with P/(n·C) as the x axis."""
    curves = mean_std_curves(tidy_rows(records), (), "width", MLP_DD_METRICS)
    for c in curves:
        c["params_over_threshold"] = c.get("params_over_threshold_mean")
        c["group"] = "mlp"
    return [c for c in curves if c["params_over_threshold"] is not None]


# Where the double-descent peak is looked for, in P/(n·C): a decade around the threshold.
MLP_PEAK_BAND = (1 / 3, 3.0)


def _clearly_above(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool | None:
    """Mean test error of `a` above `b` by more than twice the standard error of their
    difference (None with fewer than two seeds: no error bar)."""
    if min(a["test_error_count"], b["test_error_count"]) < 2:
        return None
    se = math.hypot(a["test_error_std"] / math.sqrt(a["test_error_count"]),
                    b["test_error_std"] / math.sqrt(b["test_error_count"]))  # fmt: skip
    return bool(a["test_error_mean"] - b["test_error_mean"] > 2 * se)


def summarize_double_descent_mlp(records: list[Mapping[str, Any]]) -> dict[str, Any]:
    """The seed-averaged test error's peak within `MLP_PEAK_BAND` of the threshold (in
    P/(n·C)), the best smaller network, and the largest one; `shows_peak` when the peak is
    above both by more than two standard errors of the difference."""
    curves = double_descent_mlp_curves(records)
    out: dict[str, Any] = job_counts("double_descent_mlp", records)
    band = [c for c in curves if MLP_PEAK_BAND[0] <= c["params_over_threshold"]
            <= MLP_PEAK_BAND[1]]  # fmt: skip
    if not band:
        return out
    peak = max(band, key=lambda c: c["test_error_mean"])
    before = [c for c in curves if c["width"] < peak["width"]]
    left = min(before, key=lambda c: c["test_error_mean"]) if before else peak
    last = max(curves, key=lambda c: c["width"])
    ok = [r for r in records if r["status"] == "ok"]
    above = [_clearly_above(peak, left), _clearly_above(peak, last)]
    out.update({
        "threshold": ok[0]["metrics"]["threshold"],
        "max_steps": ok[0]["config"]["train"]["max_steps"],
        "stop_loss": ok[0]["config"]["train"]["stop_loss"],
        "peak_band_params_over_threshold": list(MLP_PEAK_BAND),
        "peak_width": peak["width"],
        "peak_params_over_threshold": peak["params_over_threshold"],
        "peak_test_error": peak["test_error_mean"],
        "peak_test_error_std": peak["test_error_std"],
        "best_below_peak_width": left["width"],
        "best_below_peak_params_over_threshold": left["params_over_threshold"],
        "best_below_peak_test_error": left["test_error_mean"],
        "largest_width": last["width"],
        "largest_params_over_threshold": last["params_over_threshold"],
        "largest_width_test_error": last["test_error_mean"],
        "peak_train_error": peak["train_error_mean"],
        "largest_width_train_error": last["train_error_mean"],
        "seeds": peak["test_error_count"],
        "shows_peak": None if None in above else all(above),
    })  # fmt: skip
    return out


LAZY_METRICS = ("param_change", "ntk_change", "linearization_gap", "limit_gap",
                "linearization_gap_train")  # fmt: skip


def _layer_metrics(rows: Iterable[Mapping[str, Any]]) -> list[str]:
    names = {k for r in rows for k in r if k.startswith("weight_change_layer_")}
    return sorted(names, key=lambda k: int(k.rsplit("_", 1)[-1]))


def lazy_training_curves(records: list[Mapping[str, Any]]) -> list[dict[str, Any]]:
    rows = tidy_rows(records)
    metrics = [*LAZY_METRICS, *_layer_metrics(rows), "train_loss", "test_loss", "lr_stability",
               "steps"]  # fmt: skip
    curves = mean_std_curves(rows, ("depth",), "width", metrics)
    return [{"group": f"depth {c['depth']}", **c} for c in curves]


# Lee et al. (2019), Fig. 1: how each quantity scales with width (exponent of width).
LEE_2019_SLOPES = {"first_layer": -0.5, "last_layer": -0.5, "hidden_layers": -1.0,
                   "ntk_change": -1.0}  # fmt: skip


def summarize_lazy_training(records: list[Mapping[str, Any]]) -> dict[str, Any]:
    """Log-log slopes against width, per depth: every layer's relative weight change, all
    parameters, the NTK change and both function-space gaps (95% intervals)."""
    rows = tidy_rows(records)
    slopes: dict[str, Any] = {}
    for depth in sorted({r["depth"] for r in rows}):
        group = [r for r in rows if r["depth"] == depth]
        layers = _layer_metrics(group)
        entry = {m: _slope_summary(group, "width", m) for m in (*LAZY_METRICS, *layers)}
        for i, m in enumerate(layers):
            last = i == len(layers) - 1
            entry[m]["role"] = (
                "first_layer" if i == 0 else "last_layer" if last else "hidden_layers"
            )
            entry[m]["lee_2019_slope"] = LEE_2019_SLOPES[entry[m]["role"]]
        entry["ntk_change"]["lee_2019_slope"] = LEE_2019_SLOPES["ntk_change"]
        slopes[f"depth{depth}"] = entry
    return {
        **job_counts("lazy_training", records),
        "slopes": slopes,
    }


# Further inputs a study's summary reads besides its records: file → (summary key, function).
EXTRA_SUMMARIES: dict[str, dict[str, tuple[str, Callable]]] = {
    "ntk_convergence": {"circle.csv": ("circle", summarize_ntk_circle)},
}

# study → (summary function, {CSV file name: table function}), all of records.
SUMMARIZERS: dict[str, tuple[Callable, dict[str, Callable]]] = {
    "ntk_convergence": (summarize_ntk_convergence, {"curves.csv": ntk_convergence_curves}),
    "double_descent_rf": (
        summarize_double_descent_rf,
        {"curves.csv": double_descent_rf_curves, "gd_curves.csv": gd_early_stopping_curves},
    ),
    "double_descent_mlp": (summarize_double_descent_mlp, {"curves.csv": double_descent_mlp_curves}),
    "lazy_training": (summarize_lazy_training, {"curves.csv": lazy_training_curves}),
}
