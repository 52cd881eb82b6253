"""`finite_vs_infinite`'s results: per depth, the kernels' scores, the trained networks'
curves against width, and how fast they close in on their infinite-width predictor.

Rules (settings from the study config, recorded in the summary):

* The asymptote of a depth is f_∞,T, the NTK predictor of gradient descent with the networks'
  step size and step count (`ntk_gd` of the kernels job; the networks' records carry the
  same numbers as `limit_*`). The ridge-tuned NNGP and NTK regressions are shown beside it.
* Gap slopes: log(gap) = a + slope·log(width), pooled over seeds (`widthlab.runtime.tables.
  slope_summary`, 95% interval). The function-space gap ‖f_T − f_∞,T‖/‖f_∞,T‖ is bounded by
  O(width^−1/2) (Lee et al. 2019, Theorem 2.1): it "agrees" unless the whole interval lies
  above `gap_bound`. The test-loss gap |L(f_T) − L(f_∞,T)| "agrees" with the network
  approaching its predictor when the whole interval lies below 0.
* The first width within one SE of a metric: the smallest width from which on every width's
  mean over seeds is within one standard error of the asymptote (None: not even the largest).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from widthlab.runtime.study import Results
from widthlab.runtime.tables import mean_std_curves, slope_summary, tidy_rows

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


def loss_gap_verdict(fit: Mapping[str, Any]) -> str | None:
    high = fit.get("ci_high")
    if high is None or high != high:  # no interval (NaN)
        return None
    return "agrees" if high < 0 else "differs"


def bound_verdict(fit: Mapping[str, Any], bound: float) -> str | None:
    low = fit.get("ci_low")
    if low is None or low != low:
        return None
    return "agrees" if low <= bound else "differs"


def kernel_table(records: list[dict]) -> list[dict[str, Any]]:
    rows = [r for r in tidy_rows(records) if r["status"] == "ok"]
    keep = ("depth", "kernel", "ridge", "val_accuracy", "val_loss", "test_accuracy", "test_loss")
    return sorted(
        ({k: r.get(k) for k in keep} for r in rows), key=lambda r: (r["depth"], r["kernel"])
    )


def summarize(records: Mapping[str, list[dict]], settings: Mapping[str, Any]) -> Results:
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
            function_fit = slope_summary(group, "width", "function_gap")
            function_fit.update(bound=bound, verdict=bound_verdict(function_fit, bound))
            loss_fit = slope_summary(group, "width", "abs_loss_gap")
            loss_fit["verdict"] = loss_gap_verdict(loss_fit)
            entry["slopes"] = {"function_gap": function_fit, "abs_loss_gap": loss_fit}
            entry["first_width_within_se"] = {
                m: first_width_within_se(curve, m, limit[m]) if limit.get(m) is not None else None
                for m in ("test_accuracy", "test_loss")
            }
        depths[f"depth{depth}"] = entry
    verdicts = [
        f["verdict"]
        for e in depths.values()
        for f in e.get("slopes", {}).values()
        if f.get("verdict")
    ]
    deepest = depths[max(depths, key=lambda k: int(k.removeprefix("depth")))] if depths else {}
    ok = [r for r in networks if r["status"] == "ok"]
    summary = {
        "depths": depths,
        "steps": ok[0]["metrics"]["steps"] if ok else None,
        "n_train": ok[0]["metrics"]["n_train"] if ok else None,
        "data": ok[0]["config"]["data"]["name"] if ok else None,
    }
    metrics = {
        "comparisons": len(verdicts),
        "agree": sum(v == "agrees" for v in verdicts),
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
