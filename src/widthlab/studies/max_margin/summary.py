"""`max_margin`'s results: the checks of gradient descent against the SVM per problem, Cover's
count against the separable fraction, and the test-error curves of the two classifiers.

Rules (thresholds from the study config, recorded in the summary under `settings`):
* KKT: the largest of the SVM's four relative residuals over every separable job of a
  problem must be ≤ `kkt_tolerance`;
* margin: GD's normalized margin over the SVM's, at every checkpoint of every job, must not
  exceed 1 by more than `kkt_tolerance` (the SVM's margin is the maximum up to its own
  residuals);
* direction: the gap 1 − cos(w_t, ŵ) must fall at every checkpoint of the last
  `decades_checked` decades of steps, in every separable job; the same for the support
  vectors' share of the gradient, which must rise;
* a job whose training set is not separable is listed as such and left out of these checks
  (no max-margin solution exists; GD converges to the loss's finite minimizer instead);
* Cover: at each d/n, z = (fraction − C(n,d)/2ⁿ)/SE with the binomial SE √(p(1 − p)/draws)
  of Cover's p (the null hypothesis; a point with p exactly 0 or 1 must match exactly);
  "agrees" when |z| ≤ `separability.z_max` at every d/n;
* classification: a peak at a threshold is the highest mean test error among the grid
  points of that threshold, above the lowest mean error on each side of it by more than
  `peak_k` standard errors of the paired (same seed) difference: for GD's logistic limit
  the two grid points around the d/n where half the seeds' training sets become
  separable, for least squares the grid point nearest d/n = 1; "agrees" when that peak
  shows.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping
from typing import Any

import numpy as np
from scipy import stats

from widthlab.implicit_bias import strictly_decreasing
from widthlab.runtime.study import Results
from widthlab.runtime.tables import mean_std_curves, tidy_rows
from widthlab.stats import mean_and_se

KKT = ("primal_feasibility", "dual_feasibility", "stationarity", "complementary_slackness")
TRAJECTORY = ("direction_gap", "margin_ratio", "support_share", "norm_ratio", "loss")
AVERAGED = (
    "final_direction_gap",
    "final_margin_ratio",
    "final_support_share",
    "share_distance",
    "norm_growth_ratio",
    "support_vectors",
    "support_points",
    "fit_slope",
    "fit_t0",
)
PROBLEM_ORDER = ("binary_sphere_linear", "binary_digits", "multiclass_digits")


def _stat(values: list[float]) -> dict[str, Any]:
    mean, se, count = mean_and_se(values)
    return {"mean": mean if count else None, "se": se, "count": count}


def _verdict(ok: bool | None) -> str | None:
    return None if ok is None else ("agrees" if ok else "differs")


def problem_summary(records: list[dict], settings: Mapping[str, Any]) -> dict[str, Any]:
    """The checks and headline numbers of one problem's jobs (module docstring)."""
    tol = float(settings["kkt_tolerance"])
    ok = [r for r in records if r["status"] == "ok"]
    separable = [r for r in ok if r["metrics"]["separable"]]
    first = (separable or ok or [{"metrics": {}}])[0]["metrics"]
    entry: dict[str, Any] = {
        "jobs": len(records),
        "separable_jobs": len(separable),
        "n_train": first.get("n_train"),
        "width": first.get("width"),
        "d_over_n": first.get("d_over_n"),
        "steps": (first.get("steps") or [None])[-1],
        "lr": first.get("gd_lr"),
        "not_separable": [
            {
                "key": r["key"],
                "final_loss": r["metrics"].get("final_loss"),
                "minimizer_loss": r["metrics"].get("minimizer_loss"),
                "gd_distance_to_minimizer": r["metrics"].get("gd_distance_to_minimizer"),
            }
            for r in ok
            if not r["metrics"]["separable"]
        ],
    }
    if not separable:
        return entry
    m = [r["metrics"] for r in separable]
    kkt = {f"max_kkt_{k}": max(x[f"svm_kkt_{k}"] for x in m) for k in KKT}
    entry["kkt"] = {
        **kkt,
        "tolerance": tol,
        "verdict": _verdict(max(kkt.values()) <= tol),
    }
    excess = max(x["margin_excess"] for x in m)
    entry["margin"] = {"max_excess": excess, "tolerance": tol, "verdict": _verdict(excess <= tol)}
    decades = int(settings["decades_checked"])
    for check, key, sign in (
        ("gap_decreasing", "direction_gap", 1.0),
        ("support_share_increasing", "support_share", -1.0),
    ):
        # Recomputed from the checkpoints with this summary's `decades_checked` (the job
        # writes the same flag for its own setting).
        passed = 0
        for x in m:
            steps = np.asarray(x["steps"], dtype=np.float64)
            late = steps >= steps[-1] / 10**decades
            passed += strictly_decreasing(sign * np.asarray(x[key])[late])
        entry[check] = {
            "jobs": len(m),
            "passed": passed,
            "decades": decades,
            "verdict": _verdict(passed == len(m)),
        }
    for key in AVERAGED:
        entry[key] = _stat([x[key] for x in m if x.get(key) is not None])
    entry["fit_max_relative_deviation"] = max(x["fit_max_relative_deviation"] for x in m)
    entry["fit_decades"] = settings.get("fit_decades")
    return entry


def trajectory_rows(records: list[dict]) -> list[dict]:
    """Per (problem, step): mean, sd, SE and count over the separable jobs of each quantity
    recorded at the checkpoints."""
    rows = []
    for r in records:
        m = r.get("metrics", {})
        if r["status"] != "ok" or not m.get("separable"):
            continue
        for i, t in enumerate(m["steps"]):
            rows.append(
                {
                    "status": "ok",
                    "problem": problem_of(r),
                    "step": t,
                    **{k: m[k][i] for k in TRAJECTORY},
                }
            )
    return mean_std_curves(rows, ("problem",), "step", TRAJECTORY)


def share_rows(records: list[dict]) -> list[dict]:
    """The first separable job of each problem: every support constraint's SVM dual share
    and GD gradient share at the last step (by decreasing dual share), then the other
    constraints' GD shares."""
    rows, seen = [], set()
    for r in sorted(records, key=lambda r: r["key"]):
        m = r.get("metrics", {})
        if r["status"] != "ok" or not m.get("separable") or problem_of(r) in seen:
            continue
        seen.add(problem_of(r))
        order = np.argsort(m["svm_dual_shares"])[::-1]
        for rank, i in enumerate(order):
            rows.append(
                {
                    "problem": problem_of(r),
                    "key": r["key"],
                    "support": 1,
                    "rank": rank,
                    "svm_dual_share": m["svm_dual_shares"][i],
                    "gd_share": m["gd_shares_support"][i],
                }
            )
        for rank, share in enumerate(m["gd_shares_other"], start=len(order)):
            rows.append(
                {
                    "problem": problem_of(r),
                    "key": r["key"],
                    "support": 0,
                    "rank": rank,
                    "svm_dual_share": 0.0,
                    "gd_share": share,
                }
            )
    return rows


def separability_summary(records: list[dict], z_max: float) -> tuple[dict[str, Any], list[dict]]:
    """Pooled separable fraction per width against Cover's (module docstring)."""
    pooled: dict[float, dict[str, Any]] = {}
    n_points = None
    for row in tidy_rows(records):
        if row["status"] != "ok" or "width" not in row:
            continue
        n_points = row["n_points"]
        cell = pooled.setdefault(
            row["d_over_n"],
            {"width": row["width"], "separable": 0, "draws": 0, "cover": row["cover_fraction"]},
        )
        cell["separable"] += row["separable_count"]
        cell["draws"] += row["draws"]
    table = []
    for ratio in sorted(pooled):
        c = pooled[ratio]
        p, draws = c["cover"], c["draws"]
        fraction = c["separable"] / draws
        se = math.sqrt(p * (1 - p) / draws)
        z = (fraction - p) / se if se > 0 else (0.0 if fraction == p else math.inf)
        table.append(
            {
                "d_over_n": ratio,
                "width": c["width"],
                "draws": draws,
                "separable_fraction": fraction,
                "cover_fraction": p,
                "se": se,
                "z": z,
                "verdict": _verdict(abs(z) <= z_max),
            }
        )
    if not table:
        return {}, []
    zs = [t["z"] for t in table if t["se"] > 0]
    chi2 = float(sum(z * z for z in zs))
    beyond = sum(abs(t["z"]) > z_max for t in table)
    out = {
        "n_points": n_points,
        "points": len(table),
        "draws": table[0]["draws"],
        "z_max": z_max,
        "beyond_z_max": beyond,
        "max_abs_z": max(abs(t["z"]) for t in table),
        # Under Cover's formula each z is ≈ N(0, 1): how many |z| > z_max to expect by chance.
        "expected_beyond_z_max": float(len(zs) * 2 * stats.norm.sf(z_max)),
        "chi2": chi2,
        "chi2_dof": len(zs),
        "chi2_p_value": float(stats.chi2.sf(chi2, len(zs))) if zs else None,
        "half_crossing_d_over_n": half_crossing(table, "separable_fraction"),
        "cover_half_crossing_d_over_n": half_crossing(table, "cover_fraction"),
        "verdict": _verdict(beyond == 0),
        "by_point": table,
    }
    return out, table


def half_crossing(rows: list[dict], key: str) -> float | None:
    """d/n where `key` first reaches ½, linear between the grid points around it."""
    for a, b in itertools.pairwise(rows):
        if a[key] < 0.5 <= b[key]:
            return a["d_over_n"] + (0.5 - a[key]) / (b[key] - a[key]) * (
                b["d_over_n"] - a["d_over_n"]
            )
    return None


CLASSIFICATION = (
    "separable",
    "logistic_limit_test_error",
    "max_margin_test_error",
    "least_squares_test_error",
    "least_squares_train_error",
    "support_fraction",
    "svm_least_squares_gap",
    "svm_kkt_largest",
)


def _point(c: Mapping[str, Any], metric: str) -> dict[str, Any]:
    return {
        "d_over_n": c["d_over_n"],
        "mean": c.get(f"{metric}_mean"),
        "se": c.get(f"{metric}_se"),
        "seeds": c.get(f"{metric}_count"),
    }


def local_peak(
    curve: list[dict], rows: list[dict], metric: str, candidates: list[float], k: float
) -> dict[str, Any]:
    """Is there a peak at the expected d/n? The highest mean error among the `candidates`
    grid points (`curve`: means over seeds) must exceed the lowest mean error on each side
    of it by more than `k` standard errors of the paired difference: per seed (`rows`), the
    error at the peak minus the error at that point (the same training set and features,
    so most of the seed-to-seed spread cancels). Without a point on each side there is no
    interior peak."""
    at = [i for i, c in enumerate(curve) if c["d_over_n"] in candidates]
    if not at:
        return {"expected_d_over_n": candidates, "interior_peak": False, "verdict": None}

    def mean(c: Mapping[str, Any]) -> float:
        return c[f"{metric}_mean"]

    i = max(at, key=lambda j: mean(curve[j]))
    top, left, right = curve[i], curve[:i], curve[i + 1 :]
    entry: dict[str, Any] = {
        "expected_d_over_n": candidates,
        "peak": _point(top, metric),
        "largest_d_over_n": _point(curve[-1], metric),
        "interior_peak": bool(left and right),
    }
    if not (left and right):
        return {**entry, "shows_peak": False, "verdict": "differs"}
    per_seed = {}
    for r in rows:
        if r["status"] == "ok" and r.get(metric) is not None:
            per_seed[(r["seed"], r["d_over_n"])] = r[metric]
    for side, others in (("below", left), ("above", right)):
        low = min(others, key=mean)
        diffs = [
            per_seed[(seed, top["d_over_n"])] - value
            for (seed, ratio), value in per_seed.items()
            if ratio == low["d_over_n"] and (seed, top["d_over_n"]) in per_seed
        ]
        diff, se, count = mean_and_se(diffs)
        entry[f"lowest_{side}"] = _point(low, metric)
        entry[f"difference_{side}"] = {"mean": diff, "se": se, "seeds": count}
        entry[f"above_{side}"] = None if se is None else bool(diff > k * se)
    decided = [entry["above_below"], entry["above_above"]]
    shows = None if None in decided else all(decided)
    return {**entry, "shows_peak": shows, "verdict": _verdict(shows)}


def classification_summary(
    records: list[dict], settings: Mapping[str, Any]
) -> tuple[dict[str, Any], list[dict]]:
    rows = [r for r in tidy_rows(records) if "d_over_n" in r]
    table = mean_std_curves(rows, (), "d_over_n", CLASSIFICATION)
    if not table:
        return {}, []
    k = float(settings["peak_k"])
    below = [c for c in table if c["separable_mean"] < 0.5]
    above = [c for c in table if c["separable_mean"] >= 0.5]
    bracket = ([below[-1]["d_over_n"]] if below else []) + ([above[0]["d_over_n"]] if above else [])
    nearest_one = min(table, key=lambda c: abs(math.log(c["d_over_n"])))["d_over_n"]
    out: dict[str, Any] = {
        "n_train": rows[0]["n_train"],
        "separable_half_crossing_d_over_n": half_crossing(
            [{"d_over_n": c["d_over_n"], "f": c["separable_mean"]} for c in table], "f"
        ),
        "separability_bracket": bracket,
        "all_separable_from_d_over_n": next(
            (c["d_over_n"] for c in table if c["separable_mean"] == 1.0), None
        ),
    }
    for name, metric, expected in (
        ("logistic_limit", "logistic_limit_test_error", bracket),
        ("least_squares", "least_squares_test_error", [nearest_one]),
    ):
        curve = [c for c in table if f"{metric}_mean" in c]
        out[name] = local_peak(curve, rows, metric, expected, k)
    proliferated = [c for c in table if c.get("support_fraction_mean") == 1.0]
    out["all_support_vectors_from_d_over_n"] = proliferated[0]["d_over_n"] if proliferated else None
    return out, table


def _shown_peak(entry: Mapping[str, Any] | None) -> float | None:
    """The d/n of a classification peak that shows, else None."""
    if not entry or not entry.get("shows_peak"):
        return None
    return entry["peak"]["d_over_n"]


def problem_of(record: Mapping[str, Any]) -> str:
    """`<job kind>_<data set>`, e.g. binary_digits."""
    return f"{record.get('job_kind')}_{record.get('config', {}).get('data', {}).get('name')}"


def summarize(records: Mapping[str, list[dict]], settings: Mapping[str, Any]) -> Results:
    implicit = [*records.get("binary", []), *records.get("multiclass", [])]
    by_problem: dict[str, list[dict]] = {}
    for r in implicit:
        by_problem.setdefault(problem_of(r), []).append(r)
    order = [p for p in PROBLEM_ORDER if p in by_problem]
    order += sorted(p for p in by_problem if p not in PROBLEM_ORDER)
    problems = {p: problem_summary(by_problem[p], settings) for p in order}
    sep_settings = settings["separability"]
    cover, cover_table = separability_summary(
        records.get("separability", []), float(sep_settings["z_max"])
    )
    classification, class_table = classification_summary(
        records.get("classification", []), settings
    )
    verdicts = [
        e[check]["verdict"]
        for e in problems.values()
        for check in ("kkt", "margin", "gap_decreasing", "support_share_increasing")
        if check in e
    ]
    verdicts += [cover.get("verdict")]
    verdicts += [
        (classification.get(c) or {}).get("verdict") for c in ("logistic_limit", "least_squares")
    ]
    verdicts = [v for v in verdicts if v]
    kkt_values = [
        v
        for e in problems.values()
        for k, v in (e.get("kkt") or {}).items()
        if k.startswith("max_kkt_")
    ]
    largest = max(kkt_values, default=None)
    gaps = [
        e["final_direction_gap"]["mean"] for e in problems.values() if "final_direction_gap" in e
    ]
    metrics = {
        "comparisons": len(verdicts),
        "agree": sum(v == "agrees" for v in verdicts),
        "log10_max_svm_kkt_residual": (
            None if largest is None else float(math.ceil(math.log10(max(largest, 1e-300))))
        ),
        "max_final_direction_gap": max(gaps, default=None),
        "cover_max_abs_z": cover.get("max_abs_z"),
        "logistic_limit_peak_d_over_n": _shown_peak(classification.get("logistic_limit")),
    }
    tables = {}
    trajectories = trajectory_rows(implicit)
    if trajectories:
        tables["trajectories.csv"] = trajectories
        tables["shares.csv"] = share_rows(implicit)
    if cover_table:
        tables["separability.csv"] = cover_table
    if class_table:
        tables["classification.csv"] = class_table
    summary = {"implicit_bias": problems, "separability": cover, "classification": classification}
    return Results(summary=summary, tables=tables, metrics=metrics)
