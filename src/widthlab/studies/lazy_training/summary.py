"""`lazy_training`'s results: log-log slopes against width, per depth, with verdicts.

Rules (references from the study config, recorded in the summary): every quantity is fitted
as log(quantity) = a + slope · log(width), pooled over seeds, with a 95% interval.
* Against an exponent Lee et al. (2019, Fig. 1) measure (`references`: per layer role and
  the NTK change): "agrees" when the interval contains it.
* Against the bound of their Theorem 2.1 (`bounds`: O(width^−1/2) for the parameters and
  both function-space gaps): "agrees" unless the whole interval lies above the bound (a
  slower decay than the theorem allows).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from widthlab.runtime.study import Results
from widthlab.runtime.tables import mean_std_curves, slope_summary, tidy_rows

METRICS = (
    "param_change",
    "ntk_change",
    "linearization_gap",
    "limit_gap",
    "linearization_gap_train",
)


def layer_metrics(rows: Iterable[Mapping[str, Any]]) -> list[str]:
    names = {k for r in rows for k in r if k.startswith("weight_change_layer_")}
    return sorted(names, key=lambda k: int(k.rsplit("_", 1)[-1]))


def role(index: int, count: int) -> str:
    return "first_layer" if index == 0 else "last_layer" if index == count - 1 else "hidden_layers"


def bound_verdict(fit: Mapping[str, Any], bound: float) -> str | None:
    low = fit.get("ci_low")
    if low is None:
        return None
    return "agrees" if low <= bound else "differs"


def summarize(records: Mapping[str, list[dict]], settings: Mapping[str, Any]) -> Results:
    jobs = records.get("train", [])
    rows = tidy_rows(jobs)
    references, bounds = dict(settings["references"]), dict(settings["bounds"])
    slopes: dict[str, Any] = {}
    for depth in sorted({r["depth"] for r in rows}):
        group = [r for r in rows if r["depth"] == depth]
        layers = layer_metrics(group)
        entry = {}
        for i, metric in enumerate(layers):
            kind = role(i, len(layers))
            entry[metric] = {
                **slope_summary(group, "width", metric, references.get(kind)),
                "role": kind,
            }
        for metric in METRICS:
            fit = slope_summary(group, "width", metric, references.get(metric))
            if metric in bounds and "verdict" not in fit:
                fit.update(bound=bounds[metric], verdict=bound_verdict(fit, bounds[metric]))
            entry[metric] = fit
        slopes[f"depth{depth}"] = entry
    metrics_ = [*METRICS, *layer_metrics(rows), "train_loss", "test_loss", "lr_stability", "steps"]
    table = mean_std_curves(rows, ("depth",), "width", metrics_)
    table = [{"group": f"depth {c['depth']}", **c} for c in table]
    verdicts = [f.get("verdict") for e in slopes.values() for f in e.values() if f.get("verdict")]
    ntk = [e["ntk_change"] for e in slopes.values() if "ntk_change" in e]
    gaps = [e["linearization_gap"]["slope"] for e in slopes.values() if "linearization_gap" in e]
    metrics = {
        "comparisons": len(verdicts),
        "agree": sum(v == "agrees" for v in verdicts),
        "ntk_change_slope_deepest": ntk[-1]["slope"] if ntk else None,
        "linearization_gap_slope_least_steep": max(gaps) if gaps else None,
    }
    return Results(summary={"slopes": slopes}, tables={"curves.csv": table}, metrics=metrics)
