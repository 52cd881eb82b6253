"""The Hydra callback of every multirun: plan and check every job, then one MLflow parent.

`SweepCallback` (registered in conf/config.yaml) runs in the launching process before any
job starts:

1. composes every job's config (the sweeper's own expansion of the overrides: ranges,
   choices, config-group sweeps), checks each against the schemas and its study's checks,
   refuses an empty sweep, and runs the pre-flight (`runtime.preflight`) over all of them:
   a bad value, data file, path, target, launcher setting, tracking store or memory
   estimate stops the sweep with one line before anything is written or logged;
2. creates the sweep's parent run — or, when every job is already cached, reuses the newest
   parent of the same sweep — and hands its id to the jobs through the environment, which
   every launcher passes on. A parent that ends with no child (a racing identical sweep
   computed them all) is deleted rather than left empty;
3. writes the sweep's manifest (`records/sweeps/<study config>.json`: its job keys), so the
   aggregate counts exactly the jobs of each study config's latest sweep.

Any failure here (a full disk, a tracking store that breaks, a bug) stops the sweep: one
line, exit status 2, nothing launched, and a parent it created is deleted. Hydra would
otherwise turn the callback's exception into a warning and launch every job anyway. A sweep
that does not reach its end (a job's stopping error, SIGTERM, Ctrl-C) ends its parent KILLED,
and with it any child run still RUNNING (`runtime.entry.on_stop`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from dataclasses import dataclass, field
from typing import Any

from omegaconf import DictConfig, OmegaConf

from widthlab.runtime.errors import STOPPING_SIGNALS, ConfigError, report_error
from widthlab.runtime.sweep_jobs import (  # noqa: F401 (also imported from here)
    compose_jobs,
    job_overrides,
    resolved_jobs,
    sweep_definition,
    sweep_overrides,
    swept_values,
)

log = logging.getLogger(__name__)

try:  # Hydra is a dependency, but keep the module importable without it.
    from hydra.experimental.callback import Callback
except ImportError:  # pragma: no cover
    Callback = object  # type: ignore[assignment,misc]


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
        """The name of the study the sweep's jobs belong to."""
        return str(self.resolved[0]["study"]["name"])

    @property
    def dry_run(self) -> bool:
        """Whether the sweep only lists its jobs (`dry_run=true`)."""
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
    from widthlab.runtime.unread import STAGE_KEYS, check_unread, command_line_values

    typed = command_line_values(
        OmegaConf.select(config, "hydra.overrides.task", default=[]),
        OmegaConf.select(config, "hydra.runtime.choices", default={}) or {},
    )
    kinds = {r["study"]["job"] for r in resolved}
    check_unread(study, resolved[0]["study"]["name"], kinds, typed, skip=STAGE_KEYS)
    plans = [plan_job(r, study) for r in resolved]
    keys = [p.key for p in plans]
    if len(set(keys)) != len(keys):
        raise ConfigError(
            "study.job_keys",
            resolved[0]["study"]["job_keys"],
            "keys that tell the sweep's jobs apart (two jobs share a key)",
        )
    from widthlab.runtime.preflight import check_launcher, concurrent_jobs

    launcher = launcher_config(config)
    check_launcher(launcher)
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


def launcher_config(config: DictConfig) -> dict[str, Any] | None:
    """The multirun's launcher settings, resolved (None when it has none)."""
    launcher = OmegaConf.select(config, "hydra.launcher", default=None)
    return OmegaConf.to_container(launcher, resolve=True) if launcher is not None else None


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

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        """Plan, check, open the parent and write the manifest (module docstring); any error
        prints its one line and exits with 2 (SystemExit passes Hydra's callback runner)."""
        try:
            self._start(config)
        except (SystemExit, *STOPPING_SIGNALS):
            self._discard_parent()
            raise
        except BaseException as exc:  # whatever it is: one line, nothing launched
            self._discard_parent()
            report_error(exc)
            raise SystemExit(2) from None

    def _discard_parent(self) -> None:
        """Delete the parent this callback created before any job ran (the sweep stopped
        before launching): an empty run would only mislead."""
        if self.parent_id is None:
            return
        if self.created:
            try:
                self.client.delete_run(self.parent_id)
            except Exception:  # the store is what failed: that error stands
                pass
        self.created = False  # nothing left to end
        self._end_parent("KILLED")

    def _start(self, config: DictConfig) -> None:
        if OmegaConf.select(config, "study._target_", default=None) is None:
            # Not a study: the data sets (pipelines/data.py -m ..., DVC's data stage) are all
            # checked before the first is made; the sweep still gets its parent run.
            from widthlab.runtime.preflight import check_launcher

            check_launcher(launcher_config(config))
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
        tracking = plan.resolved[0]["tracking"]
        if tracking["enabled"]:
            self._open_parent(plan, str(tracking["uri"]))
        self._write_manifest(plan)
        from widthlab.runtime.jobs import SWEEP_SIZE_ENV, SWEEP_START_ENV

        pass_to_jobs(
            config, {SWEEP_SIZE_ENV: str(len(plan.plans)), SWEEP_START_ENV: repr(time.time())}
        )
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
        # A sweep stopped early (a job's stopping error, SIGTERM, Ctrl-C) never reaches
        # on_multirun_end; its parent run, and any child still running, must not stay RUNNING.
        import atexit

        from widthlab.runtime.entry import on_stop

        atexit.register(self._end_parent, "KILLED")
        on_stop(lambda: self._end_parent("KILLED"))
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
        """Print the sweep's MLflow address and end its parent run."""
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
            if status == "KILLED":
                from widthlab.runtime.parents import end_running_children

                end_running_children(self.client, self.parent_id, status)
            end_parent(self.client, self.parent_id, status)
        if self.previous_env is None:
            os.environ.pop(PARENT_ENV, None)
        else:
            os.environ[PARENT_ENV] = self.previous_env
        self.parent_id = None
