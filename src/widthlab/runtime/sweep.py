"""The Hydra callback of every multirun: plan and check every job, then one MLflow parent.

`SweepCallback` (registered in conf/config.yaml) runs in the launching process before any
job starts:

1. composes every job's config (the sweeper's own expansion of the overrides: ranges,
   choices, config-group sweeps), checks each against the schemas and its study's checks,
   refuses an empty sweep, and runs the pre-flight (`runtime.preflight`) over all of them:
   a bad value, data file, path, target, tracking URI or memory estimate stops the sweep
   with one line before anything is written or logged;
2. writes the sweep's manifest (`records/sweeps/<study config>.json`: its job keys), so the
   aggregate counts exactly the jobs of each study config's latest sweep;
3. creates the sweep's parent run — or, when every job is already cached, reuses the newest
   parent of the same sweep — and hands its id to the jobs through the environment, which
   every launcher passes on. A parent that ends with no child (a racing identical sweep
   computed them all) is deleted rather than left empty.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from omegaconf import DictConfig, OmegaConf

from widthlab.runtime.errors import ConfigError, exit_on_error

log = logging.getLogger(__name__)

try:  # Hydra is a dependency, but keep the module importable without it.
    from hydra.experimental.callback import Callback
except ImportError:  # pragma: no cover
    Callback = object  # type: ignore[assignment,misc]


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


@dataclass
class SweepPlan:
    """The checked jobs of one multirun."""

    study: Any
    sweep: str  # the study config's name (`study=<sweep>`)
    resolved: list[dict[str, Any]]
    plans: list[Any]
    cached: list[bool]
    definition: dict[str, Any] = field(default_factory=dict)
    overrides: list[list[str]] = field(default_factory=list)  # each job's, as launched
    # The config hash of the record each job ends with: the cached record's own, else None
    # (the job's plan's, once computed).
    record_hashes: list[str | None] = field(default_factory=list)

    @property
    def study_name(self) -> str:
        return str(self.resolved[0]["study"]["name"])

    @property
    def dry_run(self) -> bool:
        return bool(self.resolved[0].get("dry_run"))

    @property
    def digest(self) -> str:
        """The digest of the records the sweep's results consist of (`runtime.parents`)."""
        hashes = self.record_hashes or [None] * len(self.plans)
        pairs = [(p.key, h or p.config_hash) for p, h in zip(self.plans, hashes, strict=True)]
        return hashlib.sha256(json.dumps(sorted(pairs)).encode()).hexdigest()[:16]


def plan_sweep(config: DictConfig) -> SweepPlan:
    """Compose, check and pre-flight every job of the multirun `config`."""
    from widthlab.runtime.jobs import cached_record, plan_job
    from widthlab.runtime.preflight import preflight
    from widthlab.runtime.schemas import validate_config
    from widthlab.runtime.study import load_study

    studies: dict[str, Any] = {}
    resolved = []
    for job in resolved_jobs(config):
        target = (job.get("study") or {}).get("_target_")
        if target not in studies:
            studies[target] = load_study(target)
        study = studies[target]
        kind = job["study"].get("job")
        resolved.append(validate_config(job, study.job(kind).groups, study))
    if len(studies) != 1:
        raise ConfigError("study", sorted(studies), "one study per sweep")
    study = next(iter(studies.values()))
    plans = [plan_job(r, study) for r in resolved]
    keys = [p.key for p in plans]
    if len(set(keys)) != len(keys):
        raise ConfigError(
            "study.job_keys",
            resolved[0]["study"]["job_keys"],
            "keys that tell the sweep's jobs apart (two jobs share a key)",
        )
    from widthlab.runtime.preflight import concurrent_jobs

    launcher = OmegaConf.select(config, "hydra.launcher", default=None)
    launcher = OmegaConf.to_container(launcher, resolve=True) if launcher is not None else None
    preflight(resolved, study, keys=keys, concurrent=concurrent_jobs(launcher))
    for warning in study.sweep_warnings(resolved):
        log.warning(warning)
    reused = [
        cached_record(p) if r["resume"] else None for r, p in zip(resolved, plans, strict=True)
    ]
    cached = [r is not None for r in reused]
    hashes = [r.get("config_hash") if r is not None else None for r in reused]
    choices = OmegaConf.select(config, "hydra.runtime.choices", default={}) or {}
    sweep = str(choices.get("study") or resolved[0]["study"]["name"])
    definition = sweep_definition(config)
    return SweepPlan(
        study, sweep, resolved, plans, cached, definition, job_overrides(config), hashes
    )


# The plan of the multirun this process is running, for the sweeper (`widthlab_sweeper`),
# which launches only the jobs that are not cached.
LAST_PLAN: SweepPlan | None = None


def check_data_sweep(config: DictConfig) -> None:
    """Check every data set of a `pipelines/data.py` multirun (`datastage.check_data_job`)
    before the first one is made; a bad value raises its stopping error."""
    from widthlab.runtime.datastage import check_data_job

    for job in compose_jobs(config):
        check_data_job(job)


def pass_to_jobs(config: DictConfig, env: dict[str, str]) -> None:
    """Give every job of this multirun the environment variables `env`, whatever launches it.

    Set here, they reach jobs run in this process; but a parallel launcher's workers may
    have started before (joblib reuses its worker processes across the sweeps of a stage),
    and a cluster job starts elsewhere. So they also become Hydra overrides of
    `hydra.job.env_set`, which the launcher composes into each job's config and Hydra sets
    around the job wherever it runs.
    """
    from omegaconf import read_write

    os.environ.update(env)
    with read_write(config.hydra):
        config.hydra.overrides.hydra.extend(
            [f"++hydra.job.env_set.{key}='{value}'" for key, value in env.items()]
        )


class SweepCallback(Callback):
    """Plans and checks every job, writes the manifest, opens the parent run (module doc)."""

    def __init__(self) -> None:
        self.client: Any | None = None
        self.parent_id: str | None = None
        self.created = False
        self.previous_env: str | None = None

    @exit_on_error  # a stopping error: its one line, exit status 2, nothing written or logged
    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        if OmegaConf.select(config, "study._target_", default=None) is None:
            # Not a study: the data sets (pipelines/data.py -m ..., DVC's data stage) are all
            # checked before the first is made; the sweep still gets its parent run.
            if OmegaConf.select(config, "hydra.job.name", default=None) == "data":
                check_data_sweep(config)
            self._open_plain_parent(config)
            return
        global LAST_PLAN
        LAST_PLAN = plan = plan_sweep(config)
        if plan.dry_run:  # the jobs, and nothing written, logged or launched
            from widthlab.runtime.progress import dry_run_table

            print(dry_run_table(plan), flush=True)
            return
        log.info("checked %d jobs (%d cached)", len(plan.plans), sum(plan.cached))
        self._write_manifest(plan)
        from widthlab.runtime.jobs import SWEEP_SIZE_ENV, SWEEP_START_ENV

        pass_to_jobs(
            config, {SWEEP_SIZE_ENV: str(len(plan.plans)), SWEEP_START_ENV: repr(time.time())}
        )
        tracking = plan.resolved[0]["tracking"]
        if tracking["enabled"]:
            self._open_parent(plan, str(tracking["uri"]))
        if self.parent_id is not None:
            from widthlab.runtime.tracking import PARENT_ENV

            pass_to_jobs(config, {PARENT_ENV: self.parent_id})

    @staticmethod
    def _write_manifest(plan: SweepPlan) -> None:
        from pathlib import Path

        from widthlab.runtime.records import write_sweep_manifest

        first = plan.resolved[0]
        records = Path(first["paths"]["results_dir"]) / first["study"]["name"] / "records"
        keys = [p.key for p in plan.plans]
        write_sweep_manifest(records, plan.sweep, first["study"]["job"], keys, plan.digest)

    def _open_parent(self, plan: SweepPlan, uri: str) -> None:
        from widthlab.runtime.jobs import experiment_name
        from widthlab.runtime.parents import close_cached_runs, newest_parent
        from widthlab.runtime.tracking import client, ensure_experiment, flatten

        first = plan.resolved[0]
        experiment_id = ensure_experiment(uri, experiment_name(first), plan.study.question)
        self.client = client(uri)
        cached = {p.key for p, c in zip(plan.plans, plan.cached, strict=True) if c}
        close_cached_runs(self.client, experiment_id, cached)
        if all(plan.cached):
            reusable = newest_parent(self.client, experiment_id, plan.digest, "FINISHED")
            if reusable is not None:
                self.parent_id = reusable.info.run_id
                log.info("every job is cached: reusing MLflow parent run %s", self.parent_id)
                self._export(self.parent_id)
                return
        # The same sweep killed earlier (SIGKILL: no exit handler ran) left its parent
        # RUNNING; this rerun is its continuation, so close that one as KILLED.
        for old in self.client.search_runs(
            [experiment_id],
            f"tags.`widthlab.sweep_digest` = '{plan.digest}' and attributes.status = 'RUNNING'",
        ):
            self.client.set_terminated(old.info.run_id, status="KILLED")
        profile = (first.get("profile") or {}).get("name")
        fixed = {
            k: v for k, v in flatten({"study": first["study"]}).items() if k not in plan.definition
        }
        swept = {k: "[" + ", ".join(v) + "]" for k, v in plan.definition.items()}
        tags = {
            "widthlab.sweep": plan.sweep,
            "widthlab.sweep_digest": plan.digest,
            "widthlab.study": first["study"]["name"],
            "widthlab.stage": first["study"]["name"],
            "widthlab.job_count": str(len(plan.plans)),
        }
        name = f"{plan.sweep} · {profile}"
        self._create(experiment_id, name, tags, {**fixed, **swept, "profile": profile}, profile)
        log.info("MLflow parent run %s (%s) in %s", self.parent_id, name, uri)

    def _create(
        self, experiment_id: str, name: str, tags: dict, params: dict, profile: Any
    ) -> None:
        from mlflow.tracking.context.registry import resolve_tags
        from mlflow.utils.mlflow_tags import MLFLOW_RUN_NAME

        from widthlab.runtime.parents import dirty_tags
        from widthlab.runtime.records import git_commit
        from widthlab.runtime.tracking import JobRun

        tags = {
            MLFLOW_RUN_NAME: name,
            "widthlab.role": "sweep",
            "widthlab.profile": str(profile),
            **tags,
            **dirty_tags(git_commit()),
        }
        run = self.client.create_run(experiment_id, run_name=name, tags=resolve_tags(tags))
        self.parent_id, self.created = run.info.run_id, True
        JobRun(self.client, self.parent_id).log_params(params)
        # A sweep stopped early (a bad data file, Ctrl-C) never reaches on_multirun_end;
        # its parent run must not stay RUNNING forever.
        import atexit

        atexit.register(self._end_parent, "KILLED")
        self._export(self.parent_id)

    def _open_plain_parent(self, config: DictConfig) -> None:
        from widthlab.runtime.preflight import check_tracking
        from widthlab.runtime.tracking import client, ensure_experiment

        tracking = OmegaConf.to_container(config.tracking, resolve=True)
        if not tracking.get("enabled"):
            return
        check_tracking(tracking)
        job = str(OmegaConf.select(config, "hydra.job.name", default="sweep"))
        uri = str(tracking["uri"])
        experiment_id = ensure_experiment(uri, tracking.get("experiment") or job)
        self.client = client(uri)
        profile = OmegaConf.select(config, "profile.name", default=None)
        swept = {k: "[" + ", ".join(v) + "]" for k, v in swept_values(config).items()}
        tags = {"widthlab.sweep": job, "widthlab.stage": job}
        jobs = len(job_overrides(config))
        self._create(
            experiment_id, f"{job} · {profile}", tags, {**swept, "profile": profile}, profile
        )
        from widthlab.runtime.tracking import JobRun

        JobRun(self.client, self.parent_id).log_metrics({"jobs": jobs})  # its runs: one each

    def _export(self, run_id: str) -> None:
        from widthlab.runtime.tracking import PARENT_ENV

        self.previous_env = os.environ.get(PARENT_ENV)
        os.environ[PARENT_ENV] = run_id

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        if self.parent_id is not None:
            from widthlab.runtime.parents import experiment_url, ui_address

            run = self.client.get_run(self.parent_id)
            uri = str(OmegaConf.select(config, "tracking.uri"))
            print(f"MLflow: {experiment_url(run.info.experiment_id, ui_address(uri))}")
        self._end_parent("FINISHED")

    def _end_parent(self, status: str) -> None:
        from widthlab.runtime.parents import end_parent
        from widthlab.runtime.tracking import PARENT_ENV

        if self.parent_id is None:
            return
        if self.created:
            end_parent(self.client, self.parent_id, status)
        if self.previous_env is None:
            os.environ.pop(PARENT_ENV, None)
        else:
            os.environ[PARENT_ENV] = self.previous_env
        self.parent_id = None
