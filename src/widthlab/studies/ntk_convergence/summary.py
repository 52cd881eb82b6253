"""`ntk_convergence`'s results: slopes with verdicts, the circle's spread ratio with its
bootstrap interval, and where the Monte-Carlo NNGP resolves its finite-width bias.

Rules (thresholds from the study config, recorded in the summary):
* each (kernel, depth, activation): OLS slope of log distance against log width, pooled over
  seeds (distances are per seed: averaging kernels first would change the slope), with a 95%
  interval over seeds (`stats.seed_slope`: a seed's networks at every width, both kernels
  and every depth share its draws, so the seed is the independent unit), tested against
  `reference_slope` (−1/2, Lee et al. 2019); the 12 slopes are one family, judged by Holm's
  procedure (`stats.judge_family`): one slope in 12 would differ at 95% by chance alone;
* circle: relative_sd(w) = mean over γ of the sd over seeds of Θ̂(x₀, x(γ)), over mean |Θ|,
  over every seed of the width (its parts joined in seed order);
  the ratio relative_sd(narrow)/relative_sd(wide) against √(wide/narrow), with a percentile
  bootstrap interval (seeds resampled at each width; `bootstrap` resamples);
* Monte-Carlo NNGP: the bias is "resolved" at a width when the distance exceeds
  `mc.resolved_factor` × the noise floor; the bias's slope over the resolved widths is
  compared with −1 (depth ≥ 2); at depth 1 the bias is 0 exactly, so every width should be
  unresolved.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from widthlab.runtime.study import Results
from widthlab.runtime.tables import mean_std_curves, per_seed_matrix, slope_summary, tidy_rows
from widthlab.stats import (
    bootstrap_interval,
    count_verdicts,
    explain_slope,
    judge_family,
    loglog_slope,
    slope_verdict,
)

KERNELS = {"ntk": "ntk_distance", "nngp": "nngp_distance"}


def kernel_slopes(rows: list[dict], reference: float) -> tuple[dict[str, Any], dict, list]:
    """Each (kernel, depth, activation)'s slope tested against `reference`, the family of
    them judged together, and every slope that differs explained (`stats.explain_slope`)."""
    slopes: dict[str, Any] = {}
    groups: dict[str, tuple[list[dict], str]] = {}
    for depth, activation in sorted({(r["depth"], r["activation"]) for r in rows}):
        group = [r for r in rows if r["depth"] == depth and r["activation"] == activation]
        for kernel, metric in KERNELS.items():
            if any(r.get(metric) is not None for r in group):
                key = f"{kernel}_depth{depth}_{activation}"
                slopes[key] = slope_summary(group, "width", metric, reference)
                groups[key] = (group, metric)
    family = judge_family(list(slopes.values()), "kernel slopes")
    explanations = []
    for key, fit in slopes.items():
        if fit.get("verdict") == "differs":
            group, metric = groups[key]
            widths, values = per_seed_matrix(group, "width", metric)
            why = explain_slope(widths, values, reference)
            fit["explained"] = why
            kernel, depth, activation = key.rsplit("_", 2)
            explanations.append(
                {
                    "test": f"{kernel.upper()} slope, depth {depth.removeprefix('depth')}, "
                    f"{activation}",
                    "verdict": why["verdict"],
                    "reason": why["reason"],
                }
            )
    return slopes, family, explanations


def join_circle_parts(records: list[dict]) -> list[dict]:
    """One entry per width, in the order the widths first appear in `records`: the `ntk`
    curves of every seed its finished parts computed, in seed order (so the same seeds give
    the same numbers however they were split), `seeds` their count, and the width's `gamma`
    and `limit`. A failed part's seeds are missing from `ntk` and `seeds`."""
    parts: dict[int, list[dict]] = {}
    for rec in records:
        if rec["status"] == "ok":
            parts.setdefault(rec["metrics"]["width"], []).append(rec["metrics"])
    joined = []
    for width in parts:
        ms = sorted(parts[width], key=lambda m: m.get("first_seed", 0))
        ntk = [curve for m in ms for curve in m["ntk"]]
        joined.append(
            {
                "width": width,
                "seeds": len(ntk),
                "ntk": ntk,
                "gamma": ms[0]["gamma"],
                "limit": ms[0]["limit"],
            }
        )
    return joined


def circle_summary(records: list[dict], n_boot: int) -> dict[str, Any]:
    """The circle's parts joined: per width the spread around the limit, with a bootstrap interval,
    and their ratio."""
    ok = sorted(join_circle_parts(records), key=lambda m: m["width"])
    if not ok:
        return {}
    limit = np.asarray(ok[0]["limit"])
    scale = float(np.mean(np.abs(limit)))

    def relative_sd(curves: np.ndarray) -> float:
        return float(np.mean(np.std(curves, axis=0, ddof=1)) / scale)

    widths, curves = {}, {}
    for m in ok:
        curves[m["width"]] = np.asarray(m["ntk"])
        low, high = bootstrap_interval(relative_sd, [curves[m["width"]]], n_boot=n_boot)
        widths[str(m["width"])] = {
            "relative_sd": relative_sd(curves[m["width"]]),
            "ci_low": low,
            "ci_high": high,
            "seeds": m["seeds"],
        }
    out: dict[str, Any] = {"widths": widths}
    if len(curves) >= 2:
        narrow, wide = min(curves), max(curves)

        def ratio(a: np.ndarray, b: np.ndarray) -> float:
            return relative_sd(a) / relative_sd(b)

        low, high = bootstrap_interval(ratio, [curves[narrow], curves[wide]], n_boot=n_boot)
        expected = math.sqrt(wide / narrow)
        out.update(
            sd_ratio=ratio(curves[narrow], curves[wide]),
            ci_low=low,
            ci_high=high,
            sqrt_width_ratio=expected,
            narrow=narrow,
            wide=wide,
            verdict="agrees" if low <= expected <= high else "differs",
        )
    return out


def mc_summary(rows: list[dict], factor: float, reference: float) -> dict[str, Any]:
    """Per depth and activation, the Monte-Carlo NNGP's distances against width, their noise floor
    and the bias slope."""
    out: dict[str, Any] = {}
    for depth, activation in sorted({(r["depth"], r["activation"]) for r in rows}):
        group = sorted(
            (
                r
                for r in rows
                if r["depth"] == depth and r["activation"] == activation and r["status"] == "ok"
            ),
            key=lambda r: r["width"],
        )
        resolved = [r for r in group if r["mc_distance"] > factor * r["mc_floor"]]
        entry: dict[str, Any] = {
            "widths": [r["width"] for r in group],
            "resolved_widths": [r["width"] for r in resolved],
            "networks": group[0]["mc_networks"] if group else None,
        }
        if depth >= 2 and len(resolved) >= 3:
            fit = loglog_slope(
                np.array([r["width"] for r in resolved]), np.array([r["mc_bias"] for r in resolved])
            ).as_dict()
            entry["bias_slope"] = {
                **fit,
                "reference": reference,
                "verdict": slope_verdict(fit, reference),
            }
        elif depth == 1:
            # The finite-width NNGP equals the limit at depth 1: no width should resolve a bias.
            entry["verdict"] = "agrees" if not resolved else "differs"
        out[f"depth{depth}_{activation}"] = entry
    return out


def summarize(records: Mapping[str, list[dict]], settings: Mapping[str, Any]) -> Results:
    """The study's summary and tables from its records."""
    kernel_rows = tidy_rows(records.get("kernels", []))
    mc_rows = tidy_rows(records.get("mc_nngp", []))
    reference = float(settings["reference_slope"])
    slopes, family, explanations = kernel_slopes(kernel_rows, reference)
    circle = circle_summary(records.get("circle", []), int(settings["circle"]["bootstrap"]))
    mc = mc_summary(
        mc_rows, float(settings["mc"]["resolved_factor"]), float(settings["mc"]["reference_slope"])
    )
    curves = mean_std_curves(
        kernel_rows,
        ("depth", "activation"),
        "width",
        [*KERNELS.values(), "ntk_diagonal_error", "nngp_diagonal_error"],
    )
    tables = {"curves.csv": curves}
    if mc_rows:
        tables["mc_nngp.csv"] = [
            {
                k: r[k]
                for k in (
                    "depth",
                    "activation",
                    "width",
                    "mc_distance",
                    "mc_floor",
                    "mc_bias",
                    "mc_networks",
                )
            }
            for r in mc_rows
            if r["status"] == "ok"
        ]
    tables.update(circle_tables(records.get("circle", []), int(settings["circle"]["seeds_drawn"])))
    tests = [*slopes.values(), circle] + [e.get("bias_slope") or e for e in mc.values()]
    worst = max(slopes.values(), key=lambda s: abs(s["slope"] - reference), default=None)
    metrics = {
        **count_verdicts(tests),
        "worst_slope": worst["slope"] if worst else None,
        "circle_sd_ratio": circle.get("sd_ratio"),
        "circle_sqrt_width_ratio": circle.get("sqrt_width_ratio"),
    }
    summary = {
        "reference_slope": reference,
        "slopes": slopes,
        "circle": circle,
        "mc_nngp": mc,
        "families": [family],
        "explanations": explanations,
    }
    return Results(summary=summary, tables=tables, metrics=metrics)


def circle_tables(records: list[dict], seeds_drawn: int) -> dict[str, list[dict]]:
    """circle.csv: per (width, γ) the mean and sd over seeds, and the limit; circle_seeds.csv:
    the first `seeds_drawn` seeds' curves (the figure's thin lines)."""
    rows, seeds = [], []
    joined = join_circle_parts(records)
    for m in joined:
        ntk = np.asarray(m["ntk"])
        for i, g in enumerate(m["gamma"]):
            rows.append(
                {
                    "width": m["width"],
                    "gamma": g,
                    "ntk_mean": float(ntk[:, i].mean()),
                    "ntk_std": float(ntk[:, i].std(ddof=1)) if len(ntk) > 1 else 0.0,
                    "ntk_count": len(ntk),
                }
            )
        for s in range(min(seeds_drawn, len(ntk))):
            seeds += [
                {"width": m["width"], "seed": s, "gamma": g, "ntk": float(v)}
                for g, v in zip(m["gamma"], ntk[s], strict=True)
            ]
    if joined:
        m = joined[0]
        rows += [
            {"width": "inf", "gamma": g, "ntk_mean": v, "ntk_std": 0.0, "ntk_count": 1}
            for g, v in zip(m["gamma"], m["limit"], strict=True)
        ]
    return {"circle.csv": rows, "circle_seeds.csv": seeds} if rows else {}
