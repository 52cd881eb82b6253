"""From job records to tidy tables: one row per job, mean ± sd ± SE curves, slope fits.

Pure functions of records (dicts as `runtime.records` reads them), shared by every study's
summary. Conventions: `<metric>_mean` is the mean over seeds, `<metric>_std` the sample
standard deviation (ddof = 1; 0 for one seed), `<metric>_se` the standard error of the mean
std/√count (absent for one seed), `<metric>_count` the number of seeds.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from widthlab.stats import seed_slope, slope_test


def short(key: str) -> str:
    """The last component of a dotted config key (`model.width` → `width`)."""
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
    seconds. A metric that is itself a mapping under a key `name=value[,name=value…]` (e.g.
    `width=600,ridge=1e-05`: several conditions solved in one job) becomes a row of its own
    with a column per name."""
    rows = []
    for rec in records:
        base = {short(k): v for k, v in rec["job"].items()}
        base["status"] = rec["status"]
        base["reason"] = rec.get("reason", "")
        metrics = rec.get("metrics", {})
        scalars = {k: v for k, v in metrics.items() if not isinstance(v, Mapping)}
        conditions = {k: v for k, v in metrics.items() if isinstance(v, Mapping)}
        seconds = rec.get("timing", {}).get("seconds")
        if not conditions:
            rows.append({**base, **scalars, "seconds": seconds})
        for key, values in conditions.items():
            labels = {
                name: _parse(value)
                for name, _, value in (part.partition("=") for part in key.split(","))
            }
            rows.append({**base, **labels, **scalars, **values, "seconds": seconds})
    return rows


def failed_jobs(records: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The key and reason of each record that is not `ok`."""
    return [
        {"key": r["key"], "reason": r.get("reason", "")} for r in records if r["status"] != "ok"
    ]


def job_counts(records: list[Mapping[str, Any]]) -> dict[str, Any]:
    """The head of every summary: how many jobs, how many failed and which."""
    return {
        "n_jobs": len(records),
        "n_failed": sum(r["status"] != "ok" for r in records),
        "failed": failed_jobs(records),
    }


def mean_std_curves(
    rows: list[Mapping[str, Any]], group_by: tuple[str, ...], x: str, metrics: Iterable[str]
) -> list[dict[str, Any]]:
    """Mean, sample sd, standard error and count over the ok rows sharing (group, x)."""
    cells: dict[tuple, list[Mapping[str, Any]]] = defaultdict(list)
    for row in rows:
        if row["status"] == "ok":
            cells[(*(row[g] for g in group_by), row[x])].append(row)
    out = []
    for key in sorted(cells):  # each position holds one type (names, numbers)
        cell = cells[key]
        entry = dict(zip((*group_by, x), key, strict=True))
        for metric in metrics:
            values = np.array(
                [r[metric] for r in cell if r.get(metric) is not None], dtype=np.float64
            )
            values = values[np.isfinite(values)]
            if values.size == 0:
                continue
            entry[f"{metric}_mean"] = float(values.mean())
            entry[f"{metric}_std"] = float(values.std(ddof=1)) if values.size > 1 else 0.0
            if values.size > 1:
                entry[f"{metric}_se"] = entry[f"{metric}_std"] / math.sqrt(values.size)
            entry[f"{metric}_count"] = int(values.size)
        out.append(entry)
    return out


def slope_summary(
    rows: list[Mapping[str, Any]],
    x: str,
    metric: str,
    reference: float | None = None,
    claim: str = "equals",
) -> dict[str, Any]:
    """The log-log slope of `metric` against `x` over the ok rows, pooled over seeds, with a
    95% interval whose independent unit is the seed (`stats.seed_slope`; the pooled fit's
    own interval beside it as `ols_ci_*`), and against `reference` (a paper's exponent,
    `claim` "equals" or "at_most": `stats.slope_test`) its p-value and unadjusted verdict;
    the study's family (`stats.judge_family`) decides the verdict."""
    ok = [r for r in rows if r["status"] == "ok" and r.get(metric) is not None]
    fit = seed_slope([r[x] for r in ok], [r[metric] for r in ok], [r["seed"] for r in ok])
    fit["widths"] = sorted({r[x] for r in ok})
    if reference is not None:
        slope_test(fit, reference, claim)
    return fit


def per_seed_matrix(
    rows: list[Mapping[str, Any]], x: str, metric: str
) -> tuple[list[Any], list[list[float]]]:
    """(the sorted values of `x`, one list per seed of `metric` at each of them, NaN where
    the seed has no ok row): the input of `stats.explain_slope`."""
    ok = [r for r in rows if r["status"] == "ok" and r.get(metric) is not None]
    xs = sorted({r[x] for r in ok})
    seeds = sorted({r["seed"] for r in ok}, key=str)
    table = {(r["seed"], r[x]): float(r[metric]) for r in ok}
    return xs, [[table.get((s, v), math.nan) for v in xs] for s in seeds]
