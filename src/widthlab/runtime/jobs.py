"""Running one job of a study: check, measure, record, track. Edge code for `pipelines/`.

A study config names the job kind it runs (`study.job`) and the config keys that identify
a job within its sweep (`study.job_keys`). A job:

1. is planned (`plan_job`): its key, record path, config hash (the data file's sha256
   included) and code hash;
2. takes an exclusive lock on its key, so two sweeps racing on one records folder compute
   it once: the second finds the first one's record;
3. with `resume: true`, is skipped (reported as cached, no MLflow run) when a finished
   record exists for the same config and code;
4. measures on `threads` CPU threads, logs an MLflow child run and writes its record
   atomically (metrics first, record last: a job killed in between is simply recomputed).
   The record says how long the tracking calls took (`timing.tracking_seconds`); a tracking
   store unreachable past MLflow's retries does not lose the result: the record says so
   (`tracking_lost`) and is not reused, so a rerun computes and logs that job.

A record is reused when its code is the same (`code_hash`: the job's modules and what they
import, `runtime.sources`) and every setting its measurement read (`reads`, recorded while it
ran: `runtime.reads`) has the same value now, with the data file's sha256, `threads` and
`device`: a change that only some jobs read recomputes only those.

A job that raises (a NaN, a singular solve, a bug) does not stop the sweep: its record says
`"status": "failed"` with the reason and its MLflow run is FAILED. Errors in what it was
given (`runtime.errors.STOPPING_ERRORS`) stop everything at once.
"""

from __future__ import annotations

import logging
import os
import time
import traceback
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from widthlab.runtime.active_runs import ACTIVE_RUN
from widthlab.runtime.datafiles import data_paths, file_digest
from widthlab.runtime.devices import fixed_threads
from widthlab.runtime.errors import STOPPING_ERRORS, ConfigError, DataFileError, storage_error
from widthlab.runtime.parents import dirty_tags
from widthlab.runtime.reads import recorded_reads
from widthlab.runtime.records import atomic_write_json, config_hash, job_key, provenance
from widthlab.runtime.schemas import validate_config
from widthlab.runtime.sources import digest, record_code_files
from widthlab.runtime.study import Job, Study, load_study
from widthlab.runtime.tracking import (
    JobRun,
    close_stale_runs,
    flatten,
    job_run,
    metric_points,
    short_run_name,
)
from widthlab.runtime.usage import keep_worker_caches, reset_peak_rss, rss_mb, timing

log = logging.getLogger(__name__)

# Top-level keys that do not change a job's numbers (where results go, where they are
# logged, how much memory may be used): left out of the config hash and the record.
NON_RESULT_KEYS = ("hydra", "paths", "tracking", "resume", "dry_run", "max_memory_gb")
# Settings every job's numbers depend on, read by the runner rather than by `measure`.
RUNNER_READS = ("threads", "device")
# Set by `runtime.sweep.SweepCallback` for the progress lines of a multirun.
SWEEP_SIZE_ENV = "WIDTHLAB_SWEEP_SIZE"
SWEEP_START_ENV = "WIDTHLAB_SWEEP_START"


def kept_config(resolved: Mapping[str, Any]) -> dict[str, Any]:
    """The resolved config less `NON_RESULT_KEYS`, with `profile` reduced to its name (its
    sizes are already resolved into the groups that use them)."""
    kept = {k: v for k, v in resolved.items() if k not in NON_RESULT_KEYS}
    if isinstance(kept.get("profile"), Mapping):
        kept["profile"] = {"name": kept["profile"].get("name")}
    return kept


@cache
def study_code_hash(study_type: type) -> str:
    """The digest of the code a study's records come from (`sources.record_code_files`)."""
    return digest(record_code_files(study_type.source_files()))


@dataclass(frozen=True)
class JobPlan:
    """Everything about a job that is known before it runs."""

    kind: str
    identity: dict[str, Any]
    key: str
    path: Path
    config: dict[str, Any]  # kept_config, the data file's sha256 included
    config_hash: str
    code_hash: str
    data: tuple[str, Path, str] | None  # (name, npz path, sha256) when the job reads data


def plan_job(resolved: Mapping[str, Any], study: Study) -> JobPlan:
    """The plan of one job from its resolved, validated config."""
    s = resolved["study"]
    kind = s["job"]
    node = OmegaConf.create(resolved)
    identity = {k: OmegaConf.select(node, k) for k in s["job_keys"]}
    key = job_key(identity)
    path = Path(resolved["paths"]["results_dir"]) / s["name"] / "records" / kind / f"{key}.json"
    config = kept_config(resolved)
    data = None
    if "data" in study.job(kind).groups:
        name = resolved["data"]["name"]
        npz, _ = data_paths(name, resolved["paths"]["data_dir"])
        if not npz.is_file():
            profile = (resolved.get("profile") or {}).get("name")
            command = f"python pipelines/data.py data={name}" + (
                f" profile={profile}" if profile else ""
            )
            raise DataFileError(
                f"data set {name!r} not found in {npz.parent}/: make it with `{command}`"
            )
        data = (name, npz, file_digest(npz))
        config["data_sha256"] = data[2]
    return JobPlan(
        kind, identity, key, path, config, config_hash(config), study_code_hash(type(study)), data
    )


def cached_record(plan: JobPlan) -> dict[str, Any] | None:
    """The finished record of `plan`'s job made by the same code from the same values of
    every setting it read (module docstring); a record without `reads` must have the same
    whole config."""
    import json

    from widthlab.runtime.reads import changed_reads

    try:
        record = json.loads(plan.path.read_text())
    except (OSError, ValueError):
        return None  # absent, or unreadable: recompute
    if not isinstance(record, dict) or record.get("status") != "ok":
        return None
    if record.get("tracking_lost"):
        return None  # its result is kept, but its MLflow run is missing: compute and log it
    if record.get("code_hash") != plan.code_hash:
        return None
    reads = record.get("reads")
    if not isinstance(reads, dict):
        return record if record.get("config_hash") == plan.config_hash else None
    return None if changed_reads(reads, plan.config) else record


def job_reads(reads: Mapping[str, Any], plan: JobPlan) -> dict[str, Any]:
    """What a record keeps of the values its measurement read: the result settings (not
    paths, tracking or the profile's name, which locate things), the runner's settings and
    the data file's digest, sorted."""
    from widthlab.runtime.reads import lookup

    skipped = (*NON_RESULT_KEYS, "profile")
    kept = {k: v for k, v in reads.items() if k.split(".")[0] not in skipped}
    for key in (*RUNNER_READS, "data_sha256"):
        if key in plan.config:
            kept[key] = lookup(plan.config, key)
    return dict(sorted(kept.items()))


def measured_config(resolved: Mapping[str, Any]) -> DictConfig:
    """The config a job's `measure` gets: its resolved values, in struct mode (a key that is
    not there raises, as in Hydra's), with no interpolation left to read other keys."""
    cfg = OmegaConf.create(dict(resolved))
    OmegaConf.set_struct(cfg, True)
    return cfg


def in_multirun() -> bool:
    """Whether the current Hydra run is a multirun (False outside any Hydra run)."""
    try:
        from hydra.core.hydra_config import HydraConfig
        from hydra.types import RunMode

        return HydraConfig.get().mode == RunMode.MULTIRUN
    except Exception:  # no Hydra run at all (a test calling run_job directly)
        return False


def progress_line(study: str, key: str, shown: str, seconds: float, how: str) -> str:
    """`[k/N] study key: metric (time, run|cached), ~ETA left` for one finished job.

    k is Hydra's job number; N and the sweep's start come from the environment set by the
    sweep callback. The estimate assumes the remaining jobs take as long on average as the
    finished ones (optimistic for sweeps that grow their widths, and per worker under
    parallel launchers).
    """
    total = int(os.environ.get(SWEEP_SIZE_ENV, "0") or 0)
    started = float(os.environ.get(SWEEP_START_ENV, "0") or 0)
    try:
        from hydra.core.hydra_config import HydraConfig

        k = int(HydraConfig.get().job.num) + 1
    except Exception:  # a single run, or no Hydra at all
        k = 0
    text = f"{study} {key}:{shown} ({seconds:.2f} s, {how})"
    if not (total and k and started):
        return text
    eta = (time.time() - started) / k * max(total - k, 0)
    return f"[{k}/{total}] {text}, ~{eta / 60:.1f} min left"


def run_job(cfg: DictConfig) -> dict[str, Any]:
    """Check and run the job `cfg` describes (`pipelines/run.py`); returns its record.

    Outside a multirun everything checkable is checked first (`runtime.preflight`); inside
    one the sweep callback has checked every job before the first started.
    """
    from widthlab.runtime.preflight import preflight

    target = OmegaConf.select(cfg, "study._target_", default=None)
    if target is None:
        raise ConfigError("study", None, f"one of {study_choices()} (study=<name>)")
    study = load_study(target)
    kind = OmegaConf.select(cfg, "study.job", default=None)
    resolved = validate_config(cfg, study.job(kind).groups, study)
    if not in_multirun():
        from widthlab.runtime.unread import (
            STAGE_KEYS,
            check_unread,
            command_line_values,
            task_overrides,
        )

        typed = command_line_values(*task_overrides())
        check_unread(study, resolved["study"]["name"], [kind], typed, skip=STAGE_KEYS)
        preflight([resolved], study, writes=("results",))
        if resolved["dry_run"]:
            return dry_run_job(study, resolved)
    return run_study_job(study, resolved)


def dry_run_job(study: Study, resolved: Mapping[str, Any]) -> dict[str, Any]:
    """Print what the job would do (`progress.dry_run_table`) and do nothing; returns {}."""
    from types import SimpleNamespace

    from widthlab.runtime.progress import dry_run_table

    plan = plan_job(resolved, study)
    cached = bool(resolved["resume"]) and cached_record(plan) is not None
    one = SimpleNamespace(
        study=study, sweep=plan.key, resolved=[resolved], plans=[plan], cached=[cached]
    )
    print(dry_run_table(one))
    return {}


def study_choices() -> list[str]:
    """The study configs Hydra can compose (the options of the `study` group)."""
    from hydra.core.global_hydra import GlobalHydra

    try:
        loader = GlobalHydra.instance().config_loader()
        return sorted(o for o in loader.get_group_options("study") if not o.endswith("/common"))
    except Exception:  # outside a Hydra app
        return []


def _params(resolved: Mapping[str, Any], job: Job) -> dict[str, Any]:
    """The config a job reads, as dotted MLflow params: its groups, the root settings and
    the profile's name (its sizes are resolved into the groups)."""
    groups = {g: resolved.get(g) for g in (*job.groups, "study") if resolved.get(g) is not None}
    root = {k: resolved[k] for k in ("seed", "device", "threads") if k in resolved}
    profile = {"profile": {"name": (resolved.get("profile") or {}).get("name")}}
    return flatten({**groups, **root, **profile})


def run_study_job(study: Study, resolved: Mapping[str, Any]) -> dict[str, Any]:
    """Plan, lock, measure, record and track one job (module docstring); returns the record."""
    from filelock import FileLock

    plan = plan_job(resolved, study)
    job = study.job(plan.kind)
    name = resolved["study"]["name"]
    tracking = resolved["tracking"]
    lock_path = plan.path.parent.parent / ".locks" / plan.kind / f"{plan.key}.lock"
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(lock_path):
        if resolved["resume"]:
            cached = cached_record(plan)
            if cached is not None:
                if tracking["enabled"]:
                    from widthlab.runtime.tracking import ensure_experiment

                    uri = str(tracking["uri"])
                    experiment = ensure_experiment(uri, experiment_name(resolved), study.question)
                    close_stale_runs(uri, experiment, plan.key, "FINISHED")
                log.info(
                    progress_line(
                        name,
                        plan.key,
                        _shown(job, cached["metrics"]),
                        cached["timing"]["seconds"],
                        "cached",
                    )
                )
                return cached
        return _compute(study, job, plan, resolved)


def experiment_name(resolved: Mapping[str, Any]) -> str:
    """`tracking.experiment`, else the study's name."""
    return str(resolved["tracking"].get("experiment") or resolved["study"]["name"])


def _shown(job: Job, metrics: Mapping[str, Any]) -> str:
    value = metrics.get(job.headline) if job.headline else None
    return f" {job.headline}={value:.4g}" if isinstance(value, int | float) else ""


def new_record(study: Study, job: Job, plan: JobPlan, resolved) -> dict[str, Any]:
    """A job's record before it is measured: what identifies it and where it came from."""
    return {
        "study": resolved["study"]["name"],
        "job_kind": plan.kind,
        "key": plan.key,
        "job": plan.identity,
        "config_hash": plan.config_hash,
        "code_hash": plan.code_hash,
        "config": plan.config,
        "provenance": provenance(),
        "memory": {"estimate_mb": round(job.peak_memory(resolved) / 2**20, 1)},
    }


@contextmanager
def open_run(study: Study, job: Job, plan: JobPlan, resolved, record) -> Iterator[JobRun]:
    """The job's MLflow child run (`tracking.job_run`), its data file logged as its input."""
    tags = {
        "widthlab.key": plan.key,
        "widthlab.study": record["study"],
        "widthlab.job": plan.kind,
        "widthlab.profile": str(plan.config.get("profile", {}).get("name")),
        "widthlab.stage": record["study"],
        **dirty_tags(record["provenance"]["git_commit"]),
    }
    with job_run(
        resolved["tracking"],
        experiment_name(resolved),
        study.question,
        short_run_name(plan.identity),
        tags,
        _params(resolved, job),
    ) as run:
        if plan.data is not None:
            run.log_dataset(*plan.data)
        yield run


def _compute(study: Study, job: Job, plan: JobPlan, resolved) -> dict[str, Any]:
    record = new_record(study, job, plan, resolved)
    keep_worker_caches()
    reset_peak_rss()
    baseline_mb = round(rss_mb(), 1)
    start = time.perf_counter()
    with (
        open_run(study, job, plan, resolved, record) as run,
        fixed_threads(int(resolved["threads"])),
    ):
        token = ACTIVE_RUN.set(run)
        measured = measured_config(resolved)
        try:
            with recorded_reads(measured) as reads:
                metrics = dict(job.measure(measured))
            if not metrics:
                raise RuntimeError("the measurement returned no metrics")
        except STOPPING_ERRORS:
            raise  # every job of the sweep would fail the same way: stop it now
        except Exception as exc:  # one failed cell must not stop the sweep
            full = storage_error(exc)
            if full is not None:
                raise full from None  # a full disk: every later job would fail too
            log.error("job %s failed:\n%s", plan.key, traceback.format_exc())
            record.update(status="failed", reason=f"{type(exc).__name__}: {exc}", metrics={})
            record["timing"] = timing(start, baseline_mb)
            run.mark_failed(record["reason"])
            run.note(record)
            atomic_write_json(plan.path, record)
            log.info(
                progress_line(
                    record["study"], plan.key, " FAILED", record["timing"]["seconds"], "run"
                )
            )
            return record
        finally:
            ACTIVE_RUN.reset(token)
        record.update(
            status="ok",
            reads=job_reads(reads, plan),
            metrics=metrics,
            timing=timing(start, baseline_mb),
        )
        run.log_points([*metric_points(metrics), ("seconds", record["timing"]["seconds"], 0)])
    run.note(record)  # once the run has ended
    atomic_write_json(plan.path, record)
    log.info(
        progress_line(
            record["study"], plan.key, _shown(job, metrics), record["timing"]["seconds"], "run"
        )
    )
    return record


def job_identity(cfg: DictConfig) -> dict[str, Any]:
    """{key: value} for every key in `study.job_keys`."""
    keys = OmegaConf.select(cfg, "study.job_keys")
    if not keys:
        raise ConfigError("study.job_keys", keys, "a non-empty list of config keys")
    return {key: OmegaConf.select(cfg, key, throw_on_missing=True) for key in keys}
