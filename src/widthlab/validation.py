"""Checks of configuration values that fail fast with one line: the key, the value, what is allowed.

Every check raises `ConfigError`, a `ValueError` whose message reads

    data.n_train=-5 is not allowed: expected an integer ≥ 1

so the entry points can print it as it is and stop before any work or any file is written.
"""

from __future__ import annotations

import math
from numbers import Integral, Real
from typing import Any


class ConfigError(ValueError):
    """A configuration value outside what is allowed."""

    def __init__(self, key: str, value: Any, allowed: str) -> None:
        self.key, self.value, self.allowed = key, value, allowed
        super().__init__(f"{key}={value!r} is not allowed: expected {allowed}")


def _is_int(value: Any) -> bool:
    return isinstance(value, Integral) and not isinstance(value, bool)


def _is_real(value: Any) -> bool:
    return isinstance(value, Real) and not isinstance(value, bool) and math.isfinite(value)


def check_positive_int(key: str, value: Any, minimum: int = 1, maximum: int | None = None) -> int:
    """An integer in [minimum, maximum]."""
    allowed = f"an integer ≥ {minimum}" + ("" if maximum is None else f" and ≤ {maximum}")
    if not _is_int(value) or value < minimum or (maximum is not None and value > maximum):
        raise ConfigError(key, value, allowed)
    return int(value)


def check_nonnegative(key: str, value: Any) -> float:
    """A finite real number ≥ 0."""
    if not _is_real(value) or value < 0:
        raise ConfigError(key, value, "a finite number ≥ 0")
    return float(value)


def check_positive(key: str, value: Any) -> float:
    """A finite real number > 0."""
    if not _is_real(value) or value <= 0:
        raise ConfigError(key, value, "a finite number > 0")
    return float(value)


def check_fraction(key: str, value: Any) -> float:
    """A real number in [0, 1)."""
    if not _is_real(value) or not 0 <= value < 1:
        raise ConfigError(key, value, "a number in [0, 1)")
    return float(value)


def check_choice(key: str, value: Any, choices: list[str] | tuple[str, ...]) -> str:
    """One of `choices`."""
    if value not in choices:
        raise ConfigError(key, value, f"one of {sorted(choices)}")
    return value


def exit_on_config_error(task):
    """Wrap a Hydra task so a `ConfigError` (or a missing or corrupted data file, which every
    other job would meet too) prints its one line and exits with status 2.

    `SystemExit` passes through Hydra's error reporting, so the user sees
    `error: data.n_train=-5 is not allowed: expected an integer ≥ 1` instead of a traceback,
    and a multirun stops at once instead of running every other job with the same mistake.
    """
    import functools
    import sys

    from widthlab.data import DataFileError

    @functools.wraps(task)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        try:
            return task(*args, **kwargs)
        except (ConfigError, DataFileError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            raise SystemExit(2) from None

    return wrapped
