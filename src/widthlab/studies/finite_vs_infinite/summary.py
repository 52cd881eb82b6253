"""`finite_vs_infinite`'s results: per depth, the kernels' scores, the trained networks'
curves against width, and how fast they close in on their infinite-width predictor.

Rules (settings from the study config, recorded in the summary):

* The asymptote of a depth is f_∞,T, the NTK predictor of gradient descent with the networks'
  step size and step count (`ntk_gd` of the kernels job; the networks' records carry the
  same numbers as `limit_*`). The ridge-tuned NNGP and NTK regressions are shown beside it.
* Gap slopes: log(gap) = a + slope·log(width), pooled over seeds, with a 95% interval over
  seeds (`widthlab.runtime.tables.slope_summary`; a seed's networks share its data). The
  function-space gap ‖f_T − f_∞,T‖/‖f_∞,T‖ is bounded by O(width^−1/2) (Lee et al. 2019,
  Theorem 2.1): only a slope clearly above `gap_bound` contradicts it (`stats.slope_test`,
  "at_most"); the test-loss gap |L(f_T) − L(f_∞,T)| inherits the bound (the loss is
  Lipschitz in f on the bounded outputs), tested the same way. The depths are one family per
  gap ("function-gap bound", "loss-gap bound"), each judged by Holm's procedure, and a slope
  that still differs is explained (`stats.explain_slope`).
* The first width within one SE of a metric: the smallest width from which on every width's
  mean over seeds is within one standard error of the asymptote (None: not even the largest).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from widthlab.runtime.study import Results
from widthlab.runtime.tables import mean_std_curves, per_seed_matrix, slope_summary, tidy_rows
from widthlab.stats import count_verdicts, explain_slope, judge_family

METRICS = (
    "test_accuracy",
    "test_loss",
    "train_loss",
    "limit_test_accuracy",
    "limit_test_loss",
    "limit_train_loss",
    "accuracy_gap",
    "loss_gap",
    "abs_loss_gap",
    "function_gap",
    "agreement",
)


def first_width_within_se(curve: list[Mapping[str, Any]], metric: str, target: float):
    """The smallest width from which on |mean − target| ≤ SE at every width (module
    docstring), or None."""
    found = None
    for c in sorted(curve, key=lambda c: c["width"], reverse=True):
        se = c.get(f"{metric}_se")
        if se is None or abs(c[f"{metric}_mean"] - target) > se:
            break
        found = c["width"]
    return found


def kernel_table(records: list[dict]) -> list[dict[str, Any]]:
    """The kernel jobs' accuracies and losses, one row per depth and kernel."""
    rows = [r for r in tidy_rows(records) if r["status"] == "ok"]
    keep = ("depth", "kernel", "ridge", "val_accuracy", "val_loss", "test_accuracy", "test_loss")
    return sorted(
        ({k: r.get(k) for k in keep} for r in rows), key=lambda r: (r["depth"], r["kernel"])
    )


def summarize(records: Mapping[str, list[dict]], settings: Mapping[str, Any]) -> Results:
    """The study's summary and tables from its records."""
    networks, kernel_jobs = records.get("train", []), records.get("kernels", [])
    rows = tidy_rows(networks)
    for r in rows:
        if r.get("loss_gap") is not None:
            r["abs_loss_gap"] = abs(r["loss_gap"])
    curves = mean_std_curves(rows, ("depth",), "width", METRICS)
    curves = [{"group": f"depth {c['depth']}", **c} for c in curves]
    kernels = kernel_table(kernel_jobs)
    bound = float(settings["gap_bound"])
    depths: dict[str, Any] = {}
    groups: dict[int, list[dict]] = {}
    for depth in sorted({c["depth"] for c in curves} | {k["depth"] for k in kernels}):
        entry: dict[str, Any] = {
            "kernels": {k["kernel"]: k for k in kernels if k["depth"] == depth}
        }
        curve = [c for c in curves if c["depth"] == depth]
        group = [r for r in rows if r.get("depth") == depth]
        limit = entry["kernels"].get("ntk_gd") or {}
        if curve and not limit:
            limit = {
                "test_accuracy": curve[0].get("limit_test_accuracy_mean"),
                "test_loss": curve[0].get("limit_test_loss_mean"),
            }
        entry["asymptote"] = {
            "test_accuracy": limit.get("test_accuracy"),
            "test_loss": limit.get("test_loss"),
        }
        if curve:
            widest = curve[-1]
            entry["largest_width"] = {
                "width": widest["width"],
                "seeds": widest.get("test_accuracy_count"),
                **{
                    f"{m}{suffix}": widest.get(f"{m}{suffix}")
                    for m in ("test_accuracy", "test_loss", "function_gap", "agreement")
                    for suffix in ("_mean", "_se")
                },
            }
            function_fit = slope_summary(group, "width", "function_gap", bound, "at_most")
            function_fit["bound"] = bound
            loss_fit = slope_summary(group, "width", "abs_loss_gap", bound, "at_most")
            loss_fit["bound"] = bound
            entry["slopes"] = {"function_gap": function_fit, "abs_loss_gap": loss_fit}
            groups[depth] = group
            entry["first_width_within_se"] = {
                m: first_width_within_se(curve, m, limit[m]) if limit.get(m) is not None else None
                for m in ("test_accuracy", "test_loss")
            }
        depths[f"depth{depth}"] = entry
    fits = {d: e["slopes"] for d, e in depths.items() if e.get("slopes")}
    families = [
        judge_family([f["function_gap"] for f in fits.values()], "function-gap bound"),
        judge_family([f["abs_loss_gap"] for f in fits.values()], "loss-gap bound"),
    ]
    explanations = []
    for key, pair in fits.items():
        for metric, fit in pair.items():
            if fit.get("verdict") != "differs":
                continue
            depth = int(key.removeprefix("depth"))
            widths, values = per_seed_matrix(groups[depth], "width", metric)
            why = explain_slope(widths, values, bound, "at_most")
            fit["explained"] = why
            name = "function-gap" if metric == "function_gap" else "test-loss-gap"
            widest = max(c["width"] for c in curves if c["depth"] == depth)
            size = next(
                c.get(f"{metric}_mean")
                for c in curves
                if c["depth"] == depth and c["width"] == widest
            )
            explanations.append(
                {
                    "test": f"{name} slope, depth {depth}",
                    "verdict": why["verdict"],
                    "reason": f"{why['reason']}; the gap is still {size:.2g} at width {widest}",
                }
            )
    deepest = depths[max(depths, key=lambda k: int(k.removeprefix("depth")))] if depths else {}
    ok = [r for r in networks if r["status"] == "ok"]
    summary = {
        "depths": depths,
        "steps": ok[0]["metrics"]["steps"] if ok else None,
        "n_train": ok[0]["metrics"]["n_train"] if ok else None,
        "data": ok[0]["config"]["data"]["name"] if ok else None,
        "families": families,
        "explanations": explanations,
    }
    metrics = {
        **count_verdicts([f for pair in fits.values() for f in pair.values()]),
        "fvi_function_gap_slope_deepest": (deepest.get("slopes") or {})
        .get("function_gap", {})
        .get("slope"),
        "fvi_first_width_within_se_deepest": (deepest.get("first_width_within_se") or {}).get(
            "test_loss"
        ),
    }
    return Results(
        summary=summary,
        tables={"curves.csv": curves, "kernels.csv": kernels},
        metrics=metrics,
    )
