"""`feature_learning`'s results: slopes against width, best learning rates, verdicts.

Rules (every threshold, reference and prediction from the study config, kept in the summary's
settings):

* Slopes: log(quantity) = a + slope · log(width), pooled over seeds, with a 95% interval over
  seeds (`runtime.tables.slope_summary`). A quantity is *flat* when the whole interval lies
  within ±`flat_tolerance`, *not flat* when it lies wholly outside, *undecided* otherwise
  (`stats.flatness`, an equivalence test).
* (a) Coordinate check, per parameterization, at step `coord.check_step`: the slopes of the
  mean |h_l| of every hidden layer and of the mean |f_t − f_0|. A parameterization in
  `coord.flat` agrees when all of them are flat, differs when one is not flat, and is
  inconclusive when an undecided one could swing it; one in `coord.not_flat` agrees when at
  least one is not flat (`stats.flat_claim`). Every step's classes are kept (`by_step`), so
  the report shows whether the verdict depends on the step judged. (The mean |f_t| itself
  is reported, not judged: under μP it starts at O(width^−1/2).)
* (b) Feature movement and NTK change at the rate `movement.log2_lr[p]`: against an exponent
  in `movement.references` a two-sided t-test, the exponents one family "movement
  exponents" (Holm); for a parameterization in `movement.flat` the flatness rule above.
* (c) Learning-rate transfer: per width the grid point with the lowest mean over seeds of
  log(train loss) among the rates where every seed finished (`stats.grid_minimum`), refined
  by the parabola through it and its neighbours, with a 95% bootstrap interval over seeds.
  Its shift from the narrowest to the widest width, in grid steps (one step = a factor 2),
  on the grid and refined (with a bootstrap interval resampling the seeds of both widths).
  A parameterization in `transfer.stays` agrees when the grid shift is at most
  `transfer.max_shift` steps; one in `transfer.moves` when the refined shift's 95% interval
  excludes 0 (the optimum drifts); a minimum at an end of the grid is "no interior
  optimum" and gets no verdict.
* "Wider is better" at a fixed rate (`transfer.wider_is_better`), at every rate where every
  seed of the narrowest and the widest width finished, on the mean log loss: a Welch t-test
  each way at every rate, the rates one family (Holm, both directions together): agrees
  when the widest is significantly lower at one rate at least and the narrowest at none,
  differs when the narrowest is significantly lower somewhere, and is inconclusive when no
  rate tells them apart.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping
from typing import Any

import numpy as np
from scipy import stats

from widthlab.runtime.study import Results
from widthlab.runtime.tables import mean_std_curves, per_seed_matrix, slope_summary, tidy_rows
from widthlab.stats import (
    ALPHA,
    bootstrap_interval,
    count_verdicts,
    explain_slope,
    flat_claim,
    flatness,
    grid_minimum,
    holm,
    judge_family,
    mean_and_se,
    welch,
)

PARAMETERIZATIONS = ("standard", "ntk", "mean_field", "mup")


def ordered(names) -> list[str]:
    """Parameterizations in the order of the tables (known ones first)."""
    names = set(names)
    return [p for p in PARAMETERIZATIONS if p in names] + sorted(names - set(PARAMETERIZATIONS))


def hidden_layers(rows, prefix: str) -> list[str]:
    """The per-layer keys of the rows with this prefix, in layer order."""
    names = {k for r in rows for k in r if k.startswith(prefix) and k[len(prefix) :].isdigit()}
    return sorted(names, key=lambda k: int(k[len(prefix) :]))


# ------------------------------------------------------------------------ (a) coordinates
def coord_summary(rows: list[dict], settings: Mapping[str, Any]) -> dict[str, Any]:
    """Per parameterization, the coordinate check's slopes against width and their verdicts."""
    c, tolerance = settings["coord"], float(settings["flat_tolerance"])
    step = int(c["check_step"])
    out: dict[str, Any] = {}
    for p in ordered(r["parameterization"] for r in rows):
        prediction = "flat" if p in c["flat"] else "not flat" if p in c["not_flat"] else None
        by_step: dict[str, Any] = {}
        for s in sorted({r["step"] for r in rows if r.get("step")}):
            mine = [r for r in rows if r["parameterization"] == p and r.get("step") == s]
            judged = [*hidden_layers(mine, "h"), "output_change"]
            fits = {q: slope_summary(mine, "width", q) for q in [*judged, "output"]}
            for q in judged:
                fits[q]["flat"] = flatness(fits[q], tolerance)
            seeds = min((fits[q].get("seeds") or 0) for q in judged)
            by_step[str(s)] = {
                "fits": fits,
                "classes": {q: fits[q]["flat"] for q in judged},
                "verdict": flat_claim([fits[q]["flat"] for q in judged], prediction, seeds)
                if prediction
                else None,
            }
        chosen = by_step.get(str(step), {"fits": {}, "classes": {}, "verdict": None})
        slopes = [abs(f["slope"]) for q, f in chosen["fits"].items() if q in chosen["classes"]]
        out[p] = {
            "step": step,
            "fits": chosen["fits"],
            "max_abs_slope": max(slopes) if slopes else None,
            "prediction": prediction,
            "verdict": chosen["verdict"],
            "by_step": {
                k: {"classes": v["classes"], "verdict": v["verdict"]} for k, v in by_step.items()
            },
        }
    return out


# ---------------------------------------------------------------------- (b) feature movement
def movement_summary(rows: list[dict], settings: Mapping[str, Any]) -> dict[str, Any]:
    """Per parameterization, the slopes of feature movement and NTK change against width and their
    verdicts."""
    m, tolerance = settings["movement"], float(settings["flat_tolerance"])
    references = m.get("references") or {}
    out: dict[str, Any] = {}
    for p in ordered(r["parameterization"] for r in rows):
        rate = m["log2_lr"].get(p)
        mine = [
            r
            for r in rows
            if r["parameterization"] == p and r.get("log2_lr") == rate and not r.get("diverged")
        ]
        refs = references.get(p) or {}
        fits = {}
        for metric in [*hidden_layers(mine, "feature_movement_layer_"), "ntk_change"]:
            kind = "feature_movement" if metric.startswith("feature_movement") else metric
            fit = slope_summary(mine, "width", metric, refs.get(kind))
            if p in m["flat"]:
                fit["flat"] = flatness(fit, tolerance)
                fit.update(
                    prediction="flat",
                    verdict=flat_claim([fit["flat"]], "flat", fit.get("seeds") or 0),
                )
            fits[metric] = fit
        out[p] = {"log2_lr": rate, "fits": fits, "rows": mine}
    exponents = [f for e in out.values() for f in e["fits"].values() if f.get("claim")]
    family = judge_family(exponents, "movement exponents")
    explanations = []
    for p, e in out.items():
        mine = e.pop("rows")
        for metric, fit in e["fits"].items():
            if fit.get("claim") and fit.get("verdict") == "differs":
                widths, values = per_seed_matrix(mine, "width", metric)
                why = explain_slope(widths, values, fit["reference"])
                fit["explained"] = why
                explanations.append(
                    {
                        "test": f"{metric.replace('_', ' ')} slope, {p}",
                        "verdict": why["verdict"],
                        "reason": why["reason"],
                    }
                )
    out["_family"], out["_explanations"] = family, explanations
    return out


# ------------------------------------------------------------------ (c) learning-rate transfer
def score_matrix(rows: list[dict], grid: list[int]) -> np.ndarray:
    """log(train loss) [seeds, grid] of one (parameterization, width); +inf where a run
    diverged or is missing."""
    seeds = sorted({r["seed"] for r in rows})
    scores = np.full((len(seeds), len(grid)), np.inf)
    for r in rows:
        loss = r.get("train_loss")
        if r.get("diverged") or loss is None or not loss > 0 or r.get("log2_lr") not in grid:
            continue
        scores[seeds.index(r["seed"]), grid.index(r["log2_lr"])] = math.log(loss)
    return scores


def _position(scores: np.ndarray) -> float:
    found = grid_minimum(scores)
    return math.nan if found is None else found.position


def best_rate(scores: np.ndarray, grid: list[int], n_boot: int) -> dict[str, Any] | None:
    """The best log₂ learning rate of the grid (refined by a parabola) with a bootstrap interval
    over seeds."""
    found = grid_minimum(scores)
    if found is None:
        return None
    low, high = bootstrap_interval(_position, [scores], n_boot=n_boot)
    return {
        "index": found.index,
        "log2_lr": grid[0] + found.position,
        "grid_log2_lr": grid[found.index],
        "ci_low": grid[0] + low,
        "ci_high": grid[0] + high,
        "interior": found.interior,
        "seeds": int(scores.shape[0]),
    }


def wider_is_better(narrow: np.ndarray, wide: np.ndarray, grid: list[int]) -> dict[str, Any]:
    """At every rate where all seeds of both widths finished: is the widest significantly
    lower, or the narrowest (module docstring)?"""
    rates = []
    for j, e in enumerate(grid):
        a, b = narrow[:, j], wide[:, j]
        if not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
            continue
        mean_a, se_a, n_a = mean_and_se(a.tolist())
        mean_b, se_b, n_b = mean_and_se(b.tolist())
        test = welch(mean_a, se_a, n_a, mean_b, se_b, n_b)  # narrow − wide: > 0 wider better
        entry: dict[str, Any] = {"log2_lr": e, "log_loss_difference": mean_b - mean_a}
        if test is not None:
            diff, se, dof = test
            t = diff / se
            entry.update(
                t=t,
                dof=dof,
                p_wider=float(stats.t.sf(t, dof)),
                p_narrower=float(stats.t.cdf(t, dof)),
            )
        rates.append(entry)
    tested = [r for r in rates if "t" in r]
    adjusted = holm([r[k] for r in tested for k in ("p_wider", "p_narrower")])
    for i, r in enumerate(tested):
        r["holm_p_wider"], r["holm_p_narrower"] = adjusted[2 * i], adjusted[2 * i + 1]
        r["wider_better"] = r["holm_p_wider"] < ALPHA
        r["narrower_better"] = r["holm_p_narrower"] < ALPHA
    better = sum(bool(r.get("wider_better")) for r in rates)
    worse = sum(bool(r.get("narrower_better")) for r in rates)
    seeds = int(min(narrow.shape[0], wide.shape[0]))
    verdict = None
    if tested:
        verdict = "differs" if worse else "agrees" if better else f"inconclusive ({seeds} seeds)"
    return {
        "rates_compared": len(rates),
        "rates_wider_better": better,
        "rates_narrower_better": worse,
        "family_size": 2 * len(tested),
        "verdict": verdict,
        "rates": rates,
    }


def transfer_summary(rows: list[dict], settings: Mapping[str, Any]) -> dict[str, Any]:
    """Per parameterization, the best learning rate per width and its drift from the narrowest to
    the widest."""
    t = settings["transfer"]
    n_boot, max_shift = int(t["bootstrap"]), float(t["max_shift"])
    out: dict[str, Any] = {}
    for p in ordered(r["parameterization"] for r in rows):
        grid = list(range(int(t["log2_lr_min"][p]), int(t["log2_lr_min"][p]) + int(t["n_lr"])))
        by_width: dict[int, list[dict]] = defaultdict(list)
        for r in rows:
            if r["parameterization"] == p:
                by_width[r["width"]].append(r)
        widths = sorted(by_width)
        scores = {w: score_matrix(by_width[w], grid) for w in widths}
        best = {w: best_rate(scores[w], grid, n_boot) for w in widths}
        entry: dict[str, Any] = {
            "grid": [grid[0], grid[-1]],
            "best": {str(w): b for w, b in best.items()},
            "prediction": "stays" if p in t["stays"] else "moves" if p in t["moves"] else None,
        }
        found = [w for w in widths if best[w] is not None]
        if len(found) >= 2:
            narrow, wide = found[0], found[-1]
            low, high = bootstrap_interval(
                lambda a, b: _position(b) - _position(a),
                [scores[narrow], scores[wide]],
                n_boot=n_boot,
            )
            indices = [best[w]["index"] for w in found]
            interior = best[narrow]["interior"] and best[wide]["interior"]
            shift = best[wide]["index"] - best[narrow]["index"]
            entry.update(
                narrowest=narrow,
                widest=wide,
                width_ratio=wide / narrow,
                shift_steps=shift,
                range_steps=max(indices) - min(indices),
                refined_shift=best[wide]["log2_lr"] - best[narrow]["log2_lr"],
                refined_shift_ci=[low, high],
                interior=interior,
            )
            if entry["prediction"] == "stays" and interior:
                entry["verdict"] = "agrees" if abs(shift) <= max_shift else "differs"
            if entry["prediction"] == "moves" and interior and math.isfinite(low + high):
                entry["verdict"] = "agrees" if low > 0 or high < 0 else "differs"
            if p in t["wider_is_better"]:
                entry["wider_is_better"] = wider_is_better(scores[narrow], scores[wide], grid)
        out[p] = entry
    return out


# ------------------------------------------------------------------------------ together
def verdicts(coord, movement, transfer) -> list[Mapping[str, Any]]:
    """Every test the study makes (each with its `verdict`)."""
    found = list(coord.values())
    found += [f for e in movement.values() for f in e["fits"].values()]
    for e in transfer.values():
        found += [e, e.get("wider_is_better") or {}]
    return found


def summarize(records: Mapping[str, list[dict]], settings: Mapping[str, Any]) -> Results:
    """The study's summary and tables from its records."""
    transfer_rows = [r for r in tidy_rows(records.get("transfer", [])) if r["status"] == "ok"]
    coord_rows = [r for r in tidy_rows(records.get("coord", [])) if r["status"] == "ok"]
    coord = coord_summary(coord_rows, settings)
    movement = movement_summary(transfer_rows, settings)
    family, explanations = movement.pop("_family"), movement.pop("_explanations")
    transfer = transfer_summary(transfer_rows, settings)

    tables: dict[str, list[dict]] = {}
    if coord_rows:
        quantities = [*hidden_layers(coord_rows, "h"), "output", "output_change"]
        tables["coord.csv"] = mean_std_curves(
            coord_rows, ("parameterization", "step"), "width", quantities
        )
    if transfer_rows:
        finished = [r for r in transfer_rows if not r.get("diverged")]
        curves = mean_std_curves(
            finished,
            ("parameterization", "width"),
            "log2_lr",
            ["train_loss", "test_loss", "test_error"],
        )
        diverged: dict[tuple, int] = defaultdict(int)
        for r in transfer_rows:
            diverged[(r["parameterization"], r["width"], r["log2_lr"])] += int(r["diverged"])
        for row in curves:
            row["lr"] = 2.0 ** row["log2_lr"]
            row["diverged"] = diverged[(row["parameterization"], row["width"], row["log2_lr"])]
        tables["transfer.csv"] = curves
        movement_rows = [
            r
            for r in finished
            if r["log2_lr"] == settings["movement"]["log2_lr"].get(r["parameterization"])
        ]
        layers = hidden_layers(movement_rows, "feature_movement_layer_")
        tables["movement.csv"] = mean_std_curves(
            movement_rows,
            ("parameterization",),
            "width",
            [*layers, "ntk_change", "train_loss"],
        )
    found = verdicts(coord, movement, transfer)
    ntk_fits = (movement.get("ntk") or {}).get("fits", {})
    ntk_layers = [k for k in ntk_fits if k.startswith("feature_movement_layer_")]
    metrics = {
        **count_verdicts(found),
        "mup_best_lr_shift_steps": (transfer.get("mup") or {}).get("shift_steps"),
        "standard_best_lr_shift_steps": (transfer.get("standard") or {}).get("shift_steps"),
    }
    every = [r for kind in records.values() for r in kind]
    config = every[0].get("config", {}) if every else {}
    summary = {
        "base_width": (config.get("model") or {}).get("base_width"),
        "data": (config.get("data") or {}).get("name"),
        "coord": coord,
        "movement": movement,
        "transfer": transfer,
        "ntk_feature_movement_slope": (ntk_fits[ntk_layers[-1]]["slope"] if ntk_layers else None),
        "families": [family],
        "explanations": explanations,
    }
    return Results(summary=summary, tables=tables, metrics=metrics)
