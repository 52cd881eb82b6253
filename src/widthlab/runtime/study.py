"""What a study is to the generic entry points: a `Study` subclass named by its config.

A study lives in one folder (`widthlab/studies/<name>/`, or any importable package, a
test's or a user's), its configs included (`<folder>/conf/`, on Hydra's search path:
`hydra_plugins.widthlab_studies`), and is found from its config, never from a table of names:

    # <folder>/conf/study/<name>.yaml
    study:
      _target_: widthlab.studies.<name>.<Class>   # loaded with hydra.utils.get_class
      name: <name>                                 # results/<name>/, the MLflow experiment
      job: <kind>                                  # which of the study's jobs this config runs
      job_keys: [model.width, seed]                # the values that identify one job
      sweeps: [<name>, <name>_digits]              # every config the study's DVC stage runs

The class declares its jobs (`jobs`: kind → `Job`, each a `measure(cfg) -> dict` with the
config groups it reads and a memory estimate), the schema of its own config keys and the
checks across keys (`check`), and turns records into results (`summarize`), figures
(`figures`) and a report section (`report`). `pipelines/run.py`, `aggregate.py` and
`report.py` do everything else the same way for every study.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from widthlab.runtime.errors import ConfigError

if TYPE_CHECKING:
    from matplotlib.figure import Figure

Record = dict[str, Any]
Rows = list[dict[str, Any]]


@dataclass(frozen=True)
class Job:
    """One kind of job of a study.

    `measure(cfg)` computes one job from its composed config and returns a mapping: numbers
    become MLflow metrics and record metrics, a nested mapping under a key `name=value` is a
    condition solved within the job (a row of its own in the tables), lists are kept in the
    record only. `groups` are the config groups it reads (checked before work, logged as
    MLflow params); `peak_memory(cfg)` estimates the bytes one job allocates beyond the
    process's baseline, from the resolved config (used to refuse a sweep that cannot fit).

    A kind that trains networks can train a sweep's networks together (`runtime.stacks`):
    `measure_batch(cfgs)` measures several jobs at once and returns, per job, its mapping or
    the exception it failed with; jobs that differ only in `stack_keys` may share a stack.

    `ignores` are the config keys within its config that it never reads (a network it builds
    itself ignores `model._target_`): a command-line value for one is refused, not ignored.
    """

    measure: Callable[[Any], Mapping[str, Any]]
    headline: str | None = None
    groups: tuple[str, ...] = ("data", "model", "study")
    peak_memory: Callable[[Mapping[str, Any]], float] = lambda cfg: 0.0
    measure_batch: Callable[[list[Any]], list[Mapping[str, Any] | Exception]] | None = None
    stack_keys: tuple[str, ...] = ()
    # Config keys (or whole nodes: "data") of its config that `measure` never reads: a value
    # set for one on the command line would change nothing, so it is refused before any work
    # (`runtime.unread`). Keys a check requires a value of (train.momentum: 0) are not here.
    ignores: tuple[str, ...] = ()


@dataclass
class Results:
    """What a study makes of its records: the summary (headline numbers with uncertainty
    and verdicts, nested), the tables (file name → rows, written as CSV), and the flat
    metrics (≤ about a dozen numbers: DVC's metric and the sweep runs' MLflow metrics)."""

    summary: dict[str, Any]
    tables: dict[str, Rows] = field(default_factory=dict)
    metrics: dict[str, float | int | None] = field(default_factory=dict)


@dataclass(frozen=True)
class FigureSpec:
    """A figure and its caption (what is plotted, what the band is)."""

    figure: Figure
    caption: str


@dataclass(frozen=True)
class PlotSpec:
    """One panel of the study's DVC plot (`results/<name>/plots.csv`, drawn on log-log axes,
    one line per series and revision): the column `x` of the table `table` against the
    mean of each metric in `y` (its `<metric>_mean` column, or the column `<metric>` itself
    in a table of one value per point), one line per value of the `series` columns."""

    panel: str
    table: str
    x: str
    y: tuple[str, ...]
    series: tuple[str, ...] = ()


class Study:
    """Base class of every study; subclasses set the class attributes and override methods.

    The methods receive plain data (records, rows, dicts), so a study's summary, figures and
    report can be tested on hand-made records.
    """

    question: str = ""  # one sentence: the experiment's MLflow description, the report's start
    title: str = ""  # the report section's heading
    order: int = 100  # position of its section on the report page
    jobs: Mapping[str, Job] = {}
    schema: Mapping[str, Any] = {}  # the study node's own keys (runtime.schemas checkers)
    plots: tuple[PlotSpec, ...] = ()  # the DVC plot's panels
    # Summary and table keys holding round-off residuals (stored as their decade, since
    # their digits differ between machines): a key matches when it contains one of these.
    residual_keys: tuple[str, ...] = ()
    # Keys holding numbers that are round-off only where tiny (stats.round_off_floor: at most
    # stats.ROUND_OFF_BOUND stored as that bound), e.g. the training error of a fit that can
    # interpolate. Every key ending in _std or _se is one too (`runtime.aggregate`).
    round_off_keys: tuple[str, ...] = ()
    # The kind of model config its jobs take (`runtime.schemas.MODEL`: "mlp" or
    # "random_features"), None for any: `model=mlp` for a random-features study is refused.
    model_config: str | None = None
    # What `dvc exp show` compares between experiments, a few columns a study: the one
    # headline number of `Results.metrics` that DVC's metrics file keeps beside the counts
    # (`runtime.aggregate`), and the resolved settings (dotted keys of the study's main
    # config) that DVC's params show beside the digest of the rest (`runtime.params`).
    headline_metric: str | None = None
    shown_settings: tuple[str, ...] = ()

    def check(self, cfg: Mapping[str, Any]) -> None:
        """Checks across keys on one job's resolved config; raise `ConfigError`."""

    def sweep_warnings(self, configs: list[Mapping[str, Any]]) -> list[str]:
        """Warnings about a sweep as a whole (its jobs' resolved configs), logged before it
        starts: e.g. a double-descent sweep that cannot cross its threshold."""
        return []

    def summarize(
        self, records: Mapping[str, list[Record]], settings: Mapping[str, Any]
    ) -> Results:
        """Results from the finished and failed records of each job kind (`settings`: the
        study node of the study's main config: thresholds, bands, references)."""
        raise NotImplementedError

    def figures(self, results: Results) -> dict[str, FigureSpec]:
        """Figures from the (rounded) results."""
        return {}

    def report(self, summary: Mapping[str, Any], page: Any) -> list[str]:
        """Markdown lines of the study's report section from its stored summary (`page`:
        `runtime.report.Page`, which formats numbers, figures and commands)."""
        return []

    # ------------------------------------------------------------------ plumbing
    def job(self, kind: str) -> Job:
        """The study's job of this kind, or a config error naming the kinds it has."""
        if kind not in self.jobs:
            raise ConfigError("study.job", kind, f"one of {sorted(self.jobs)}")
        return self.jobs[kind]

    @classmethod
    def source_files(cls) -> list[Path]:
        """The files of the study's code (its package folder, or its module file)."""
        module = inspect.getmodule(cls)
        path = Path(inspect.getfile(cls)).resolve()
        if module is not None and path.name == "__init__.py":
            return sorted(path.parent.rglob("*.py"))
        return [path]


def plotted(row: Mapping[str, Any], metric: str) -> Any:
    """The value a plot panel draws for `metric` in a table row (`PlotSpec`)."""
    return row.get(f"{metric}_mean", row.get(metric))


def require_values(cfg: Mapping[str, Any], required: Mapping[str, Any], why: str) -> None:
    """`ConfigError` for the first dotted key of `required` whose value in the resolved `cfg`
    is not the one required there, saying "<value> in this study (<why>)"."""
    for key, allowed in required.items():
        value: Any = cfg
        for part in key.split("."):
            value = value[part]
        if value != allowed:
            shown = "null" if allowed is None else repr(allowed)
            raise ConfigError(key, value, f"{shown} in this study ({why})")


def get_class_quietly(path: str) -> type:
    """`hydra.utils.get_class`, without the three ERROR lines Hydra logs before raising: the
    caller reports a bad path as its own one line."""
    import logging

    from hydra.utils import get_class

    logger = logging.getLogger("hydra.utils")
    saved, logger.disabled = logger.disabled, True
    try:
        return get_class(path)
    finally:
        logger.disabled = saved


def load_study(target: str | None) -> Study:
    """The study named by `study._target_` (a dotted class path), instantiated."""
    if not target or not isinstance(target, str):
        raise ConfigError("study._target_", target, "the dotted path of a Study class")
    try:
        cls = get_class_quietly(target)
    except Exception as exc:  # Hydra wraps the ImportError / AttributeError
        cause = exc.__cause__ or exc
        raise ConfigError(
            "study._target_", target, f"an importable Study class ({type(cause).__name__})"
        ) from None
    if not (isinstance(cls, type) and issubclass(cls, Study)):
        raise ConfigError("study._target_", target, "a subclass of widthlab.runtime.study.Study")
    return cls()
