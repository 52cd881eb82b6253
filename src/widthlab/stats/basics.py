"""Slopes, means and standard errors, peaks for display, grid minima and the bootstrap:
the measurements the verdicts (`widthlab.stats.verdicts`) are made from."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy import stats


@dataclass(frozen=True)
class SlopeFit:
    """y ≈ C·x^slope fitted by ordinary least squares on (log x, log y).

    `ci_low`/`ci_high` bound the slope at `level` (Student t with n − 2 degrees of freedom
    on the OLS standard error); `n` counts the points used (non-positive values are dropped,
    since they have no logarithm).
    """

    slope: float
    intercept: float
    ci_low: float
    ci_high: float
    stderr: float
    n: int
    level: float = 0.95

    def as_dict(self) -> dict[str, float]:
        """The fit's fields as a flat dict."""
        return asdict(self)


def loglog_slope(x: np.ndarray, y: np.ndarray, level: float = 0.95) -> SlopeFit:
    """Fit log y = intercept + slope·log x; every (x, y) pair is one point (seeds included)."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    keep = (x > 0) & (y > 0) & np.isfinite(x) & np.isfinite(y)
    lx, ly = np.log(x[keep]), np.log(y[keep])
    n = lx.size
    if n < 3 or np.ptp(lx) == 0:
        nan = float("nan")
        return SlopeFit(nan, nan, nan, nan, nan, int(n), level)
    fit = stats.linregress(lx, ly)
    half = stats.t.ppf(0.5 + level / 2, df=n - 2) * fit.stderr
    return SlopeFit(
        float(fit.slope),
        float(fit.intercept),
        float(fit.slope - half),
        float(fit.slope + half),
        float(fit.stderr),
        int(n),
        level,
    )


def slope_verdict(fit: dict[str, Any], reference: float | None) -> str | None:
    """ "agrees" when the fit's interval contains `reference`, "differs" when it does not,
    None without a reference or an interval."""
    low, high = fit.get("ci_low"), fit.get("ci_high")
    if (
        reference is None
        or low is None
        or high is None
        or not (math.isfinite(low) and math.isfinite(high))
    ):
        return None
    return "agrees" if low <= reference <= high else "differs"


def mean_and_se(values: Sequence[float]) -> tuple[float, float | None, int]:
    """(mean, standard error of the mean, count) of the finite values; SE is None below 2."""
    v = np.asarray([x for x in values if x is not None and math.isfinite(x)], dtype=np.float64)
    if v.size == 0:
        return float("nan"), None, 0
    se = float(v.std(ddof=1) / math.sqrt(v.size)) if v.size > 1 else None
    return float(v.mean()), se, int(v.size)


def z_score(mean: float, se: float | None, prediction: float) -> float | None:
    """(mean − prediction)/SE, or None when SE is missing or zero or a value is not finite."""
    if se is None or not se > 0 or not (math.isfinite(mean) and math.isfinite(prediction)):
        return None
    return float((mean - prediction) / se)


Z_FLAG = 3.0


def clearly_above(
    a: float, se_a: float | None, b: float, se_b: float | None, k: float
) -> bool | None:
    """a − b > k·√(SE_a² + SE_b²) (None without both standard errors): a display rule
    (`find_peak`), not a test."""
    if se_a is None or se_b is None:
        return None
    return bool(a - b > k * math.hypot(se_a, se_b))


@dataclass(frozen=True)
class Peak:
    """Where a curve over a sweep is highest, whether that is interior, and whether it is
    above both sides by more than `k` standard errors of the difference."""

    index: int
    interior: bool
    above_left: bool | None
    above_right: bool | None

    @property
    def shown(self) -> bool | None:
        """True: an interior peak clearly above both sides; False: none (an edge maximum or
        a bump within the noise); None: undecided (no standard errors)."""
        if not self.interior:
            return False
        if self.above_left is None or self.above_right is None:
            return None
        return self.above_left and self.above_right


def find_peak(means: Sequence[float], ses: Sequence[float | None], k: float) -> Peak:
    """The maximum of `means` (ordered along the sweep) judged against the lowest point on
    each side of it by `clearly_above` with `k` standard errors."""
    m = np.asarray(means, dtype=np.float64)
    i = int(np.nanargmax(m))
    interior = 0 < i < m.size - 1
    if not interior:
        return Peak(i, False, None, None)
    left = int(np.nanargmin(m[:i]))
    right = i + 1 + int(np.nanargmin(m[i + 1 :]))
    return Peak(
        i,
        True,
        clearly_above(m[i], ses[i], m[left], ses[left], k),
        clearly_above(m[i], ses[i], m[right], ses[right], k),
    )


@dataclass(frozen=True)
class GridMinimum:
    """The lowest point of a curve sampled on an evenly spaced grid (e.g. loss against
    log₂ learning rate): its index, its position refined by the parabola through it and its
    two neighbours (in grid steps: index + offset, |offset| ≤ ½; the index itself when a
    neighbour is missing), and whether it is interior to the grid."""

    index: int
    position: float
    interior: bool


def parabola_vertex(left: float, middle: float, right: float) -> float:
    """Where the parabola through (−1, left), (0, middle), (1, right) is lowest:
    (left − right) / (2 (left − 2·middle + right)), in [−½, ½] when `middle` is the lowest of
    the three (NaN when the three are collinear or the parabola opens downwards)."""
    curvature = left - 2.0 * middle + right
    if not curvature > 0:
        return math.nan
    return (left - right) / (2.0 * curvature)


def grid_minimum(scores: np.ndarray) -> GridMinimum | None:
    """The minimum over the grid of the mean over rows (seeds) of `scores` [seeds, grid].

    A grid point where any seed has a non-finite score (a diverged run) is unusable, so the
    minimum is taken over the points where every seed finished; its position is refined by
    `parabola_vertex` when both neighbours are usable. None when no point is.
    """
    scores = np.asarray(scores, dtype=np.float64)
    usable = np.all(np.isfinite(scores), axis=0)
    if not usable.any():
        return None
    mean = np.where(usable, np.where(usable, scores, 0.0).mean(axis=0), np.inf)
    index = int(np.argmin(mean))
    position = float(index)
    last = mean.size - 1
    if 0 < index < last and usable[index - 1] and usable[index + 1]:
        offset = parabola_vertex(mean[index - 1], mean[index], mean[index + 1])
        if math.isfinite(offset):
            position += offset
    return GridMinimum(index, position, 0 < index < last)


def bootstrap_interval(
    statistic: Callable[..., float],
    samples: Sequence[np.ndarray],
    n_boot: int = 2000,
    level: float = 0.95,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile bootstrap interval of `statistic(*samples)` by `scipy.stats.bootstrap`,
    each sample resampled along its first axis (its independent unit: the seeds of a width)
    independently of the others. The resampling runs over each sample's row indices, so a
    statistic of whole matrices (e.g. seeds × points of a curve) works; a resample with no
    spread (a ZeroDivisionError or a non-finite value) is left out of the quantiles."""
    arrays = [np.asarray(s) for s in samples]

    def on_rows(*index: np.ndarray) -> float:
        try:
            with np.errstate(divide="ignore", invalid="ignore"):
                value = float(statistic(*(a[i] for a, i in zip(arrays, index, strict=True))))
        except ZeroDivisionError:
            return math.nan
        return value if math.isfinite(value) else math.nan

    result = stats.bootstrap(
        tuple(np.arange(len(a)) for a in arrays),
        on_rows,
        n_resamples=n_boot,
        confidence_level=level,
        method="percentile",
        vectorized=False,
        paired=False,
        random_state=np.random.default_rng(seed),
    )
    values = np.asarray(result.bootstrap_distribution, dtype=np.float64)
    lo, hi = np.nanquantile(values, [(1 - level) / 2, (1 + level) / 2])
    return float(lo), float(hi)
