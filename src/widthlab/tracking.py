"""MLflow tracking for the pipeline's jobs: one parent run per sweep, one child run per job.

This module is edge code (it talks to a tracking store); the maths modules never import it.

- The tracking URI comes from the config (`tracking.uri`, default `sqlite:///mlflow.db`,
  overridden by `MLFLOW_TRACKING_URI`); `tracking.enabled: false` turns everything into
  no-ops. Every call goes through an explicit `MlflowClient(uri)`: no global MLflow state,
  so tests and parallel jobs cannot leak into each other's stores.
- One experiment per study: `tracking.experiment`, else `study.name`, else the job's name.
- `MlflowSweepCallback` (a Hydra callback, registered in `conf/config.yaml`) creates the
  store, the experiment and a parent run in the launching process *before* any job starts
  (a brand-new SQLite file written by several processes at once fails while creating its
  tables), without activating it. It hands the parent's id to the jobs through the
  environment variable `WIDTHLAB_MLFLOW_PARENT_RUN_ID`, which every Hydra launcher passes
  on (in-process, joblib workers, submitit local and SLURM jobs).
- `JobRun` is one job's child run: tags `mlflow.parentRunId`, `widthlab.study`,
  `widthlab.stage`, `widthlab.git_commit`; the resolved config flattened to dotted params;
  final metrics; FINISHED, or FAILED if the job raised.
"""

from __future__ import annotations

import logging
import os
import subprocess
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from functools import cache
from typing import Any

from omegaconf import DictConfig, OmegaConf

log = logging.getLogger(__name__)

PARENT_ENV = "WIDTHLAB_MLFLOW_PARENT_RUN_ID"


@cache
def git_commit() -> str:
    """The commit of the working tree ("+dirty" when it has uncommitted changes), or "unknown"."""
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True, timeout=10
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            capture_output=True, text=True, check=True, timeout=10,
        ).stdout.strip()  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return sha + ("+dirty" if dirty else "")


def flatten(cfg: Mapping[str, Any] | DictConfig, prefix: str = "") -> dict[str, Any]:
    """Nested config → {"a.b.c": value}; lists are kept as one value."""
    if isinstance(cfg, DictConfig):
        cfg = OmegaConf.to_container(cfg, resolve=True)
    flat: dict[str, Any] = {}
    for key, value in cfg.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten(value, prefix=f"{name}."))
        else:
            flat[name] = value
    return flat


def experiment_name(cfg: DictConfig, job_name: str) -> str:
    """`tracking.experiment`, else the study's name, else the job's name."""
    explicit = OmegaConf.select(cfg, "tracking.experiment")
    study = OmegaConf.select(cfg, "study.name")
    return str(explicit or study or job_name)


def _client(uri: str):
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=uri)


@contextmanager
def _store_creation_lock(uri: str) -> Iterator[None]:
    """An exclusive file lock beside a SQLite store while it may be created.

    Several processes opening a brand-new SQLite file at once race while creating its tables
    and some fail; once the tables exist, concurrent writers are fine. Other stores (a
    tracking server) need no lock.
    """
    if not uri.startswith("sqlite:///"):
        yield
        return
    import fcntl
    from pathlib import Path

    lock_path = Path(uri.removeprefix("sqlite:///") + ".lock")
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def ensure_experiment(uri: str, name: str) -> str:
    """The id of experiment `name` in the store at `uri`, creating store and experiment."""
    with _store_creation_lock(uri):
        client = _client(uri)
        exp = client.get_experiment_by_name(name)
        if exp is not None:
            return exp.experiment_id
        return client.create_experiment(name)


def _enabled(cfg: DictConfig) -> bool:
    return bool(OmegaConf.select(cfg, "tracking.enabled", default=False))


class JobRun:
    """One job's MLflow child run (or a no-op when tracking is off)."""

    def __init__(self, client: Any | None, run_id: str | None) -> None:
        self.client, self.run_id = client, run_id
        self.failed = False

    @property
    def active(self) -> bool:
        return self.run_id is not None

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        if not self.active or not metrics:
            return
        import time

        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        batch = [Metric(k, float(v), now, step or 0) for k, v in metrics.items()]
        for i in range(0, len(batch), 1000):
            self.client.log_batch(self.run_id, metrics=batch[i : i + 1000])

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        if self.active:
            from mlflow.entities import RunTag

            self.client.log_batch(self.run_id, tags=[RunTag(k, str(v)) for k, v in tags.items()])

    def mark_failed(self) -> None:
        """End the run as FAILED now (`job_run` then leaves it as it is)."""
        if self.active:
            self.client.set_terminated(self.run_id, status="FAILED")
            self.failed = True

    def log_artifact(self, path: str | os.PathLike[str], artifact_path: str | None = None) -> None:
        if self.active:
            self.client.log_artifact(self.run_id, str(path), artifact_path)


def close_stale_runs(cfg: DictConfig, job_name: str, key: str, status: str) -> int:
    """End the RUNNING runs of job `key` (left by a killed process) with `status`.

    FINISHED when the job's record shows it finished (it was killed between writing its
    record and closing its run), KILLED when it is about to be recomputed.
    """
    if not _enabled(cfg):
        return 0
    client = _client(str(cfg.tracking.uri))
    exp = client.get_experiment_by_name(experiment_name(cfg, job_name))
    return 0 if exp is None else _close_stale(client, exp.experiment_id, key, status)


def _close_stale(client: Any, experiment_id: str, key: str, status: str) -> int:
    stale = client.search_runs(
        [experiment_id], f"tags.`widthlab.key` = '{key}' and attributes.status = 'RUNNING'"
    )
    for run in stale:
        client.set_terminated(run.info.run_id, status=status)
    return len(stale)


@contextmanager
def job_run(
    cfg: DictConfig, job_name: str, stage: str, run_name: str | None = None
) -> Iterator[JobRun]:
    """A child run of the current sweep (a top-level run outside a multirun) for one job.

    Logs the resolved config (less `hydra`) as dotted params and the standard tags; the run
    ends FINISHED, or FAILED if the body raised (the exception propagates).
    """
    if not _enabled(cfg):
        yield JobRun(None, None)
        return
    from mlflow.entities import Param, RunTag
    from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID, MLFLOW_RUN_NAME

    uri = str(cfg.tracking.uri)
    experiment_id = ensure_experiment(uri, experiment_name(cfg, job_name))
    client = _client(uri)
    tags = {
        "widthlab.study": str(OmegaConf.select(cfg, "study.name") or job_name),
        "widthlab.stage": stage,
        "widthlab.git_commit": git_commit(),
        "widthlab.profile": str(OmegaConf.select(cfg, "profile.name")),
    }
    parent = os.environ.get(PARENT_ENV)
    if parent:
        tags[MLFLOW_PARENT_RUN_ID] = parent
    if run_name:
        tags[MLFLOW_RUN_NAME] = run_name
    if run_name:
        tags["widthlab.key"] = run_name
        # A job killed mid-run (out of time, a lost node) left its run RUNNING; its rerun
        # closes that one as KILLED instead of leaving a ghost beside the new run.
        _close_stale(client, experiment_id, run_name, "KILLED")
    run = client.create_run(experiment_id, tags=tags, run_name=run_name)
    job = JobRun(client, run.info.run_id)
    # `profile.*` sizes are already resolved into the groups that use them; keep its name.
    params = {
        k: v
        for k, v in flatten(cfg).items()
        if not k.startswith(("hydra.", "profile.")) or k == "profile.name"
    }
    batch = [Param(k, str(v)[:6000]) for k, v in sorted(params.items())]
    for i in range(0, len(batch), 100):
        client.log_batch(job.run_id, params=batch[i : i + 100])
    client.log_batch(job.run_id, tags=[RunTag("widthlab.job", job_name)])
    try:
        yield job
    except BaseException as exc:
        client.set_tag(job.run_id, "widthlab.failure", f"{type(exc).__name__}: {exc}"[:5000])
        client.set_terminated(job.run_id, status="FAILED")
        raise
    if not job.failed:
        client.set_terminated(job.run_id, status="FINISHED")


try:  # Hydra is a dependency, but keep the library importable without it.
    from hydra.experimental.callback import Callback
except ImportError:  # pragma: no cover
    Callback = object  # type: ignore[assignment,misc]


class MlflowSweepCallback(Callback):
    """Creates one parent run per multirun, before any job starts, without activating it."""

    def __init__(self) -> None:
        self.client: Any | None = None
        self.parent_id: str | None = None
        self.previous_env: str | None = None

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        if not _enabled(config):
            return
        from mlflow.utils.mlflow_tags import MLFLOW_RUN_NAME

        job_name = str(OmegaConf.select(config, "hydra.job.name") or "sweep")
        uri = str(config.tracking.uri)
        experiment_id = ensure_experiment(uri, experiment_name(config, job_name))
        self.client = _client(uri)
        overrides = list(OmegaConf.select(config, "hydra.overrides.task", default=[]) or [])
        sweep_params = OmegaConf.select(config, "hydra.sweeper.params", default=None)
        name = f"{job_name} sweep"
        # The same sweep killed earlier (SIGKILL: no exit handler ran) left its parent
        # RUNNING; this rerun is its continuation, so close that one as KILLED.
        joined = " ".join(overrides)[:5000].replace("'", "\\'")
        for old in self.client.search_runs(
            [experiment_id],
            "tags.`widthlab.stage` = 'sweep' and attributes.status = 'RUNNING' and "
            f"tags.`widthlab.overrides` = '{joined}'",
        ):
            self.client.set_terminated(old.info.run_id, status="KILLED")
        run = self.client.create_run(
            experiment_id,
            run_name=name,
            tags={
                MLFLOW_RUN_NAME: name,
                "widthlab.study": str(OmegaConf.select(config, "study.name") or job_name),
                "widthlab.stage": "sweep",
                "widthlab.git_commit": git_commit(),
                "widthlab.overrides": " ".join(overrides)[:5000],
                "widthlab.sweep_params": str(
                    OmegaConf.to_container(sweep_params) if sweep_params else {}
                )[:5000],
            },
        )
        self.parent_id = run.info.run_id
        # A sweep stopped early (a bad data file, Ctrl-C) never reaches on_multirun_end;
        # its parent run must not stay RUNNING forever.
        import atexit

        atexit.register(self._end_parent, "KILLED")
        self.previous_env = os.environ.get(PARENT_ENV)
        os.environ[PARENT_ENV] = self.parent_id
        log.info("MLflow parent run %s in %s", self.parent_id, uri)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        self._end_parent("FINISHED")

    def _end_parent(self, status: str) -> None:
        if self.parent_id is None:
            return
        self.client.set_terminated(self.parent_id, status=status)
        if self.previous_env is None:
            os.environ.pop(PARENT_ENV, None)
        else:
            os.environ[PARENT_ENV] = self.previous_env
        self.parent_id = None
