"""submitit's SLURM launcher, waiting for every job of a sweep and naming each one that ended
without its result (conf/hydra/launcher/slurm.yaml and slurm_cpu.yaml select it).

Hydra's submitit launcher ends with `[job.results()[0] for job in jobs]`, and submitit asks
SLURM's accounting (`sacct`) whether a job that has written no result file has ended:

- the first job that ended without a result (cancelled by `scancel`, killed at its time
  limit, its node lost) raises submitit's `UncompletedJobError`, with a traceback, while the
  sweep's later jobs are still running;
- where accounting is off (`AccountingStorageType=accounting_storage/none`), `sacct` fails,
  submitit warns "Bypassing sacct error ..., status may be inaccurate" on every poll, and
  such a job keeps the command waiting for ever.

`SlurmLauncher` submits exactly as Hydra's does (one job array), then waits for every job
itself. A job is done when its result file exists. One that has left SLURM's queue (`squeue`,
which needs no accounting) with no result file, at two of its answers in a row, ended
without one; its state comes from `scontrol show job` (SLURM keeps a finished job there for
`MinJobAge`, 300 s by default). It comes back as a failed `JobReturn` holding
`widthlab.runtime.errors.JobLost` (SLURM job id, state, the sweep job it ran), which the
sweeper (`widthlab_sweeper`) reports in one line after the sweep. Nothing here calls `sacct`,
so the launcher works the same with accounting off, and submitit's warning never appears.

A job that reaches its time limit is usually not lost: submitit's SIGUSR2, `signal_delay_s`
(120 s) before the limit, raises `UncompletedJobError` ("timed-out") inside the job, which the
job records as failed with that reason (`runtime.jobs`). Only a job killed before it could
(a signal missed, a limit shorter than the delay's resolution) ends TIMEOUT without a result.

No `from __future__ import annotations` here: Hydra's plugin scan executes this module outside
`sys.modules`, where a dataclass with string annotations cannot be made.
"""

import logging
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

# squeue is asked every tenth of the time the sweep has run, from every 5 s to every minute
# (result files are looked at every second); a job out of the queue at two of its answers in
# a row, still without a result file, is lost.
QUEUE_EVERY_S = (5.0, 60.0)
HINTS = {
    "TIMEOUT": "raise hydra.launcher.timeout_min",
    "OUT_OF_MEMORY": "raise hydra.launcher.mem_gb",
}

try:  # the `cluster` extra; without it this launcher is simply not offered
    from hydra.core.config_store import ConfigStore
    from hydra.core.utils import JobReturn, JobStatus, filter_overrides
    from hydra_plugins.hydra_submitit_launcher.config import SlurmQueueConf
    from hydra_plugins.hydra_submitit_launcher.submitit_launcher import (
        SlurmLauncher as HydraSlurmLauncher,
    )
    from submitit.core.utils import UncompletedJobError
except ImportError:  # pragma: no cover
    HydraSlurmLauncher = None


def queued(job_ids: Sequence[str]) -> set | None:
    """The ids (`123_4`, one per array task) of those of `job_ids`' jobs still pending,
    running or completing; None when squeue does not answer."""
    bases = sorted({str(j).split("_")[0] for j in job_ids})
    try:
        out = subprocess.run(
            ["squeue", "-h", "-r", "-o", "%i", "-j", ",".join(bases)],
            capture_output=True,
            text=True,
            timeout=60,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if out.returncode != 0:
        # squeue fails for an id it no longer knows at all: then none is queued.
        return set() if "Invalid job id" in out.stderr else None
    return {line.strip() for line in out.stdout.splitlines() if line.strip()}


def final_state(job_id: str) -> str:
    """SLURM's state of a job that has ended (`CANCELLED`, `TIMEOUT`, `NODE_FAIL`, …), from
    `scontrol show job`; `unknown` once SLURM has forgotten the job."""
    try:
        out = subprocess.run(
            ["scontrol", "-o", "show", "job", str(job_id)],
            capture_output=True,
            text=True,
            timeout=60,
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    fields = dict(f.split("=", 1) for f in out.split() if "=" in f)
    return fields.get("JobState", "unknown")


if HydraSlurmLauncher is not None:

    class SlurmLauncher(HydraSlurmLauncher):
        """Hydra's submitit SLURM launcher, waiting for every job (module docstring)."""

        def launch(
            self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int
        ) -> Sequence[JobReturn]:
            # Hydra's BaseSubmititLauncher.launch (hydra-submitit-launcher 1.2), up to its
            # last line, which waited on each job in turn.
            import submitit
            from hydra.core.singleton import Singleton
            from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf
            from omegaconf import OmegaConf

            assert self.config is not None
            params = self.params
            init_params = {"folder": self.params["submitit_folder"]}
            specific_init_keys = {"max_num_timeout"}
            init_params.update(
                **{f"{self._EXECUTOR}_{x}": y for x, y in params.items() if x in specific_init_keys}
            )
            init_keys = specific_init_keys | {"submitit_folder"}
            executor = submitit.AutoExecutor(cluster=self._EXECUTOR, **init_params)
            baseparams = set(OmegaConf.structured(BaseQueueConf).keys())
            params = {
                x if x in baseparams else f"{self._EXECUTOR}_{x}": y
                for x, y in params.items()
                if x not in init_keys
            }
            executor.update_parameters(**params)
            sweep_dir = Path(str(self.config.hydra.sweep.dir))
            log.info(f"Submitit '{self._EXECUTOR}' sweep output dir : {sweep_dir}")
            sweep_dir.mkdir(parents=True, exist_ok=True)
            if "mode" in self.config.hydra.sweep:
                sweep_dir.chmod(int(str(self.config.hydra.sweep.mode), 8))
            job_params: list[Any] = []
            for idx, overrides in enumerate(job_overrides):
                idx = initial_job_idx + idx
                log.info(f"\t#{idx} : {' '.join(filter_overrides(overrides))}")
                job_params.append(
                    (list(overrides), "hydra.sweep.dir", idx, f"job_id_for_{idx}",
                     Singleton.get_state())
                )  # fmt: skip
            jobs = executor.map_array(self, *zip(*job_params, strict=True))
            return wait_for_all(jobs, [list(o) for o in job_overrides], initial_job_idx)

    def wait_for_all(jobs: Sequence[Any], overrides: list[list[str]], first: int) -> list[Any]:
        """Every job's `JobReturn`, in the sweep's order, once every job has ended."""
        results: dict[int, Any] = {}
        gone: set[int] = set()  # out of the queue at squeue's last answer
        started = asked = time.time()
        while len(results) < len(jobs):
            for i, job in enumerate(jobs):
                if i not in results and job.paths.result_pickle.exists():
                    results[i] = finished(job, overrides[i], first + i)
            pending = [i for i in range(len(jobs)) if i not in results]
            every = min(max((time.time() - started) / 10, QUEUE_EVERY_S[0]), QUEUE_EVERY_S[1])
            if pending and time.time() - asked >= every:
                asked = time.time()
                in_queue = queued([jobs[i].job_id for i in pending])
                for i in pending if in_queue is not None else []:
                    if jobs[i].job_id in in_queue:
                        gone.discard(i)
                    elif i not in gone:
                        gone.add(i)
                    elif not jobs[i].paths.result_pickle.exists():
                        results[i] = lost(jobs[i], overrides[i], first + i)
            if len(results) < len(jobs):
                time.sleep(1.0)
        return [results[i] for i in range(len(jobs))]

    def finished(job: Any, overrides: list[str], index: int) -> Any:
        """The `JobReturn` a job left; a job whose process raised outside the task (submitit
        writes the error instead) is lost, with the error's last line as its state."""
        try:
            return job.results()[0]
        except UncompletedJobError as exc:  # its FailedJobError too
            lines = [line for line in str(exc).splitlines() if line.strip()]
            return lost(job, overrides, index, f"FAILED ({lines[-1].strip() if lines else exc})")

    def lost(job: Any, overrides: list[str], index: int, state: str | None = None) -> Any:
        from widthlab.runtime.errors import JobLost

        state = state or final_state(job.job_id)
        hint = HINTS.get(state.split()[0], "")
        error = JobLost(job.job_id, state, index, overrides, str(job.paths.stderr), hint)
        return JobReturn(overrides=overrides, status=JobStatus.FAILED, _return_value=error)

    @dataclass
    class WidthlabSlurmConf(SlurmQueueConf):
        _target_: str = "hydra_plugins.widthlab_launcher.slurm.SlurmLauncher"

    ConfigStore.instance().store(
        group="hydra/launcher", name="widthlab_slurm", node=WidthlabSlurmConf, provider="widthlab"
    )
