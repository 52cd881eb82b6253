"""Argument checks shared by the whole package: one message format, one set of rules.

Every check raises `InvalidValue`, a `ValueError` whose message names the argument, the value
and what is allowed:

    width=0 is not allowed: expected an integer ≥ 1

The library calls them with its argument names (`width`); the run-time schemas call the same
functions with full config keys (`model.width`), so a value is judged by one rule wherever it
is checked.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from numbers import Integral, Real
from typing import Any


class InvalidValue(ValueError):
    """A value outside what is allowed: `key`, `value` and `allowed` as in the message."""

    def __init__(self, key: str, value: Any, allowed: str) -> None:
        self.key, self.value, self.allowed = key, value, allowed
        super().__init__(f"{key}={value!r} is not allowed: expected {allowed}")


def is_int(value: Any) -> bool:
    """An integer (Python or numpy), not a bool."""
    return isinstance(value, Integral) and not isinstance(value, bool)


def is_real(value: Any) -> bool:
    """A finite real number (int or float), not a bool."""
    return isinstance(value, Real) and not isinstance(value, bool) and math.isfinite(value)


def check_int(key: str, value: Any, minimum: int = 1, maximum: int | None = None) -> int:
    """An integer in [minimum, maximum]."""
    allowed = f"an integer ≥ {minimum}" + ("" if maximum is None else f" and ≤ {maximum}")
    if not is_int(value) or value < minimum or (maximum is not None and value > maximum):
        raise InvalidValue(key, value, allowed)
    return int(value)


def check_nonnegative(key: str, value: Any) -> float:
    """A finite real number ≥ 0."""
    if not is_real(value) or value < 0:
        raise InvalidValue(key, value, "a finite number ≥ 0")
    return float(value)


def check_positive(key: str, value: Any) -> float:
    """A finite real number > 0."""
    if not is_real(value) or value <= 0:
        raise InvalidValue(key, value, "a finite number > 0")
    return float(value)


def check_fraction(key: str, value: Any) -> float:
    """A real number in [0, 1)."""
    if not is_real(value) or not 0 <= value < 1:
        raise InvalidValue(key, value, "a number in [0, 1)")
    return float(value)


def check_choice(key: str, value: Any, choices: Iterable[str]) -> str:
    """One of `choices`."""
    choices = tuple(choices)
    if not isinstance(value, str) or value not in choices:
        raise InvalidValue(key, value, f"one of {sorted(choices)}")
    return value
