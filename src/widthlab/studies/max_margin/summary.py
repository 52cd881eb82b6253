"""`max_margin`'s results: the checks of gradient descent against the SVM per problem, Cover's
count against the separable fraction, and the test-error curves of the two classifiers.

Rules (thresholds from the study config, recorded in the summary under `settings`):
* checks (the computation's own consistency, listed under `checks`, not counted among the
  verdicts): the largest of the SVM's four relative KKT residuals over every separable job
  of a problem must be ≤ `kkt_tolerance`; GD's normalized margin over the SVM's, at every
  checkpoint of every job, must not exceed 1 by more than `kkt_tolerance` (the SVM's margin
  is the maximum up to its own residuals, so this checks the solver, not gradient descent);
* direction (claims about gradient descent): the gap 1 − cos(w_t, ŵ) must fall at every
  checkpoint of the last `decades_checked` decades of steps, in every separable job; the
  same for the support vectors' share of the gradient, which must rise;
* a job whose training set is not separable is listed as such and left out of these checks
  (no max-margin solution exists; GD converges to the loss's finite minimizer instead);
* Cover: at each d/n, the pooled count of separable draws against Cover's C(n,d)/2ⁿ by an
  exact two-sided binomial test (`scipy.stats.binomtest`; a point with p exactly 0 or 1
  must match exactly). The widths reuse the same points and labels, so the points are not
  independent: no χ² over them; they are one family "Cover's formula" judged by Holm's
  procedure, which holds under any dependence. The z = (fraction − p)/SE of each point is
  shown beside its p-value;
* classification: the candidate peak at a threshold is the highest mean test error among
  the grid points of that threshold (for GD's logistic limit the two grid points around the
  d/n where half the seeds' training sets become separable, for least squares the grid point
  nearest d/n = 1); that it lies in that bracket is by construction, a check. The claim is
  that it is above the lowest mean error on each side of it: a one-sided paired t-test
  each side (the same seed's training set and features: most of the seed-to-seed spread
  cancels), both at 5%; where it does not show, the rule's power against a peak
  `peak_effect` above each side decides between "differs" and "inconclusive (k seeds)".
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
from widthlab.stats import (
    ALPHA,
    binomial_p_value,
    count_verdicts,
    judge_family,
    mean_and_se,
    power_verdict,
    t_power,
)
from widthlab.studies.max_margin.tables import problem_of, share_rows, trajectory_rows

KKT = ("primal_feasibility", "dual_feasibility", "stationarity", "complementary_slackness")
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
    entry["kkt"] = {**kkt, "tolerance": tol, "passed": max(kkt.values()) <= tol}
    excess = max(x["margin_excess"] for x in m)
    entry["margin"] = {"max_excess": excess, "tolerance": tol, "passed": excess <= tol}
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


def separability_summary(records: list[dict]) -> tuple[dict[str, Any], list[dict]]:
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
                "p": binomial_p_value(c["separable"], draws, p),
            }
        )
    if not table:
        return {}, []
    family = judge_family(table, "Cover's formula")
    differ = [t for t in table if t["verdict"] == "differs"]
    out = {
        "n_points": n_points,
        "points": len(table),
        "draws": table[0]["draws"],
        "max_abs_z": max(abs(t["z"]) for t in table),
        "smallest_p": min(t["p"] for t in table),
        "differ": len(differ),
        "half_crossing_d_over_n": half_crossing(table, "separable_fraction"),
        "cover_half_crossing_d_over_n": half_crossing(table, "cover_fraction"),
        "family": family,
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
    curve: list[dict], rows: list[dict], metric: str, candidates: list[float], effect: float
) -> dict[str, Any]:
    """Is there a peak at the expected d/n? The highest mean error among the `candidates`
    grid points (`curve`: means over seeds) against the lowest mean error on each side of it
    by a one-sided paired t-test: per seed (`rows`), the error at the peak minus the error
    at that point (the same training set and features). The peak shows when both sides
    reject at 5% (the doubled one-sided p below 0.05, as the report's two-sided intervals);
    where it does not, the verdict weighs the rule's power against a peak `effect` above
    each side (module docstring). Without a point on each side there is no interior peak."""
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
        "effect": effect,
    }
    if not (left and right):
        return {**entry, "shows_peak": False, "verdict": "differs"}
    per_seed = {}
    for r in rows:
        if r["status"] == "ok" and r.get(metric) is not None:
            per_seed[(r["seed"], r["d_over_n"])] = r[metric]
    ps, power, seeds = [], 1.0, []
    for side, others in (("below", left), ("above", right)):
        low = min(others, key=mean)
        diffs = [
            per_seed[(seed, top["d_over_n"])] - value
            for (seed, ratio), value in per_seed.items()
            if ratio == low["d_over_n"] and (seed, top["d_over_n"]) in per_seed
        ]
        diff, se, count = mean_and_se(diffs)
        entry[f"lowest_{side}"] = _point(low, metric)
        test: dict[str, Any] = {"mean": diff, "se": se, "seeds": count}
        if se is not None and se > 0:
            dof = count - 1
            test["p"] = float(min(1.0, 2.0 * stats.t.sf(diff / se, dof)))
            test["power"] = t_power(effect, se, dof)
            ps.append(test["p"])
            power *= test["power"]
        seeds.append(count)
        entry[f"difference_{side}"] = test
    if len(ps) < 2:
        return {**entry, "shows_peak": None, "verdict": None}
    p = max(ps)
    shows = p < ALPHA
    verdict = "agrees" if shows else power_verdict("differs", power, min(seeds))
    return {**entry, "shows_peak": shows, "p": p, "power": power, "verdict": verdict}


def classification_summary(
    records: list[dict], settings: Mapping[str, Any]
) -> tuple[dict[str, Any], list[dict]]:
    """The classification sweep's curves over seeds, its peak and verdicts, and its table."""
    rows = [r for r in tidy_rows(records) if "d_over_n" in r]
    table = mean_std_curves(rows, (), "d_over_n", CLASSIFICATION)
    if not table:
        return {}, []
    effect = float(settings["peak_effect"])
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
        out[name] = local_peak(curve, rows, metric, expected, effect)
    proliferated = [c for c in table if c.get("support_fraction_mean") == 1.0]
    out["all_support_vectors_from_d_over_n"] = proliferated[0]["d_over_n"] if proliferated else None
    return out, table


def _shown_peak(entry: Mapping[str, Any] | None) -> float | None:
    """The d/n of a classification peak that shows, else None."""
    if not entry or not entry.get("shows_peak"):
        return None
    return entry["peak"]["d_over_n"]


def checks_of(problems: Mapping[str, Any], classification: Mapping[str, Any]) -> list[dict]:
    """The checks of the computation (module docstring), each passed or failed."""
    from widthlab.studies.max_margin.figures import problem_label

    checks = []
    for name, e in problems.items():
        if "kkt" not in e:
            continue
        largest = max(v for k, v in e["kkt"].items() if k.startswith("max_kkt_"))
        checks.append(
            {
                "check": f"SVM's KKT residuals, {problem_label(name)}",
                "detail": f"largest {largest:.0e} ≤ {e['kkt']['tolerance']:g}",
                "passed": bool(e["kkt"]["passed"]),
            }
        )
        checks.append(
            {
                "check": f"GD's margin never above the SVM's, {problem_label(name)}",
                "detail": f"largest excess {e['margin']['max_excess']:.1e} ≤ "
                f"{e['margin']['tolerance']:g}",
                "passed": bool(e["margin"]["passed"]),
            }
        )
    logistic = classification.get("logistic_limit") or {}
    if logistic.get("peak"):
        where = logistic["peak"]["d_over_n"]
        bracket = logistic["expected_d_over_n"]
        checks.append(
            {
                "check": "the logistic limit's candidate peak lies in the separability bracket",
                "detail": f"d/n = {where:g} in {{{', '.join(f'{b:g}' for b in bracket)}}}",
                "passed": where in bracket,
            }
        )
    return checks


def summarize(records: Mapping[str, list[dict]], settings: Mapping[str, Any]) -> Results:
    """The study's summary and tables from its records."""
    implicit = [*records.get("binary", []), *records.get("multiclass", [])]
    by_problem: dict[str, list[dict]] = {}
    for r in implicit:
        by_problem.setdefault(problem_of(r), []).append(r)
    order = [p for p in PROBLEM_ORDER if p in by_problem]
    order += sorted(p for p in by_problem if p not in PROBLEM_ORDER)
    problems = {p: problem_summary(by_problem[p], settings) for p in order}
    cover, cover_table = separability_summary(records.get("separability", []))
    classification, class_table = classification_summary(
        records.get("classification", []), settings
    )
    claims = [
        e[check]
        for e in problems.values()
        for check in ("gap_decreasing", "support_share_increasing")
        if check in e
    ]
    claims += cover_table
    claims += [classification.get(c) or {} for c in ("logistic_limit", "least_squares")]
    checks = checks_of(problems, classification)
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
        **count_verdicts(claims),
        "checks_failed": sum(not c["passed"] for c in checks),
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
    summary = {
        "implicit_bias": problems,
        "separability": cover,
        "classification": classification,
        "families": [cover["family"]] if cover else [],
        "checks": checks,
    }
    return Results(summary=summary, tables=tables, metrics=metrics)
