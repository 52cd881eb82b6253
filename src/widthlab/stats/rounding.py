"""Rounding of stored numbers and of numbers as printed with their uncertainty."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

STORED_DIGITS = 5  # significant digits of every number written to a committed result


def round_sig(x: Any, digits: int = STORED_DIGITS) -> Any:
    """`x` rounded to `digits` significant digits (ints, bools, None and non-finite kept)."""
    if isinstance(x, bool) or not isinstance(x, float) or not math.isfinite(x) or x == 0:
        return x
    return float(f"{x:.{digits - 1}e}")


# At most this, a float64 result of these studies is round-off: a KKT residual of an exact
# solve, the training error of an interpolating fit, the spread over seeds of a value every
# seed shares. Its digits, and even its decade, differ between machines (a KKT residual of
# 1e-12 on one CPU is 1e-11 on another; a training MSE of 4.76e-26, 4.28e-26): such a value
# is stored as this bound, read "≤ 1e-10", which no machine's rounding moves.
ROUND_OFF_BOUND = 1e-10


def round_decade(x: Any) -> Any:
    """A rounding-error residual as a bound that does not flip between machines:
    `ROUND_OFF_BOUND` when it is at most that, else its decade 10^⌈log₁₀ x⌉ (a residual that
    large is a result: its order of magnitude)."""
    if not isinstance(x, float) or not math.isfinite(x) or x <= 0:
        return x
    if x <= ROUND_OFF_BOUND:
        return ROUND_OFF_BOUND
    return float(10.0 ** math.ceil(math.log10(x)))


def round_off_floor(x: Any, digits: int = STORED_DIGITS) -> Any:
    """A number that is round-off only where it is tiny (a training error, zero up to rounding
    when the fit interpolates; a standard deviation over seeds of a value they share):
    `ROUND_OFF_BOUND` when 0 < x ≤ it, else `round_sig`."""
    if isinstance(x, float) and math.isfinite(x) and 0 < x <= ROUND_OFF_BOUND:
        return ROUND_OFF_BOUND
    return round_sig(x, digits)


def round_tree(
    obj: Any,
    digits: int = STORED_DIGITS,
    residual: Callable[[str], bool] | None = None,
    key: str = "",
    round_off: Callable[[str], bool] | None = None,
) -> Any:
    """Every float of a nested structure rounded by `round_sig`; by `round_decade` where
    `residual(key)` says the value is a round-off residual, by `round_off_floor` where
    `round_off(key)` says it is round-off when tiny."""
    if isinstance(obj, dict):
        return {k: round_tree(v, digits, residual, str(k), round_off) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [round_tree(v, digits, residual, key, round_off) for v in obj]
    if residual is not None and residual(key):
        return round_decade(obj)
    if round_off is not None and round_off(key):
        return round_off_floor(obj, digits)
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
