"""Statistics of sweeps: power-law slopes, standard errors, verdicts, rounding.

Every comparison the studies report goes through here, so every number compared with a
theory or a paper carries its uncertainty and a verdict decided by one stated rule:

* a mean over seeds carries its standard error SE = sd/√k (sample sd, ddof = 1, k seeds);
* a mean against a prediction gives z = (mean − prediction)/SE, flagged beyond |z| > 3;
* a fitted slope "agrees" with a paper's value when its 95% interval contains it, and
  "differs" otherwise;
* a peak is reported only when it is interior to the sweep and above both sides by more
  than `k` standard errors of the difference; a maximum at an end of the grid is
  "no interior peak".
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy import stats


# --------------------------------------------------------------------------------- slopes
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


# -------------------------------------------------------------------- means and z-scores
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
    """a − b > k·√(SE_a² + SE_b²) (None without both standard errors)."""
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
    """Percentile bootstrap interval of `statistic(*samples)`, each sample resampled along
    its first axis independently (e.g. the seeds of two widths)."""
    rng = np.random.default_rng(seed)
    values = np.empty(n_boot)
    with np.errstate(divide="ignore", invalid="ignore"):
        for b in range(n_boot):
            try:
                values[b] = statistic(*(s[rng.integers(0, len(s), len(s))] for s in samples))
            except ZeroDivisionError:  # a resample of identical seeds has no spread
                values[b] = np.nan
    values[~np.isfinite(values)] = np.nan
    lo, hi = np.nanquantile(values, [(1 - level) / 2, (1 + level) / 2])
    return float(lo), float(hi)


# ------------------------------------------------------------------------------ rounding
STORED_DIGITS = 5  # significant digits of every number written to a committed result


def round_sig(x: Any, digits: int = STORED_DIGITS) -> Any:
    """`x` rounded to `digits` significant digits (ints, bools, None and non-finite kept)."""
    if isinstance(x, bool) or not isinstance(x, float) or not math.isfinite(x) or x == 0:
        return x
    return float(f"{x:.{digits - 1}e}")


def round_decade(x: Any) -> Any:
    """A rounding-error residual stored as its decade, 10^⌈log₁₀ x⌉: its digits are noise
    (they differ between machines), its order of magnitude is the result."""
    if not isinstance(x, float) or not math.isfinite(x) or x <= 0:
        return x
    return float(10.0 ** math.ceil(math.log10(x)))


def round_tree(
    obj: Any,
    digits: int = STORED_DIGITS,
    residual: Callable[[str], bool] | None = None,
    key: str = "",
) -> Any:
    """Every float of a nested structure rounded by `round_sig`, or by `round_decade` where
    `residual(key)` says the value is a round-off residual."""
    if isinstance(obj, dict):
        return {k: round_tree(v, digits, residual, str(k)) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [round_tree(v, digits, residual, key) for v in obj]
    if residual is not None and residual(key):
        return round_decade(obj)
    return round_sig(obj, digits)


def digits_for(se: float | None, fallback: int = 3) -> int:
    """Decimal places that show a value to the precision its SE supports: the SE's first
    two significant digits (e.g. SE 0.033 → 3 places; SE 0.0012 → 4)."""
    if se is None or not math.isfinite(se) or se <= 0:
        return fallback
    return max(0, 1 - math.floor(math.log10(se)))


def with_uncertainty(value: float | None, se: float | None, fallback_sig: int = 3) -> str:
    """'0.359 ± 0.033' (value and SE at the SE's precision), or the value to `fallback_sig`
    significant digits when there is no SE."""
    if value is None or not math.isfinite(value):
        return "–"
    if se is None or not math.isfinite(se) or se <= 0:
        return f"{value:.{fallback_sig}g}"
    scale = max(abs(value), se)
    if scale < 1e-3 or scale >= 1e5:  # a shared power of ten keeps small numbers readable
        exponent = math.floor(math.log10(scale))
        inner = with_uncertainty(value / 10**exponent, se / 10**exponent, fallback_sig)
        return f"({inner})e{exponent}"
    places = digits_for(se)
    return f"{value:.{places}f} ± {se:.{places}f}"
