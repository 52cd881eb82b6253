"""Why a slope differs from a paper's exponent: local slopes, their trend, and a fit with a
finite-width correction (`explain_slope`)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy import stats

from widthlab.stats.basics import loglog_slope
from widthlab.stats.verdicts import SEED_LEVEL


def local_slopes(
    widths: Sequence[float], per_seed: Sequence[Sequence[float]], level: float = SEED_LEVEL
) -> list[dict[str, float]]:
    """The slope of log value against log width between each pair of successive widths,
    of the mean over seeds of the per-seed values (`per_seed[s][i]`: seed s at widths[i]),
    with a t interval over the seeds' own local slopes: how the exponent runs with width (a
    pre-asymptotic fit drifts towards its limit as the widths grow)."""
    w = np.asarray(widths, dtype=np.float64)
    v = np.asarray(per_seed, dtype=np.float64)
    order = np.argsort(w)
    w, v = w[order], v[:, order]
    pairs = []
    for i in range(len(w) - 1):
        a, b = v[:, i], v[:, i + 1]
        ok = (a > 0) & (b > 0)
        if ok.sum() < 1 or not w[i + 1] > w[i]:
            continue
        step = math.log(w[i + 1] / w[i])
        mean = math.log(b[ok].mean() / a[ok].mean()) / step
        seeds = np.log(b[ok] / a[ok]) / step
        k = int(ok.sum())
        se = float(seeds.std(ddof=1) / math.sqrt(k)) if k > 1 else math.nan
        half = float(stats.t.ppf(0.5 + level / 2, k - 1) * se) if k > 1 else math.nan
        pairs.append(
            {
                "from": float(w[i]),
                "to": float(w[i + 1]),
                "slope": mean,
                "ci_low": mean - half,
                "ci_high": mean + half,
                "seeds": k,
            }
        )
    return pairs


def corrected_power_law(
    widths: Sequence[float], values: Sequence[float]
) -> dict[str, float] | None:
    """Fit value = a·n^p·(1 + b/n) by least squares on log value: a power law with its
    leading finite-width correction. For each b on a grid (b > −min n, so every factor is
    positive) (log a, p) is an OLS fit; the b with the least squared error wins. Returns the
    exponent p once the 1/n correction is taken out, b and a; None with fewer than 4
    distinct widths (three parameters need a fourth point to leave a residual)."""
    w, v = np.asarray(widths, dtype=np.float64), np.asarray(values, dtype=np.float64)
    keep = (w > 0) & (v > 0) & np.isfinite(v)
    w, v = w[keep], v[keep]
    if len(np.unique(w)) < 4:
        return None
    best = None
    grid = np.concatenate(
        [-np.geomspace(w.min() * 0.95, 1e-3, 200), [0.0], np.geomspace(1e-3, 1e2 * w.max(), 400)]
    )
    design = np.column_stack([np.ones_like(w), np.log(w)])
    for b in grid:
        target = np.log(v) - np.log1p(b / w)
        coef = np.linalg.lstsq(design, target, rcond=None)[0]
        error = float(((design @ coef - target) ** 2).sum())
        if best is None or error < best[0]:
            best = (error, float(coef[1]), float(b), float(math.exp(coef[0])))
    _, p, b, a = best
    return {"exponent": p, "b": b, "a": a}


def explain_slope(
    widths: Sequence[float],
    per_seed: Sequence[Sequence[float]],
    reference: float,
    claim: str = "equals",
    level: float = SEED_LEVEL,
) -> dict[str, Any]:
    """Why a slope differs from `reference`, from the pipeline's own numbers: the local
    slopes between successive widths (`local_slopes`), their trend with width (each seed's
    local slopes regressed on the log of the pairs' mid-widths, a t interval over the seeds:
    does the exponent run towards `reference`?), and the exponent of a fit with a
    finite-width correction (`corrected_power_law`: on the mean curve, with a t interval over
    the seeds' own corrected exponents). `claim` as in `slope_test` ("at_most": only a slope
    above `reference` contradicts it). The verdict:

    * "pre-asymptotic": the local slopes run significantly towards `reference` and the
      widest pair's interval reaches it; or the corrected exponent's interval reaches it and
      is narrow enough to have told it from the plain slope;
    * "real": the local slopes do not run towards `reference`, the widest pair's interval
      stays clear of it, and no informative corrected fit reaches it (a corrected exponent
      too uncertain to tell the plain slope from `reference` counts neither way);
    * "unresolved": anything else (the evidence points both ways, or is too noisy).
    """
    w = np.asarray(widths, dtype=np.float64)
    v = np.asarray(per_seed, dtype=np.float64)
    local = local_slopes(w, v, level)
    mean_curve = np.nanmean(np.where(v > 0, v, np.nan), axis=0)
    plain = loglog_slope(w, mean_curve).slope
    corrected = corrected_power_law(w, mean_curve)
    seeds = [corrected_power_law(w, row) for row in v]
    exps = np.asarray([s["exponent"] for s in seeds if s is not None], dtype=np.float64)
    if corrected is not None and exps.size >= 2:
        se = float(exps.std(ddof=1) / math.sqrt(exps.size))
        half = float(stats.t.ppf(0.5 + level / 2, exps.size - 1) * se)
        corrected.update(ci_low=corrected["exponent"] - half, ci_high=corrected["exponent"] + half)
    trend = _local_trend(w, v, level)

    def reaches(low: float, high: float) -> bool:
        if not (math.isfinite(low) and math.isfinite(high)):
            return False
        return low <= reference if claim == "at_most" else low <= reference <= high

    out: dict[str, Any] = {
        "reference": reference,
        "local_slopes": local,
        "trend": trend,
        "corrected": corrected,
    }
    if not local:
        out.update(verdict="unresolved", reason="fewer than two widths")
        return out
    first, last = local[0], local[-1]
    toward = 1.0 if reference > np.mean([p["slope"] for p in local]) else -1.0
    towards = trend is not None and (trend["ci_low"] > 0 if toward > 0 else trend["ci_high"] < 0)
    last_reaches = reaches(last["ci_low"], last["ci_high"])
    c_low = corrected.get("ci_low", math.nan) if corrected else math.nan
    c_high = corrected.get("ci_high", math.nan) if corrected else math.nan
    corr_reaches = reaches(c_low, c_high)
    informative = math.isfinite(c_high - c_low) and (c_high - c_low) / 2 < abs(plain - reference)
    span = f"{num(first['from'])}→{num(first['to'])} … {num(last['from'])}→{num(last['to'])}"
    run = f"local slopes {first['slope']:.2f} … {last['slope']:.2f} ({span})"
    if trend is not None:
        run += (
            f", trend {trend['per_doubling']:+.3f} per doubling "
            f"[{trend['ci_low']:+.3f}, {trend['ci_high']:+.3f}]"
        )
    corr = (
        f"corrected exponent {corrected['exponent']:.2f} [{c_low:.2f}, {c_high:.2f}]"
        if corrected is not None
        else "no corrected fit (fewer than 4 widths)"
    )
    if (towards and last_reaches) or (corr_reaches and informative):
        verdict = "pre-asymptotic"
        why = (
            "the exponent runs towards the limit"
            if towards and last_reaches
            else "consistent with the limit once the 1/width correction is fitted"
        )
    elif not towards and not last_reaches and not (corr_reaches and informative):
        verdict, why = "real", "the exponent holds steady, clear of the limit"
    else:
        verdict, why = "unresolved", "the evidence points both ways or is too noisy"
    out.update(verdict=verdict, reason=f"{run}; {corr}: {why}")
    return out


def _local_trend(w: np.ndarray, v: np.ndarray, level: float) -> dict[str, float] | None:
    """How the local slopes change per doubling of width: each seed's local slopes against
    log₂ of the pairs' geometric mid-widths, its OLS slope; mean and t interval over seeds.
    None with fewer than three pairs or two seeds."""
    order = np.argsort(w)
    w, v = w[order], v[:, order]
    if w.size < 4:
        return None
    mids = np.log2(np.sqrt(w[1:] * w[:-1]))
    trends = []
    for row in v:
        if np.all(row > 0):
            local = np.diff(np.log(row)) / np.diff(np.log(w))
            trends.append(float(np.polyfit(mids, local, 1)[0]))
    if len(trends) < 2:
        return None
    mean = float(np.mean(trends))
    half = float(
        stats.t.ppf(0.5 + level / 2, len(trends) - 1)
        * np.std(trends, ddof=1)
        / math.sqrt(len(trends))
    )
    return {"per_doubling": mean, "ci_low": mean - half, "ci_high": mean + half}


def num(x: float) -> str:
    """A width as printed in a reason: an integer without '.0'."""
    return str(int(x)) if float(x).is_integer() else f"{x:g}"
