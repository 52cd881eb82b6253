"""Hydra's joblib launcher, composing the jobs of a sweep from a template job.

Hydra's joblib launcher composes every job in its worker from the config files
(`ConfigLoader.load_sweep_config`: the defaults list, ~50 YAML files, their merge): about
0.12 s a job on a laptop core, two thirds of what a small job costs beyond its own work (a
`ntk_convergence` sweep has 240 jobs). The jobs of a sweep differ only in the swept values.
`JoblibTemplateLauncher` launches exactly as `JoblibLauncher` does, with a config loader
that keeps, in each worker process, the first job it composes of a sweep as a template. A
later job of the same sweep whose overrides differ from the template's only in plain values
is the template with those values applied as Hydra applies a value override
(`OmegaConf.update(..., merge=True)`), and with `hydra.overrides.task` and
`hydra.job.override_dirname` written as Hydra writes them (`override_dirname`). Only Hydra's
public API is used here; the private modules the sweeper needs are named, with the versions
they were checked against, in `hydra_plugins.widthlab_sweeper`. A plain value is `key=value` with a
scalar value (a dict would merge into the template's), for a key that is not a config group,
not under `hydra`, and neither inside nor around another value override's key. Any other job (a
config-group sweep such as `data=a,b`, `+key=…`, `~key`) is composed by Hydra, as before.
tests/test_launcher.py checks the result against Hydra's own composition, job by job, for
every study sweep.

Jobs start longest first. On two cores a sweep whose widest jobs come last (the sweep's own
order: widths ascending) ends with one of them running alone: the laptop `double_descent_mlp`
squared-loss sweep ran its third width-1333 job (30 s) while the other core idled. The
launcher's `largest_first` keys (cores.yaml: `model.width`, then `model.depth`) order the
jobs by those swept values, descending (stable; a job without a plain number for a key comes
after those with one), which is the longest-processing-time-first rule with the width as the
estimate of a job's time. Only the order of starting changes: every job gets the same config
(the job number, `hydra.job.num`, is its place in the launch order), and the results come
back in the sweep's order, as Hydra's launchers return them.

Hydra finds launchers in the `hydra_plugins` namespace package; conf/hydra/launcher/
cores.yaml selects this one, through the config `joblib_template` (`config.py`).
"""

from __future__ import annotations

import copy
import hashlib
import math
import os
from collections.abc import Sequence
from typing import Any, NamedTuple

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override
from hydra.errors import ConfigCompositionException
from hydra.types import HydraContext
from hydra_plugins.hydra_joblib_launcher.joblib_launcher import JoblibLauncher
from omegaconf import DictConfig, OmegaConf, open_dict
from omegaconf.errors import ConfigAttributeError, ConfigKeyError

# Per process (a joblib worker, or the launching process when n_jobs=1): sweep key → template.
# Hydra's plugin scan executes this module again, in the same module object, whenever a job
# in a worker looks up its plugins: the templates already made are kept.
_TEMPLATES: dict[str, Template] = globals().get("_TEMPLATES", {})
_KEEP = 4  # templates kept: a stage runs its sweeps one after another


class Template(NamedTuple):
    """A job composed by Hydra, before anything ran on it, with its parsed overrides. (Not a
    dataclass: Hydra's plugin scan executes this module outside `sys.modules`.)"""

    lines: list[str]
    parsed: list[Override]
    config: DictConfig


def sweep_key(config: DictConfig) -> str:
    """What identifies a sweep's jobs in a worker: the multirun's config (the files it was
    composed from, the command line) and the working directory."""
    text = os.getcwd() + "\0" + OmegaConf.to_yaml(config)
    return hashlib.sha256(text.encode()).hexdigest()


def _is_plain(override: Override, groups: set[str]) -> bool:
    key = override.key_or_group
    return (
        not override.is_add()
        and not override.is_force_add()
        and not override.is_delete()
        and not override.is_sweep_override()
        and not override.is_hydra_override()
        and override.package is None
        and key not in groups
        and not isinstance(override.value(), dict | list)
    )


def apply_plain_overrides(overrides: Sequence[Override], config: DictConfig) -> None:
    """Apply plain value overrides (`_is_plain`) to `config` as Hydra's config loader does:
    each value merged into the node at its key, an unknown key refused with Hydra's error."""
    for override in overrides:
        try:
            OmegaConf.update(config, override.key_or_group, override.value(), merge=True)
        except (ConfigAttributeError, ConfigKeyError) as exc:
            raise ConfigCompositionException(
                f"Could not override '{override.key_or_group}'."
                f"\nTo append to your config use +{override.input_line}"
            ) from exc


def override_dirname(
    overrides: Sequence[Override], exclude_keys: Sequence[str], item_sep: str, kv_sep: str
) -> str:
    """`hydra.job.override_dirname` as Hydra writes it: the override lines whose key is not
    excluded, sorted, joined by `item_sep`, each `=` written as `kv_sep`."""
    lines = sorted(o.input_line for o in overrides if o.key_or_group not in exclude_keys)
    return item_sep.join(lines).replace("=", kv_sep)


def from_template(template: Template, master: DictConfig, lines: list[str]) -> DictConfig | None:
    """The job of `lines` from `template`, or None when it needs Hydra (module docstring)."""
    if len(lines) != len(template.lines):
        return None
    changed = [i for i, (a, b) in enumerate(zip(lines, template.lines, strict=True)) if a != b]
    parsed = list(template.parsed)
    if changed:
        new = OverridesParser.create().parse_overrides([lines[i] for i in changed])
        groups = set(template.config.hydra.runtime.choices)
        # the value overrides' keys (a config group is composed before any value is applied)
        keys = [o.key_or_group for o in template.parsed if o.key_or_group not in groups]
        for i, override in zip(changed, new, strict=True):
            old, key = template.parsed[i], override.key_or_group
            if old.key_or_group != key or not _is_plain(override, groups):
                return None
            if not _is_plain(old, groups) or keys.count(key) != 1:
                return None
            if any(k.startswith(key + ".") or key.startswith(k + ".") for k in keys):
                return None
            parsed[i] = override
    config = copy.deepcopy(template.config)
    if changed:
        apply_plain_overrides([parsed[i] for i in changed], config)
        app = [o for o in parsed if not o.is_hydra_override()]
        settings = config.hydra.job.config.override_dirname
        with open_dict(config.hydra):
            config.hydra.overrides.task = [o.input_line for o in app]
            config.hydra.job.override_dirname = override_dirname(
                overrides=app,
                kv_sep=settings.kv_sep,
                item_sep=settings.item_sep,
                exclude_keys=settings.exclude_keys,
            )
    OmegaConf.copy_cache(from_config=master, to_config=config)
    return config


class TemplateConfigLoader:
    """The config loader a worker gets: Hydra's, except `load_sweep_config` (module doc)."""

    def __init__(self, loader: Any, key: str) -> None:
        self.loader = loader
        self.key = key

    def __getattr__(self, name: str) -> Any:
        if name in ("loader", "key") or name.startswith("__"):
            raise AttributeError(name)
        return getattr(self.loader, name)

    def load_sweep_config(self, master_config: DictConfig, sweep_overrides: list[str]):
        lines = list(sweep_overrides)
        template = _TEMPLATES.get(self.key)
        if template is not None:
            config = from_template(template, master_config, lines)
            if config is not None:
                return config
        config = self.loader.load_sweep_config(master_config, lines)
        if template is None:
            parsed = OverridesParser.create().parse_overrides(lines)
            _TEMPLATES[self.key] = Template(lines, parsed, copy.deepcopy(config))
            for stale in list(_TEMPLATES)[:-_KEEP]:
                del _TEMPLATES[stale]
        return config


def launch_order(job_overrides: Sequence[Sequence[str]], keys: Sequence[str]) -> list[int]:
    """The jobs' indices in launch order: descending in the value of the first of `keys`, then
    of the next (stable). A key's value is read from the job's `key=<number>` override line;
    a job without one for a key (not swept, or not a plain finite number) comes after the jobs
    with one."""
    keys = list(keys)

    def rank(lines: Sequence[str]) -> tuple[tuple[int, float], ...]:
        values: dict[str, float] = {}
        for line in lines:
            key, _, text = line.partition("=")
            if key in keys:
                try:
                    value = float(text)
                except ValueError:
                    continue
                if math.isfinite(value):
                    values[key] = value
        return tuple((0, -values[k]) if k in values else (1, 0.0) for k in keys)

    return sorted(range(len(job_overrides)), key=lambda i: rank(job_overrides[i]))


class JoblibTemplateLauncher(JoblibLauncher):
    """`JoblibLauncher` whose workers compose a sweep's jobs from a template, started longest
    first (module doc)."""

    def __init__(self, largest_first: Sequence[str] = (), **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.largest_first = list(largest_first)

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int):
        context = self.hydra_context
        assert context is not None and self.config is not None
        loader = TemplateConfigLoader(context.config_loader, sweep_key(self.config))
        self.hydra_context = HydraContext(config_loader=loader, callbacks=context.callbacks)
        order = launch_order(job_overrides, self.largest_first)
        try:
            runs = super().launch([job_overrides[i] for i in order], initial_job_idx)
        finally:
            self.hydra_context = context
        in_sweep_order = [None] * len(runs)
        for run, index in zip(runs, order, strict=True):
            in_sweep_order[index] = run
        return in_sweep_order
