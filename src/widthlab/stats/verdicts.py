"""Tests, families, power and equivalence: how a measurement becomes a verdict (the rules
are in `widthlab.stats`'s docstring)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from scipy import stats

from widthlab.stats.basics import loglog_slope

ALPHA = 0.05  # every family's family-wise error rate


MIN_POWER = 0.80  # below it, a rule that misses its effect is inconclusive, not "differs"


SEED_LEVEL = 0.95


def holm(p_values: Sequence[float | None]) -> list[float]:
    """Holm-adjusted p-values, in the order given: the i-th smallest p (i from 0) times
    (m − i), made monotone, capped at 1 (None or NaN stays NaN and does not count in m).
    "differs" where the adjusted p is below α controls the family-wise error at α under any
    dependence between the tests (Holm 1979)."""
    indexed = sorted((p, i) for i, p in enumerate(p_values) if p is not None and math.isfinite(p))
    m = len(indexed)
    adjusted = [math.nan] * len(p_values)
    running = 0.0
    for rank, (p, i) in enumerate(indexed):
        running = max(running, min(1.0, (m - rank) * p))
        adjusted[i] = running
    return adjusted


def judge_family(
    tests: Sequence[dict[str, Any]], name: str, alpha: float = ALPHA
) -> dict[str, Any]:
    """Judge a family of tests together (module docstring), in place: each test with a
    p-value gets `family`, `holm_p` and its verdict, "differs" where `holm_p` < α and
    "agrees" otherwise, unless it is already "inconclusive (…)" (an underpowered rule that
    saw no effect: not counted in m). Returns the family's entry for the summary: its name,
    method, α, size m, the level the smallest p must beat (α/m) and how many differ."""
    counted = [
        t
        for t in tests
        if t.get("p") is not None and not str(t.get("verdict", "")).startswith("inconclusive")
    ]
    adjusted = holm([t["p"] for t in counted])
    for test, p in zip(counted, adjusted, strict=True):
        test.update(family=name, holm_p=p)
        if math.isfinite(p):
            test["verdict"] = "differs" if p < alpha else "agrees"
    for test in tests:
        test.setdefault("family", name)
    m = len(counted)
    return {
        "family": name,
        "method": "holm",
        "alpha": alpha,
        "size": m,
        "first_level": alpha / m if m else None,
        "differ": sum(t.get("verdict") == "differs" for t in counted),
    }


def seed_slope(
    x: Sequence[float], y: Sequence[float], seeds: Sequence[Any], level: float = SEED_LEVEL
) -> dict[str, Any]:
    """The log-log slope of y against x with an interval whose independent unit is the seed.

    The points of one seed are not independent (they share its draws: the same data, the
    nested features of one draw, the parameters of one network followed along training), so
    the interval does not come from the pooled fit's residuals. Each seed's own OLS slope is
    one independent measurement; with k seeds, SE = sd(seed slopes)/√k and the interval is
    slope ± t(k − 1)·SE (Student t, exact for normal seed slopes, valid for any number of
    seeds ≥ 2). `slope` is the pooled OLS slope over every point, which equals the mean of
    the seed slopes when every seed has every x. The pooled fit's own interval, which counts
    every point as independent, is kept as `ols_ci_low`/`ols_ci_high` for comparison.
    Non-positive or non-finite points are dropped (no logarithm)."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    labels = np.asarray([str(s) for s in seeds], dtype=object)
    keep = (x > 0) & (y > 0) & np.isfinite(x) & np.isfinite(y)
    x, y, labels = x[keep], y[keep], labels[keep]
    pooled = loglog_slope(x, y, level)
    per_seed = []
    for name in sorted(set(labels), key=str):
        mine = labels == name
        if np.unique(x[mine]).size >= 2:
            per_seed.append(_slope(x[mine], y[mine]))
    k = len(per_seed)
    se = float(np.std(per_seed, ddof=1) / math.sqrt(k)) if k >= 2 else math.nan
    half = float(stats.t.ppf(0.5 + level / 2, k - 1) * se) if k >= 2 else math.nan
    return {
        "slope": pooled.slope,
        "intercept": pooled.intercept,
        "ci_low": pooled.slope - half,
        "ci_high": pooled.slope + half,
        "stderr": se,
        "dof": k - 1,
        "seeds": k,
        "n": pooled.n,
        "level": level,
        "interval": "seeds",
        "ols_ci_low": pooled.ci_low,
        "ols_ci_high": pooled.ci_high,
        "ols_stderr": pooled.stderr,
        "per_seed_slope_mean": float(np.mean(per_seed)) if per_seed else None,
        "per_seed_slope_std": float(np.std(per_seed, ddof=1)) if k > 1 else None,
    }


def t_p_value(
    estimate: float, stderr: float, reference: float, dof: int, side: str = "two"
) -> float | None:
    """p-value of `estimate` (SE `stderr`, Student t with `dof`) against `reference`:
    `side` "two" (≠), "above" (the claim is estimate ≤ reference: small p when the estimate
    lies clearly above it) or "below" (the claim is estimate ≥ reference). One-sided
    p-values are doubled, so that "p < 0.05" says the same as "the 95% two-sided interval
    lies wholly on one side", the interval the report prints."""
    if not (math.isfinite(estimate) and math.isfinite(stderr) and stderr > 0 and dof > 0):
        return None
    t = (estimate - reference) / stderr
    if side == "two":
        return float(2.0 * stats.t.sf(abs(t), dof))
    tail = stats.t.sf(t, dof) if side == "above" else stats.t.cdf(t, dof)
    return float(min(1.0, 2.0 * tail))


def slope_test(fit: dict[str, Any], reference: float, claim: str = "equals") -> dict[str, Any]:
    """The test of a fitted slope (`seed_slope`) against a paper's value, in place: `claim`
    "equals" (the exponent is `reference`), "at_most" (a bound: the quantity decays at least
    as fast as width^reference; only a slope clearly above it contradicts it). Sets
    `reference`, `claim`, `p` and the unadjusted verdict; `judge_family` then decides."""
    side = {"equals": "two", "at_most": "above"}[claim]
    p = t_p_value(fit["slope"], fit.get("stderr", math.nan), reference, fit.get("dof", 0), side)
    fit.update(reference=reference, claim=claim, p=p)
    fit["verdict"] = None if p is None else ("differs" if p < ALPHA else "agrees")
    return fit


def t_power(effect: float, stderr: float, dof: float) -> float | None:
    """Power of the one-sided rule "t = estimate/SE above the two-sided 95% critical value"
    (the doubled one-sided p below 0.05) when the true value is `effect`: P(T > t_crit) for T
    noncentral t with `dof` degrees of freedom and noncentrality effect/SE."""
    if not (math.isfinite(stderr) and stderr > 0 and dof > 0 and math.isfinite(effect)):
        return None
    return float(stats.nct.sf(stats.t.ppf(1 - ALPHA / 2, dof), dof, effect / stderr))


def welch(
    mean_a: float, se_a: float | None, n_a: int, mean_b: float, se_b: float | None, n_b: int
) -> tuple[float, float, float] | None:
    """(difference a − b, its SE, Welch–Satterthwaite degrees of freedom) of two means with
    their standard errors over n_a and n_b seeds; None without both SEs."""
    if se_a is None or se_b is None or n_a < 2 or n_b < 2:
        return None
    va, vb = se_a**2, se_b**2
    se = math.sqrt(va + vb)
    if not se > 0:
        return None
    dof = (va + vb) ** 2 / (va**2 / (n_a - 1) + vb**2 / (n_b - 1))
    return mean_a - mean_b, se, dof


def peak_candidate(means: Sequence[float], inside: Sequence[int]) -> int | None:
    """Which point of a curve (ordered along the sweep) to test as its peak, among the
    indices `inside` a band: the one whose mean rises most above the lowest mean before it,
    or, where none rises (a curve falling through the band), the highest in the band. None
    when the band holds no point."""
    if not inside:
        return None

    def rise(i: int) -> float:
        return means[i] - min(means[:i]) if i else -math.inf

    best = max(inside, key=rise)
    return best if rise(best) > 0 else max(inside, key=lambda i: means[i])


def peak_test(
    means: Sequence[float],
    ses: Sequence[float | None],
    counts: Sequence[int],
    effect: float | None,
    index: int | None = None,
) -> dict[str, Any]:
    """Whether a curve over a sweep has a peak: its maximum (or the point `index`) above
    the lowest point on each side of it.

    Each side is a one-sided Welch t-test of "peak − side > 0"; the peak shows when both
    reject at α (an intersection–union test: no correction is needed for requiring both).
    `p` is the larger one-sided p, doubled as `t_p_value` does. A maximum at an end of the
    grid is no interior peak ("differs"). Where the peak does not show, the rule states its
    power against the peak it looks for, `effect` above each side (the product of the two
    sides' noncentral-t powers at the observed SEs, the sides taken as independent): below
    `MIN_POWER`, too few seeds to tell, "inconclusive (k seeds)"."""
    m = np.asarray(means, dtype=np.float64)
    i = int(np.nanargmax(m)) if index is None else int(index)
    out: dict[str, Any] = {"index": i, "interior": bool(0 < i < m.size - 1), "effect": effect}
    if not out["interior"]:
        out.update(shows=False, verdict="differs", p=None)
        return out
    sides, power = {}, 1.0
    for name, side in (("left", range(i)), ("right", range(i + 1, m.size))):
        j = min(side, key=lambda s: m[s])
        test = welch(m[i], ses[i], counts[i], m[j], ses[j], counts[j])
        if test is None:
            out.update(shows=None, verdict=None, p=None)
            return out
        diff, se, dof = test
        p = float(min(1.0, 2.0 * stats.t.sf(diff / se, dof)))
        pw = t_power(effect, se, dof) if effect is not None else None
        power = power * pw if pw is not None and power is not None else None
        sides[name] = {"index": j, "difference": diff, "se": se, "dof": dof, "p": p, "power": pw}
    p = max(s["p"] for s in sides.values())
    shows = p < ALPHA
    seeds = min(int(c) for c in counts)
    verdict = "agrees" if shows else power_verdict("differs", power, seeds)
    out.update(sides=sides, p=p, shows=shows, power=power, verdict=verdict, seeds=seeds)
    return out


def flatness(fit: Mapping[str, Any], tolerance: float) -> str | None:
    """Whether a fitted slope is flat within ±`tolerance`, judged by its 95% interval (an
    equivalence test, two one-sided tests at 2.5% each): "flat" when the whole interval
    lies inside [−tolerance, tolerance], "not flat" when it lies wholly outside, and
    "undecided" when it straddles an edge (too few seeds, or a slope near the tolerance);
    None without an interval."""
    low, high = fit.get("ci_low"), fit.get("ci_high")
    if low is None or high is None or not (math.isfinite(low) and math.isfinite(high)):
        return None
    if -tolerance <= low and high <= tolerance:
        return "flat"
    if high < -tolerance or low > tolerance:
        return "not flat"
    return "undecided"


def flat_claim(classes: Sequence[str | None], prediction: str, seeds: int) -> str | None:
    """The verdict on "these quantities are flat" (`prediction` "flat": all of them) or "not
    flat" (at least one is not) from their `flatness`: "agrees" or "differs" where the
    intervals decide it, "inconclusive (k seeds)" where an undecided one could swing it."""
    if not classes or any(c is None for c in classes):
        return None
    if prediction == "flat":
        if all(c == "flat" for c in classes):
            return "agrees"
        return "differs" if "not flat" in classes else f"inconclusive ({seeds} seeds)"
    if "not flat" in classes:
        return "agrees"
    return "differs" if all(c == "flat" for c in classes) else f"inconclusive ({seeds} seeds)"


def binomial_p_value(count: int, trials: int, p: float) -> float:
    """Exact two-sided binomial p-value of `count` successes in `trials` against a success
    probability `p` (`scipy.stats.binomtest`); at p = 0 or 1 a count is either exactly right
    (1) or impossible (0)."""
    if p <= 0.0 or p >= 1.0:
        return 1.0 if count == round(p * trials) else 0.0
    return float(stats.binomtest(count, trials, p).pvalue)


def z_p_value(z: float | None) -> float | None:
    """Two-sided p-value of a standard normal z."""
    if z is None or not math.isfinite(z):
        return None
    return float(2.0 * stats.norm.sf(abs(z)))


def mean_test(mean: float, se: float | None, count: int, reference: float) -> dict[str, Any]:
    """A mean over `count` seeds (SE `se`) against a prediction: t = (mean − reference)/SE
    with count − 1 degrees of freedom, its two-sided p and unadjusted verdict."""
    out: dict[str, Any] = {"reference": reference}
    if se is None or not se > 0 or count < 2 or not math.isfinite(mean):
        return {**out, "p": None, "verdict": None}
    t = (mean - reference) / se
    p = float(2.0 * stats.t.sf(abs(t), count - 1))
    return {
        **out,
        "t": float(t),
        "dof": count - 1,
        "p": p,
        "verdict": "differs" if p < ALPHA else "agrees",
    }


def _slope(x: np.ndarray, y: np.ndarray) -> float:
    lx, ly = np.log(x), np.log(y)
    lx = lx - lx.mean()
    return float((lx * (ly - ly.mean())).sum() / (lx * lx).sum())


def power_verdict(verdict: str | None, power: float | None, seeds: int) -> str | None:
    """`verdict`, except that a "differs" (an effect not seen) by a rule below `MIN_POWER`
    against the effect it looks for is "inconclusive (k seeds)"."""
    if verdict == "differs" and power is not None and power < MIN_POWER:
        return f"inconclusive ({seeds} seeds)"
    return verdict


def count_verdicts(tests: Sequence[Mapping[str, Any]]) -> dict[str, int]:
    """How many tests were decided (agree or differ) and how many were inconclusive."""
    verdicts = [str(t.get("verdict")) for t in tests if t.get("verdict")]
    return {
        "comparisons": sum(not v.startswith("inconclusive") for v in verdicts),
        "agree": sum(v == "agrees" for v in verdicts),
        "inconclusive": sum(v.startswith("inconclusive") for v in verdicts),
    }
