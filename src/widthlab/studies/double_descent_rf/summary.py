"""`double_descent_rf`'s results: curves over d/n, peaks judged by their standard errors,
z-scores against the Mei–Montanari theory, the KKT and gradient-descent residuals.

Rules (thresholds from the study config, recorded in the summary under `settings`):
* a curve is the mean over seeds per d/n, with its standard error SE = sd/√seeds;
* its peak is reported only when interior to the sweep and above the lowest point on each
  side by more than `peak_k` standard errors of the difference (`stats.find_peak`); a
  maximum at an end of the grid is "no interior peak";
* against the theory, every point outside `theory_excluded_band` (in d/n; the theory is
  asymptotic and diverges at d = n) gets t = (mean − theory)/SE with seeds − 1 degrees of
  freedom and its two-sided p-value. A seed's features are nested across d/n (one draw), so
  the points of a curve are not independent: they are one family, judged by Holm's
  procedure, which holds under any dependence; the curve agrees with the theory when no
  point differs. The RMS of z summarizes the agreement (≈ 1 for a theory right up to
  sampling noise, but not a test: the points share draws); the largest relative deviation
  is kept as a secondary number;
* checks (the computation's own consistency, not verdicts): the KKT and gradient-descent
  residuals pass when the largest over every interpolating ridgeless job is
  ≤ `kkt_tolerance`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from widthlab.runtime.study import Results
from widthlab.runtime.tables import mean_std_curves, tidy_rows
from widthlab.stats import Z_FLAG, count_verdicts, find_peak, judge_family, mean_test, z_score

METRICS = (
    "excess_risk",
    "test_mse",
    "train_mse",
    "test_error",
    "train_error",
    "beta_norm",
    "gram_condition",
    "theory_excess_risk",
    "kernel_limit_excess_risk",
    "kernel_limit_test_mse",
    "kernel_limit_test_error",
    "kkt_feasibility",
    "kkt_stationarity",
    "gd_limit_distance",
    "gd_explicit_vs_closed_form",
    "gd_steps_to_min_norm",
)
RESIDUALS = (
    "kkt_feasibility",
    "kkt_stationarity",
    "gd_limit_distance",
    "gd_explicit_vs_closed_form",
)


def condition_rows(records: list[dict]) -> list[dict]:
    """One row per job, width and ridge, with d/n as the x axis."""
    rows = [r for r in tidy_rows(records) if "ridge" in r]  # failed jobs have no conditions
    for row in rows:  # d/n as the x axis: the actual width over n, after rounding
        row["d_over_n"] = row["width"] / row["n_train"]
    return rows


def curves(records: list[dict]) -> list[dict]:
    """Mean, sd and SE over seeds per data set, ridge and d/n."""
    out = mean_std_curves(condition_rows(records), ("name", "ridge"), "d_over_n", METRICS)
    return [{"group": f"{c['name']} λ={c['ridge']:g}", **c} for c in out]


def gd_curves(records: list[dict]) -> list[dict]:
    """Excess risk of GD stopped after t steps, mean ± sd ± SE over seeds, per d/n."""
    rows = []
    for row in condition_rows(records):
        if row["status"] != "ok" or "gd_times" not in row:
            continue
        for t, risk in zip(row["gd_times"], row["gd_excess_risk"], strict=True):
            rows.append(
                {
                    "status": "ok",
                    "name": row["name"],
                    "steps": t,
                    "seed": row["seed"],
                    "d_over_n": row["d_over_n"],
                    "gd_excess_risk": risk,
                }
            )
    out = mean_std_curves(rows, ("name", "steps"), "d_over_n", ["gd_excess_risk"])
    return [{"group": f"{c['name']} t={c['steps']:g}", **c} for c in out]


def _at(c: Mapping[str, Any], metric: str) -> dict[str, Any]:
    return {
        "mean": c.get(f"{metric}_mean"),
        "se": c.get(f"{metric}_se"),
        "seeds": c.get(f"{metric}_count"),
    }


def theory_comparison(
    mine: list[dict], band: tuple[float, float], name: str
) -> dict[str, Any] | None:
    """Each point away from the threshold against the theory: z-score, relative gap and test; None
    without theory."""
    points = [
        c
        for c in mine
        if "theory_excess_risk_mean" in c and not band[0] <= c["d_over_n"] <= band[1]
    ]
    if not points:
        return None
    zs, table = [], []
    for c in points:
        z = z_score(c["excess_risk_mean"], c.get("excess_risk_se"), c["theory_excess_risk_mean"])
        rel = c["excess_risk_mean"] / c["theory_excess_risk_mean"] - 1
        test = mean_test(
            c["excess_risk_mean"],
            c.get("excess_risk_se"),
            c.get("excess_risk_count", 0),
            c["theory_excess_risk_mean"],
        )
        table.append(
            {
                "d_over_n": c["d_over_n"],
                "mean": c["excess_risk_mean"],
                "se": c.get("excess_risk_se"),
                "theory": c["theory_excess_risk_mean"],
                "z": z,
                "p": test["p"],
                "relative_deviation": rel,
            }
        )
        if z is not None:
            zs.append(z)
    worst = max(table, key=lambda p: abs(p["relative_deviation"]))
    beyond = sum(abs(z) > Z_FLAG for z in zs)
    family = judge_family(table, f"theory, {name}")
    decided = [t["verdict"] for t in table if t.get("verdict")]
    return {
        "family": family,
        "points_differ": family["differ"],
        "points": len(table),
        "beyond_3se": beyond,
        "rms_z": float(math.sqrt(np.mean(np.square(zs)))) if zs else None,
        "max_abs_z": float(max(abs(z) for z in zs)) if zs else None,
        "max_relative_deviation": abs(worst["relative_deviation"]),
        "max_relative_deviation_at": worst["d_over_n"],
        "verdict": None if not decided else ("differs" if family["differ"] else "agrees"),
        "by_point": table,
    }


def curve_summary(mine: list[dict], settings: Mapping[str, Any], name: str) -> dict[str, Any]:
    """One curve's peak, its value at the widest width and its comparison with the theory."""
    metric = "excess_risk" if "excess_risk_mean" in mine[0] else "test_mse"
    peak = find_peak(
        [c[f"{metric}_mean"] for c in mine],
        [c.get(f"{metric}_se") for c in mine],
        float(settings["peak_k"]),
    )
    top, last = mine[peak.index], mine[-1]
    entry: dict[str, Any] = {
        "metric": metric,
        "interior_peak": peak.interior,
        "shows_peak": peak.shown,
        "peak_d_over_n": top["d_over_n"] if peak.interior else None,
        "peak": _at(top, metric) if peak.interior else None,
        "maximum_at_edge_d_over_n": None if peak.interior else top["d_over_n"],
        "largest_d_over_n": last["d_over_n"],
        "largest_width": _at(last, metric),
        "kernel_limit": _at(last, f"kernel_limit_{metric}"),
    }
    if "test_error_mean" in top:
        entry["classification"] = {
            "peak": _at(top, "test_error") if peak.interior else None,
            "largest_width": _at(last, "test_error"),
            "kernel_limit": _at(last, "kernel_limit_test_error"),
        }
    theory = theory_comparison(mine, tuple(settings["theory_excluded_band"]), name)
    if theory:
        entry["theory"] = theory
    return entry


def _log10(x: float | None) -> float | None:
    return None if x is None or x <= 0 else float(math.ceil(math.log10(x)))


def summarize(records: Mapping[str, list[dict]], settings: Mapping[str, Any]) -> Results:
    """The study's summary and tables from its records."""
    jobs = records.get("rf", [])
    rows = condition_rows(jobs)
    table = curves(jobs)
    out: dict[str, Any] = {}
    checks: list[dict[str, Any]] = []
    for name, ridge in sorted({(c["name"], c["ridge"]) for c in table}):
        mine = sorted(
            (c for c in table if c["name"] == name and c["ridge"] == ridge),
            key=lambda c: c["d_over_n"],
        )
        entry = curve_summary(mine, settings, f"{name} λ = {ridge:g}")
        group = [
            r for r in rows if r["name"] == name and r["ridge"] == ridge and r["status"] == "ok"
        ]
        residuals = {
            f"max_{k}": max(r[k] for r in group if r.get(k) is not None)
            for k in RESIDUALS
            if any(r.get(k) is not None for r in group)
        }
        if residuals:
            tol = float(settings["kkt_tolerance"])
            entry["min_norm_checks"] = {
                **residuals,
                "tolerance": tol,
                "passed": max(residuals.values()) <= tol,
            }
            checks.append(
                {
                    "check": f"KKT and gradient-descent residuals, {name} λ = {ridge:g}",
                    "detail": f"largest {max(residuals.values()):.0e} ≤ {tol:g}",
                    "passed": bool(max(residuals.values()) <= tol),
                }
            )
        out[f"{name}_ridge{ridge:g}"] = entry
    theories = [e["theory"] for e in out.values() if e.get("theory")]
    summary = {
        "curves": out,
        "families": [t["family"] for t in theories],
        "checks": checks,
    }
    main = out.get("sphere_linear_ridge0") or next(iter(out.values()), {})
    theory = [e["theory"] for e in out.values() if e.get("theory")]
    metrics = {
        **count_verdicts(theories),
        "checks_failed": sum(not c["passed"] for c in checks),
        "theory_points_beyond_3se": sum(t["beyond_3se"] for t in theory) if theory else None,
        "theory_rms_z": (
            float(math.sqrt(np.mean([t["rms_z"] ** 2 for t in theory if t["rms_z"]])))
            if theory
            else None
        ),
        "peak_d_over_n": main.get("peak_d_over_n"),
        # A power of ten: DVC's tables print 5 decimals, which would show 1e-9 as 0.0.
        "log10_max_kkt_residual": _log10(
            max(
                (
                    v
                    for e in out.values()
                    for k, v in (e.get("min_norm_checks") or {}).items()
                    if k.startswith("max_")
                ),
                default=None,
            )
        ),
    }
    tables = {"curves.csv": table}
    early = gd_curves(jobs)
    if early:
        tables["gd_curves.csv"] = early
    return Results(summary=summary, tables=tables, metrics=metrics)
