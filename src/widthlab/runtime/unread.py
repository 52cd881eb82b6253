"""Command-line values a study would not read: refused before any work, never ignored.

A study's job reads some of the keys of its config groups and not others: the kernels of
`ntk_convergence` come from networks it builds itself (`model._target_` is never read), the
circle job draws its own widths and seeds (`model.width`, `seed`), `lazy_training` derives
its step size from `study.lr_fraction` (`train.lr`). Each job kind lists the keys it never
reads (`Job.ignores`, checked against the keys the smoke pipeline's records read in
tests/test_unread.py). A key set on the command line that a job ignores would change
nothing but the record's claim, so `check_unread` refuses it with one line:

    error: model._target_='torch.nn.Linear' is not allowed: expected no value: the kernels
    job of ntk_convergence does not read model._target_ (a value set here would change nothing)

A study's stage passes its command line to every sweep, and a key one sweep reads another
may ignore (`model.width`: read by the kernels sweep, not by the circle sweep); the stage
checks its overrides against every job kind of the study (`STAGE_KEYS`), and each sweep
skips those.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from widthlab.runtime.errors import ConfigError

# Keys the running stage has checked against every job of its study (`runtime.stage`).
STAGE_KEYS: set[str] = set()


def command_line_values(lines: Iterable[str], groups: Iterable[str] = ()) -> dict[str, str]:
    """{key: value as typed} of the value overrides among Hydra override `lines`: the
    choices of config `groups` (`data=digits`), `hydra.*`, deletions and malformed lines
    left out."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    out: dict[str, str] = {}
    groups = set(groups)
    parser = OverridesParser.create()
    for line in lines:
        try:
            override = parser.parse_overrides([str(line)])[0]
        except Exception:  # Hydra reports what it cannot parse
            continue
        key = override.key_or_group
        if override.is_delete() or override.is_hydra_override() or "/" in key or key in groups:
            continue
        out[key] = line.split("=", 1)[1] if "=" in line else ""
    return out


def ignored_by(key: str, ignores: Iterable[str]) -> bool:
    """Whether `key` is, or lies under, one of the `ignores` (`model.width` under `model`)."""
    return any(key == p or key.startswith(p + ".") for p in ignores)


def check_unread(
    study: Any,
    name: str,
    kinds: Iterable[str],
    values: Mapping[str, str],
    skip: Iterable[str] = (),
) -> None:
    """`ConfigError` for the first key of `values` (typed on the command line) that every
    job kind in `kinds` of `study` (named `name`) ignores; group choices (`data=digits`) are
    not keys."""
    kinds = sorted(set(kinds))
    skip = set(skip)
    for key, value in values.items():
        if key in skip or not kinds:
            continue
        if all(ignored_by(key, study.job(kind).ignores) for kind in kinds):
            jobs = kinds[0] if len(kinds) == 1 else f"{', '.join(kinds[:-1])} and {kinds[-1]}"
            raise ConfigError(
                key,
                _shown(value),
                f"no value: the {jobs} job{'s' if len(kinds) > 1 else ''} of {name} "
                f"{'do' if len(kinds) > 1 else 'does'} not read {key} (a value set here "
                "would change nothing; leave it out)",
            )


def _shown(value: str) -> Any:
    """The typed value as the error line shows it: a number as a number."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    try:
        return OverridesParser.create().parse_override(f"k={value}").value()
    except Exception:
        return value


def task_overrides() -> tuple[list[str], list[str]]:
    """The command line's overrides of the Hydra run this process is in, and its config
    groups (none outside one)."""
    try:
        from hydra.core.hydra_config import HydraConfig

        config = HydraConfig.get()
        return list(config.overrides.task), list(config.runtime.choices)
    except Exception:  # no Hydra run (a test calling a job directly)
        return [], []
