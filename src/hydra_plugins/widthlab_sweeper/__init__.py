"""Hydra's basic sweeper, launching only the jobs of a study sweep that are not cached.

Before a sweeper runs, `widthlab.runtime.sweep.SweepCallback` has composed every job of a
study sweep, checked it against the schemas, the study and the pre-flight, and found which
jobs have a record it can reuse (`runtime.jobs.cached_record`): it leaves that plan in
`runtime.sweep.LAST_PLAN`. `CheckedSweeper` expands the overrides exactly as `BasicSweeper`
does, then, for a study sweep (one with `study._target_`):

- launches only the jobs that are not cached: a cached job costs its share of the plan
  (composing, checking and comparing its record, milliseconds) rather than a launch (a
  worker composing it again, its logging, a lock, MLflow calls);
- launches, where the study's job kind trains networks together, one job per stack of
  networks (`widthlab.runtime.stacks`) rather than one per network;
- skips Hydra's second composition of every job, done only to validate it, which on a sweep
  of hundreds of small jobs cost as much as the jobs;
- shows one progress bar for the jobs it launches (`runtime.progress`), and sends Hydra's
  per-job launch lines to the sweep folder's `launch.log`
  (conf/hydra/hydra_logging/widthlab.yaml) instead of the terminal;
- launches nothing at all under `dry_run=true`, writing nothing (not even the sweep folder);
- after the sweep, names in one line each a cluster job that ended without its result
  (`widthlab_launcher.slurm`: cancelled, killed at its time limit, its node lost), ends the
  MLflow runs it left RUNNING as KILLED and exits with status 1; warns in one line when jobs
  could not log to MLflow (their records say `tracking_lost`) and ends their runs KILLED; the
  same command again runs exactly those jobs.

Any other multirun (e.g. `pipelines/data.py -m`) is swept and validated as before. The
result list holds one entry per launched job. Hydra finds sweepers in the `hydra_plugins`
namespace package; conf/hydra/sweeper/widthlab.yaml selects this one.

**Hydra's private modules.** Hydra exports no public basic sweeper to build on, so this
module and `widthlab.runtime.sweep` import `hydra._internal.core_plugins.basic_sweeper`
(`BasicSweeper`: its `split_arguments`, `_parse_config`, `validate_batch_is_legal`, and its
`launcher`, `config` and `hydra_context` attributes). Those are checked against the versions
in `CHECKED_VERSIONS`, which pyproject.toml pins; tests/test_hydra_versions.py fails, naming
what to re-check, on any other installed version. (The launcher uses Hydra's public API only;
`widthlab.runtime.usage` sets one private constant of joblib's loky, which
tests/test_jobs.py checks on the installed joblib.)
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import OmegaConf

log = logging.getLogger(__name__)

# The distributions whose private modules or internals this package relies on (module
# docstring), at the versions it was checked against; pyproject.toml pins the same.
CHECKED_VERSIONS = {"hydra-core": "1.3.8", "hydra-joblib-launcher": "1.2.0"}


class CheckedSweeper(BasicSweeper):
    """`BasicSweeper`, launching a study sweep's uncached jobs only (module docstring);
    `stack_networks=False` launches every network alone."""

    def __init__(
        self, max_batch_size: int | None = None, params: Any = None, stack_networks: bool = True
    ) -> None:
        super().__init__(max_batch_size=max_batch_size, params=params)
        self.stack_networks = bool(stack_networks)

    def validate_batch_is_legal(self, batch: Sequence[Sequence[str]]) -> None:
        if OmegaConf.select(self.config, "study._target_", default=None) is not None:
            return
        super().validate_batch_is_legal(batch)

    def sweep(self, arguments: list[str]) -> Any:
        from widthlab.runtime import sweep as sweep_module

        plan = sweep_module.LAST_PLAN
        if OmegaConf.select(self.config, "study._target_", default=None) is None or plan is None:
            return super().sweep(arguments)
        if plan.dry_run:
            return []
        parser = OverridesParser.create(config_loader=self.hydra_context.config_loader)
        overrides = parser.parse_overrides([*self._parse_config(), *arguments])
        jobs = [list(job) for batch in self.split_arguments(overrides, None) for job in batch]
        index = {tuple(o): i for i, o in enumerate(plan.overrides)}
        if len(index) != len(jobs) or any(tuple(job) not in index for job in jobs):
            return super().sweep(arguments)  # not the planned sweep: launch as Hydra would
        launched = [index[tuple(job)] for job in jobs if not plan.cached[index[tuple(job)]]]
        sweep_dir = Path(self.config.hydra.sweep.dir)
        if not launched:
            print(f"{plan.study_name} {plan.sweep}: every one of {len(jobs)} jobs is cached")
            return []
        sweep_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(self.config, sweep_dir / "multirun.yaml")
        from widthlab.runtime.progress import SweepProgress

        batch = [plan.overrides[i] for i in launched]
        workers, order = self._workers(len(launched)), launched
        keys = OmegaConf.select(self.config, "hydra.launcher.largest_first", default=None)
        if keys:
            from hydra_plugins.widthlab_launcher import launch_order

            order = [launched[i] for i in launch_order(batch, list(keys))]
        from widthlab.runtime import stacks

        planned = stacks.plan_stacks(plan, order, workers) if self.stack_networks else None
        if planned is not None:  # one Hydra job per stack of networks trained together
            batch = stacks.stack_overrides(plan, planned, stacks.write_stacks(plan, planned))
            log.info("%d jobs in %d stacks of networks trained together", len(order), len(batch))
        with SweepProgress(plan, order, workers, planned) as progress:
            results = self.launcher.launch(batch, initial_job_idx=0)
        from widthlab.runtime.errors import JobLost

        # A cluster job that ended without its result (widthlab_launcher.slurm) is reported
        # below; any other job's exception is re-raised, as BasicSweeper does.
        lost = [r._return_value for r in results if isinstance(r._return_value, JobLost)]
        for result in results:
            if not isinstance(result._return_value, JobLost):
                _ = result.return_value
        print(progress.summary() + f"; logs in {sweep_dir}/", flush=True)
        members = planned or [[i] for i in order]  # the plan's jobs of each launched job
        report_untracked(plan, [i for group in members for i in group])
        if lost:
            report_lost(plan, lost, [members[error.index] for error in lost])
            raise SystemExit(1)
        return [results]

    def _workers(self, jobs: int) -> int:
        """How many of the launched jobs run at once: joblib's workers on this machine, all
        of them on a cluster (submitit), one under the basic launcher."""
        from widthlab.runtime.preflight import concurrent_jobs

        launcher = OmegaConf.to_container(self.config.hydra.launcher, resolve=True)
        target = str(launcher.get("_target_", "")).lower()
        if "submitit" in target or "slurm" in target:
            return jobs
        return concurrent_jobs(launcher)


def report_lost(plan: Any, lost: list[Any], members: list[list[int]]) -> None:
    """One line per cluster job that ended without its result (`runtime.errors.JobLost`); the
    MLflow runs its sweep jobs left RUNNING end KILLED with that line as their reason."""
    import sys

    print(
        f"{len(lost)} cluster job{'s' * (len(lost) > 1)} ended without a result; rerun the "
        "same command to compute what is missing (finished jobs are cached):",
        file=sys.stderr,
    )
    for error in lost:
        print(f"error: {error}", file=sys.stderr)
    end_runs(plan, {i: str(error) for error, jobs in zip(lost, members, strict=True) for i in jobs})


def report_untracked(plan: Any, launched: list[int]) -> None:
    """One line when jobs of this sweep could not log to MLflow (`tracking.JobRun`: the store
    unreachable past MLflow's retries): their records keep their results and say why
    (`tracking_lost`); the runs they left RUNNING end KILLED, if the store answers again."""
    import json
    import sys

    reasons = {}
    for i in launched:
        try:
            record = json.loads(plan.plans[i].path.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(record, dict) and record.get("tracking_lost"):
            reasons[i] = f"tracking lost, the record keeps the result: {record['tracking_lost']}"
    if not reasons:
        return
    first = next(iter(reasons.values()))
    print(
        f"warning: {len(reasons)} job{'s' * (len(reasons) > 1)} could not log to MLflow "
        f"({first if len(first) <= 200 else first[:200] + '…'}); rerun the same command once "
        "the tracking store is back to log them",
        file=sys.stderr,
    )
    try:
        end_runs(plan, reasons)
    except Exception as error:
        from widthlab.runtime.tracking import unreachable

        if not unreachable(error):
            raise


def end_runs(plan: Any, reasons: dict[int, str]) -> None:
    """End as KILLED, with its reason, every RUNNING MLflow run of the jobs `reasons` names
    (by their place in the plan): no run stays RUNNING, and a rerun of the same command
    computes exactly those jobs."""
    tracking = plan.resolved[0]["tracking"]
    if not tracking["enabled"] or not reasons:
        return
    from widthlab.runtime.jobs import experiment_name
    from widthlab.runtime.tracking import close_stale_runs, ensure_experiment

    uri = str(tracking["uri"])
    experiment = ensure_experiment(uri, experiment_name(plan.resolved[0]), plan.study.question)
    for i, reason in reasons.items():
        key = plan.plans[i].key
        if close_stale_runs(uri, experiment, key, "KILLED", reason=reason) == 0:
            tag_stopped_run(uri, experiment, key, reason)


def tag_stopped_run(uri: str, experiment: str, key: str, reason: str) -> None:
    """Give the job's newest run the reason its cluster job was lost, where the job ended that
    run KILLED itself (SLURM's scancel sends SIGTERM first, `runtime.entry`) and so left no
    RUNNING run for `close_stale_runs` to close."""
    from widthlab.runtime.tracking import client

    mlflow_client = client(uri)
    newest = mlflow_client.search_runs(
        [experiment], f"tags.`widthlab.key` = '{key}'", order_by=["start_time DESC"], max_results=1
    )
    if newest and newest[0].info.status == "KILLED":
        if "widthlab.failure" not in newest[0].data.tags:
            mlflow_client.set_tag(newest[0].info.run_id, "widthlab.failure", reason[:5000])
