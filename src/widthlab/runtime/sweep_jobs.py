"""A multirun's jobs: Hydra's expansion of its overrides into every job's overrides and config.

The sweeper's params (`hydra.sweeper.params`, a study's sweep) come first, then the command
line's overrides, expanded as Hydra's basic sweeper expands them (ranges, choices, config
group sweeps); `runtime.sweep` checks and plans the jobs.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

from omegaconf import DictConfig, OmegaConf

from widthlab.runtime.errors import ConfigError


def sweep_overrides(config: DictConfig) -> list[str]:
    """The multirun's overrides: the sweeper's params, then the command line's."""
    params = OmegaConf.select(config, "hydra.sweeper.params", default=None) or {}
    lines = [f"{k}={v}" for k, v in params.items()]
    return lines + list(OmegaConf.select(config, "hydra.overrides.task", default=[]) or [])


def job_overrides(config: DictConfig) -> list[list[str]]:
    """Every job's override list, as Hydra's basic sweeper expands them."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parser = OverridesParser.create()
    parsed = parser.parse_overrides(sweep_overrides(config))
    for override in parsed:
        if override.is_sweep_override() and not list(override.sweep_string_iterator()):
            shown = override.input_line.partition("=")[2]
            raise ConfigError(override.key_or_group, shown, "a sweep with at least one value")
    batches = BasicSweeper.split_arguments(parsed, max_batch_size=None)
    return [list(job) for batch in batches for job in batch]


def compose_jobs(config: DictConfig) -> list[DictConfig]:
    """Every job's config (`_jobs`), each its own copy."""
    return list(_jobs(config, lambda job: copy.deepcopy(job)))


def resolved_jobs(config: DictConfig) -> list[dict[str, Any]]:
    """Every job's resolved config as plain containers (`schemas.resolved_config`): what
    the checks and the plans read, ~3× faster than copying each job's config."""
    from widthlab.runtime.schemas import resolved_config

    return list(_jobs(config, resolved_config))


def _jobs(config: DictConfig, out: Any) -> Iterator[Any]:
    """`out(job config)` for every job of the multirun `config`. The multirun's config
    already has the command line's fixed overrides applied, but not the sweeper's params
    (swept or single-valued: a profile's one-width list is a plain value); those are applied
    to one copy of it in turn (every job sets the same keys, so nothing of the job before
    stays), unless the sweep runs over a config group, whose jobs Hydra composes itself."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parser = OverridesParser.create()
    params = OmegaConf.select(config, "hydra.sweeper.params", default=None) or {}
    swept = set(swept_values(config)) | set(params)
    task = OmegaConf.masked_copy(config, [k for k in config if k != "hydra"])
    groups = set(OmegaConf.select(config, "hydra.runtime.choices", default={}) or {})
    for overrides in job_overrides(config):
        parsed = [o for o in parser.parse_overrides(overrides) if o.key_or_group in swept]
        if any(o.key_or_group in groups or o.is_add() or o.is_delete() for o in parsed):
            from hydra.core.global_hydra import GlobalHydra

            loader = GlobalHydra.instance().config_loader()
            composed = loader.load_sweep_config(config, overrides)
            yield out(OmegaConf.masked_copy(composed, [k for k in composed if k != "hydra"]))
            continue
        for o in parsed:
            OmegaConf.update(task, o.key_or_group, o.value(), merge=False, force_add=True)
        yield out(task)


def swept_values(config: DictConfig) -> dict[str, list[str]]:
    """{key: [values]} of every override that sweeps (what varies between the jobs)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parsed = OverridesParser.create().parse_overrides(sweep_overrides(config))
    return {
        o.key_or_group: list(o.sweep_string_iterator()) for o in parsed if o.is_sweep_override()
    }


def sweep_definition(config: DictConfig) -> dict[str, list[str]]:
    """{key: [values]} of the sweeper's params (one value or several) and of the command
    line's sweeps: the sweep as its config defines it, resolved."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    params = OmegaConf.select(config, "hydra.sweeper.params", default=None) or {}
    parser = OverridesParser.create()
    out = {}
    for o in parser.parse_overrides([f"{k}={v}" for k, v in params.items()]):
        out[o.key_or_group] = (
            list(o.sweep_string_iterator())
            if o.is_sweep_override()
            else [o.get_value_element_as_str()]
        )
    return {**out, **swept_values(config)}
