"""Running one job of a study sweep: measure, record, track. Edge code for `pipelines/`.

A study config names the config keys that identify a job within its sweep
(`study.job_keys`, e.g. `[model.width, model.depth, model.activation, seed]`). A job:

1. measures (a function of the config returning a flat dict of numbers);
2. writes its record atomically to `<paths.results_dir>/<study.name>/records/<key>.json`,
   `key` built from the job keys' values (a fixed path, never a timestamp);
3. logs the same metrics to its MLflow child run.

A job that raises (a NaN, a singular solve, a bug) does not stop the sweep: its record says
`"status": "failed"` with the reason, its MLflow run is marked FAILED, and the traceback goes
to the log. Configuration errors (`ConfigError`) are different: they stop everything at once,
before any work (see `widthlab.validation.exit_on_config_error`).
"""

from __future__ import annotations

import inspect
import json
import logging
import math
import os
import time
import traceback
from collections.abc import Callable, Mapping
from contextvars import ContextVar
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from widthlab.data import DataFileError
from widthlab.records import atomic_write_json, code_hash, config_hash, job_key, provenance
from widthlab.tracking import JobRun, close_stale_runs, job_run
from widthlab.validation import ConfigError

log = logging.getLogger(__name__)

# Top-level config keys that do not change a job's numbers (where results go, where they
# are logged): left out of the config hash.
NON_RESULT_KEYS = ("hydra", "paths", "tracking", "resume")

# Set by widthlab.schemas.SweepValidationCallback for the progress lines of a multirun.
SWEEP_SIZE_ENV = "WIDTHLAB_SWEEP_SIZE"
SWEEP_START_ENV = "WIDTHLAB_SWEEP_START"

_ACTIVE_RUN: ContextVar[JobRun | None] = ContextVar("widthlab_active_run", default=None)


def active_run() -> JobRun | None:
    """The MLflow child run of the job being measured (None outside `run_study_job`), for a
    measurement that logs more than its final metrics (training curves)."""
    return _ACTIVE_RUN.get()


def mlflow_metrics(metrics: Mapping[str, Any], prefix: str = "") -> dict[str, float]:
    """The finite numbers of a (nested) metrics mapping, named `outer/inner`; characters MLflow
    does not allow in a metric name (such as `=`) become `_`."""
    out: dict[str, float] = {}
    for key, value in metrics.items():
        name = prefix + "".join(c if c.isalnum() or c in "_-. /:" else "_" for c in str(key))
        if isinstance(value, Mapping):
            out.update(mlflow_metrics(value, prefix=f"{name}/"))
        elif isinstance(value, int | float) and not isinstance(value, bool):
            if math.isfinite(value):
                out[name] = float(value)
    return out


def kept_config(resolved: Mapping[str, Any]) -> dict[str, Any]:
    """The resolved config less `NON_RESULT_KEYS`, with `profile` reduced to its name (its
    sizes are already resolved into the groups that use them)."""
    kept = {k: v for k, v in resolved.items() if k not in NON_RESULT_KEYS}
    if isinstance(kept.get("profile"), Mapping):
        kept["profile"] = {"name": kept["profile"].get("name")}
    return kept


def resolve_device(name: str):
    """`device` from the config: "auto" is the first CUDA GPU when there is one, else the CPU."""
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError("device", name, "auto, cpu, cuda or cuda:<index>") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device", name, "auto or cpu (no CUDA device is available here)")
    return device


def job_identity(cfg: DictConfig) -> dict[str, Any]:
    """{key: value} for every key in `study.job_keys`."""
    keys = OmegaConf.select(cfg, "study.job_keys")
    if not keys:
        raise ConfigError("study.job_keys", keys, "a non-empty list of config keys")
    identity = {}
    for key in keys:
        value = OmegaConf.select(cfg, key, throw_on_missing=True)
        identity[key] = value
    return identity


def record_path(cfg: DictConfig, identity: Mapping[str, Any]) -> Path:
    return Path(cfg.paths.results_dir) / cfg.study.name / "records" / f"{job_key(identity)}.json"


def cached_record(path: Path, config_hash_: str, code_hash_: str) -> dict[str, Any] | None:
    """The finished record at `path` if it was made from the same config by the same code,
    else None."""
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return None  # absent, or unreadable: recompute
    same = record.get("config_hash") == config_hash_ and record.get("code_hash") == code_hash_
    return record if record.get("status") == "ok" and same else None


def progress_line(cfg: DictConfig, key: str, shown: str, seconds: float, how: str) -> str:
    """`[k/N] study key: metric (time, run|cached) — ~ETA left`, for one finished job.

    k is Hydra's job number within the sweep; N and the sweep's start come from the
    environment set by `widthlab.schemas.SweepValidationCallback`. The estimate assumes the
    remaining jobs take as long on average as the finished ones (optimistic for sweeps that
    grow their widths, and per worker under parallel launchers).
    """
    total = int(os.environ.get(SWEEP_SIZE_ENV, "0") or 0)
    started = float(os.environ.get(SWEEP_START_ENV, "0") or 0)
    try:
        from hydra.core.hydra_config import HydraConfig

        k = int(HydraConfig.get().job.num) + 1
    except Exception:  # a single run, or no Hydra at all
        k = 0
    text = f"{cfg.study.name} {key}:{shown} ({seconds:.2f} s, {how})"
    if not (total and k and started):
        return text
    elapsed = time.time() - started
    eta = elapsed / k * max(total - k, 0)
    return f"[{k}/{total}] {text}, ~{eta / 60:.1f} min left"


def run_study_job(
    cfg: DictConfig,
    measure: Callable[[DictConfig], Mapping[str, Any]],
    headline: str | None = None,
    entry: str | None = None,
) -> dict[str, Any]:
    """Measure, record and track one job of the study `cfg.study.name`; returns the record.

    `measure(cfg)` returns a flat mapping: numbers become MLflow metrics; anything else
    (short lists, strings) is kept in the record only. With `resume: true` (the default) a job
    whose record exists, finished, for the same config hash and code hash (`widthlab.records.
    code_hash`: the package and the entry point) is skipped and reported as cached,
    without an MLflow run, so rerunning an interrupted sweep recomputes and relogs nothing
    that finished; failed jobs are recomputed.
    """
    identity = job_identity(cfg)
    key = job_key(identity)
    path = record_path(cfg, identity)
    resolved = kept_config(OmegaConf.to_container(cfg, resolve=True))
    digest = config_hash(resolved)
    # The entry point's file joins the code hash: given by the pipeline (`__file__`, which
    # survives the pickling of parallel launchers), else where `measure` is defined.
    entry = entry or inspect.getsourcefile(measure)
    code = code_hash(*([entry] if entry and os.path.isfile(entry) else []))
    if OmegaConf.select(cfg, "resume", default=True):
        cached = cached_record(path, digest, code)
        if cached is not None:
            close_stale_runs(cfg, cfg.study.name, key, "FINISHED")
            metrics = cached["metrics"]
            shown = f" {headline}={metrics[headline]:.4g}" if headline in metrics else ""
            log.info(progress_line(cfg, key, shown, cached["timing"]["seconds"], "cached"))
            return cached
    record: dict[str, Any] = {
        "study": cfg.study.name,
        "key": key,
        "job": identity,
        "config_hash": digest,
        "code_hash": code,
        "config": resolved,
        "provenance": provenance(),
    }
    start = time.perf_counter()
    with job_run(cfg, job_name=cfg.study.name, stage=cfg.study.name, run_name=key) as run:
        token = _ACTIVE_RUN.set(run)
        try:
            metrics = dict(measure(cfg))
        except (ConfigError, DataFileError):
            raise  # every job of the sweep would fail the same way: stop it now
        except Exception as exc:  # one failed cell must not stop the sweep
            log.error("job %s failed:\n%s", key, traceback.format_exc())
            record.update(status="failed", reason=f"{type(exc).__name__}: {exc}", metrics={})
            record["timing"] = {"seconds": time.perf_counter() - start}
            atomic_write_json(path, record)
            run.set_tags({"widthlab.failure": record["reason"][:5000]})
            run.mark_failed()
            log.info(progress_line(cfg, key, " FAILED", record["timing"]["seconds"], "run"))
            return record
        finally:
            _ACTIVE_RUN.reset(token)
        record.update(status="ok", metrics=metrics)
        record["timing"] = {"seconds": time.perf_counter() - start}
        # Metrics first, the record last: a job killed in between has a complete run and
        # no record, and is simply recomputed.
        run.log_metrics({**mlflow_metrics(metrics), "seconds": record["timing"]["seconds"]})
        atomic_write_json(path, record)
    shown = f" {headline}={metrics[headline]:.4g}" if headline in metrics else ""
    log.info(progress_line(cfg, key, shown, record["timing"]["seconds"], "run"))
    return record
