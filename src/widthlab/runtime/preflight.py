"""One pre-flight: everything checkable is checked before the first job and any MLflow run.

`preflight(configs, study)` takes the resolved, schema-checked config of every job of a
sweep (one for a single run) and checks, stopping at the first problem with one line:

- paths: the folders it writes (results, reports) exist or can be made, are folders and
  are writable; the data folder is a folder;
- targets: every `_target_` imports and is of the right kind (`model._target_` an
  `nn.Module`, `train.trainer._target_` a Lightning `Trainer`);
- data files: each distinct data set the jobs read exists, its card is well formed, its
  arrays match their checksums, and it was made with the settings the jobs ask for;
- memory: every job's estimated peak (its study's formula) fits in `max_memory_gb`, or in
  the memory available now, and so do the largest ones together when a parallel launcher
  runs several side by side; on a GPU (`device` resolves to CUDA) the same in its free
  memory, which every worker of the launcher shares;
- tracking: the URI's scheme is one MLflow stores take; a SQLite store that exists is
  opened and its schema checked (an MLflow store, intact, at the schema revision this MLflow
  writes, writable), so a corrupt, foreign or half-created store is one line saying what to
  do, not a traceback from the first job; a server answers within a few seconds (no
  250-second retry loop);
- space: every folder it writes has some free space left (`MIN_FREE_BYTES`);
- launcher: a parallel launcher's `n_jobs` is a count joblib takes.
"""

from __future__ import annotations

import os
import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping
from functools import cache
from pathlib import Path
from typing import Any

from widthlab.runtime.errors import BadFile, ConfigError, ResourceError, StorageError

DATABASE_SCHEMES = ("postgresql", "mysql", "mssql", "databricks")
SERVER_TIMEOUT_S = 5.0
# Below this much free space a folder is full for an entry point: a record, a summary or a
# page of the tracking store needs a few kilobytes, a new store about a megabyte.
MIN_FREE_BYTES = 2**20


def check_writable_dir(key: str, value: str) -> None:
    """`value` is a folder that exists and is writable, or can be created, on a file system
    with space left (`MIN_FREE_BYTES`)."""
    path = Path(value)
    if path.exists():
        if not path.is_dir():
            raise BadFile(path, f"{key} must be a folder, but this is a file")
        if not os.access(path, os.W_OK | os.X_OK):
            raise BadFile(path, f"{key} is not writable")
        check_free_space(path)
        return
    parent = path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise BadFile(parent, f"{key}={value} cannot be created: {parent} is a file")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise BadFile(parent, f"{key}={value} cannot be created here: not writable")
    check_free_space(parent)


def check_free_space(folder: Path) -> None:
    """The file system of `folder` has at least `MIN_FREE_BYTES` free."""
    import errno
    import shutil

    from widthlab.runtime.errors import storage_advice

    free = shutil.disk_usage(folder).free
    if free < MIN_FREE_BYTES:
        raise StorageError(folder, f"{free} bytes free, {storage_advice(errno.ENOSPC)}")


def check_paths(paths: Mapping[str, Any], writes: Iterable[str]) -> None:
    """Refuse output folders that are not writable folders, and a data path that is a file."""
    for name in writes:
        check_writable_dir(f"paths.{name}_dir", str(paths[f"{name}_dir"]))
    data = Path(str(paths["data_dir"]))
    if data.exists() and not data.is_dir():
        raise BadFile(data, "paths.data_dir must be a folder, but this is a file")


def _import_target(key: str, target: str, base: type, kind: str) -> None:
    from widthlab.runtime.study import get_class_quietly

    try:
        cls = get_class_quietly(target)
    except Exception as exc:
        cause = exc.__cause__ or exc
        raise ConfigError(key, target, f"an importable {kind} ({type(cause).__name__})") from None
    if not (isinstance(cls, type) and issubclass(cls, base)):
        raise ConfigError(key, target, f"a subclass of {base.__module__}.{base.__qualname__}")


def check_targets(resolved: Mapping[str, Any], groups: Iterable[str]) -> None:
    """Refuse a `_target_` of the groups a job reads that is not importable or not of the right
    kind."""
    groups = set(groups)
    model = resolved.get("model") or {}
    if "model" in groups and "_target_" in model:
        from torch import nn

        _import_target("model._target_", model["_target_"], nn.Module, "network class")
    train = resolved.get("train") or {}
    if "train" in groups and "_target_" in (train.get("trainer") or {}):
        import pytorch_lightning as pl

        _import_target(
            "train.trainer._target_", train["trainer"]["_target_"], pl.Trainer, "Lightning Trainer"
        )


def check_data(configs: Iterable[Mapping[str, Any]]) -> None:
    """Each distinct data set the jobs read: present, intact, made with their settings."""
    from widthlab.runtime.datafiles import load_dataset

    seen = set()
    for cfg in configs:
        data = cfg["data"]
        marker = (data["name"], repr(sorted(data.items())), cfg["paths"]["data_dir"])
        if marker in seen:
            continue
        seen.add(marker)
        profile = (cfg.get("profile") or {}).get("name")
        load_dataset(data["name"], cfg["paths"]["data_dir"], expected=data, profile=profile)


def available_memory() -> int:
    """Bytes the system can give a new allocation now (MemAvailable)."""
    import psutil

    return int(psutil.virtual_memory().available)


def gpu_free_memory(cfg: Mapping[str, Any]) -> tuple[int, str] | None:
    """(free bytes, its name) of the GPU the jobs' `device` resolves to; None on the CPU."""
    from widthlab.runtime.devices import resolve_device

    device = resolve_device(str(cfg.get("device", "auto")))
    if device.type != "cuda":
        return None
    import torch

    free, _ = torch.cuda.mem_get_info(device)
    return int(free), f"the free memory of {device} (device={cfg.get('device')})"


def check_memory(
    configs: list[Mapping[str, Any]],
    estimate,
    keys: list[str],
    concurrent: int = 1,
    gpu: tuple[int, str] | None = None,
) -> None:
    """Refuse the sweep when its jobs' estimated peaks exceed the limit, naming the job: one
    job alone, or with `concurrent` jobs side by side (a parallel launcher on this machine),
    the largest estimates together. The limit is the host's (`max_memory_gb`, else what is
    available), or with `gpu` (`gpu_free_memory`) the GPU's: a job's tensors live on the
    device, so its estimate holds there too, and a launcher's workers share the one GPU."""
    limit_gb = configs[0].get("max_memory_gb")
    limit = int(limit_gb * 2**30) if limit_gb else available_memory()
    source = f"max_memory_gb={limit_gb}" if limit_gb else "the memory available now"
    more = "set max_memory_gb if this machine has more to give"
    if gpu is not None:
        (limit, source), more = gpu, "run them on the CPU (device=cpu)"
    needs = [float(estimate(cfg)) for cfg in configs]
    for need, key in zip(needs, keys, strict=True):
        if need > limit:
            raise ResourceError(
                f"job `{key}` needs about {need / 2**30:.1f} GiB (estimated peak), more than "
                f"the {limit / 2**30:.1f} GiB of {source}: choose a smaller size, or {more}"
            )
    side_by_side = min(int(concurrent), len(needs))
    if side_by_side > 1:
        largest = sorted(zip(needs, keys, strict=True), reverse=True)[:side_by_side]
        total = sum(need for need, _ in largest)
        if total > limit:
            raise ResourceError(
                f"{side_by_side} jobs side by side (the parallel launcher's workers) need about "
                f"{total / 2**30:.1f} GiB together (largest: `{largest[0][1]}`), more than the "
                f"{limit / 2**30:.1f} GiB of {source}: set hydra.launcher.n_jobs lower, "
                f"choose smaller sizes, or {more}"
            )


def concurrent_jobs(launcher: Mapping[str, Any] | None) -> int:
    """How many jobs the sweep's Hydra launcher runs side by side on this machine: joblib's
    n_jobs (also through `JoblibTemplateLauncher`; −1: every core, −2: all but one, as joblib
    counts), 1 for the basic launcher and for submitit, whose jobs each get their own
    allocation."""
    import os

    launcher = launcher or {}
    if "joblib" not in str(launcher.get("_target_", "")).lower():
        return 1
    n_jobs = int(launcher.get("n_jobs") or 1)
    cores = os.cpu_count() or 1
    return max(1, cores + 1 + n_jobs if n_jobs < 0 else n_jobs)


def check_tracking(tracking: Mapping[str, Any]) -> None:
    """The tracking URI is one MLflow stores take and, for a server, answers quickly."""
    if not tracking.get("enabled"):
        return
    uri = str(tracking.get("uri"))
    allowed = (
        "sqlite:///<path>, http(s)://<host>:<port> of an MLflow server, or a "
        f"database URI ({', '.join(DATABASE_SCHEMES)})"
    )
    scheme = uri.split("://", 1)[0] if "://" in uri else ""
    base = scheme.split("+", 1)[0]
    if uri.startswith("sqlite:///"):
        path = Path(uri.removeprefix("sqlite:///"))
        if path.exists() and not path.is_file():
            raise BadFile(path, "tracking.uri points at a folder, not a SQLite file")
        if path.exists():
            check_sqlite_store(path)
        check_writable_dir("tracking.uri's folder", str(path.parent))  # SQLite's journal
    elif base in ("http", "https"):
        try:
            with urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=SERVER_TIMEOUT_S):
                pass
        except (urllib.error.URLError, OSError, ValueError) as exc:
            reason = getattr(exc, "reason", exc)
            allowed = f"a reachable MLflow server (got: {reason})"
            raise ConfigError("tracking.uri", uri, allowed) from None
    elif base not in DATABASE_SCHEMES:
        raise ConfigError("tracking.uri", uri, allowed)


SQLITE_HEADER = b"SQLite format 3\x00"


@cache
def mlflow_schema_head() -> str | None:
    """The schema revision the installed MLflow writes: the one revision of its Alembic
    migration scripts that no other revises (read as text: importing the ~50 scripts costs
    seconds), or None if not found."""
    import importlib.util
    import re

    spec = importlib.util.find_spec("mlflow")
    if spec is None or spec.origin is None:
        return None
    folder = Path(spec.origin).parent / "store" / "db_migrations" / "versions"
    revisions, revised = set(), set()
    for script in folder.glob("*.py"):
        text = script.read_text(errors="replace")
        found = re.search(r"^revision\s*=\s*['\"]([0-9a-z_]+)['\"]", text, re.M)
        down = re.search(r"^down_revision\s*=\s*(.+)$", text, re.M)
        if found:
            revisions.add(found.group(1))
        if down:
            revised.update(re.findall(r"['\"]([0-9a-z_]+)['\"]", down.group(1)))
    heads = revisions - revised
    return heads.pop() if len(heads) == 1 else None


def check_sqlite_store(path: Path) -> None:
    """An existing SQLite tracking store is an intact, complete MLflow store this process
    can write; else `BadFile` saying what it is and what to do."""
    import sqlite3

    remove = "remove it (or move it away): the next run makes a new store"
    with open(path, "rb") as fh:
        header = fh.read(len(SQLITE_HEADER))
    if not header:
        raise BadFile(path, f"tracking.uri: an empty file, not an MLflow store: {remove}")
    if header != SQLITE_HEADER:
        raise BadFile(
            path,
            "tracking.uri: not an SQLite database, so not an MLflow store: point tracking.uri "
            "at another file, or move this one away",
        )
    if not os.access(path, os.R_OK | os.W_OK):
        raise BadFile(path, "tracking.uri: the store is read-only here: make it writable")
    try:
        con = sqlite3.connect(path)
        try:
            check = con.execute("PRAGMA quick_check").fetchone()
            if check is None or check[0] != "ok":
                raise sqlite3.DatabaseError(check[0] if check else "no answer")
            tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master")}
            version = None
            if "alembic_version" in tables:
                row = con.execute("SELECT version_num FROM alembic_version").fetchone()
                version = row[0] if row else None
        finally:
            con.close()
    except sqlite3.DatabaseError as exc:
        raise BadFile(
            path,
            f"tracking.uri: the MLflow store is damaged (SQLite: {exc}): restore it from a "
            f"backup, or {remove} (its runs are lost; records and results are not)",
        ) from None
    if "alembic_version" not in tables or "runs" not in tables:
        raise BadFile(
            path,
            "tracking.uri: an SQLite database, but not an MLflow store (no MLflow tables): "
            "point tracking.uri at another file, or move this one away",
        )
    head = mlflow_schema_head()
    if head is not None and version != head:
        raise BadFile(
            path,
            f"tracking.uri: an MLflow store at schema revision {version}, but this MLflow "
            f"writes {head}: a store whose creation was interrupted (a full disk, a kill): "
            f"{remove}; or one made by another MLflow version: back it up and run `mlflow db "
            f"upgrade sqlite:///{path}`",
        )


def check_launcher(launcher: Mapping[str, Any] | None) -> None:
    """A joblib launcher's `n_jobs` is a count joblib takes (not 0, an integer)."""
    from widthlab.checks import is_int

    launcher = launcher or {}
    if "joblib" not in str(launcher.get("_target_", "")).lower():
        return
    n_jobs = launcher.get("n_jobs")
    if n_jobs is not None and (not is_int(n_jobs) or n_jobs == 0):
        raise ConfigError(
            "hydra.launcher.n_jobs",
            n_jobs,
            "a number of jobs side by side: an integer ≥ 1, or −1 for one per core (−2: all "
            "but one)",
        )


def preflight(
    configs: list[Mapping[str, Any]],
    study: Any,
    keys: list[str] | None = None,
    writes: Iterable[str] = ("results",),
    concurrent: int = 1,
) -> None:
    """Run every check of the module docstring over the jobs' resolved configs;
    `concurrent`: how many of them run side by side (`concurrent_jobs`)."""
    first = configs[0]
    check_paths(first["paths"], writes)
    jobs = [study.job(cfg["study"]["job"]) for cfg in configs]
    kinds = {cfg["study"]["job"]: job for cfg, job in zip(configs, jobs, strict=True)}
    for cfg, job in zip(configs[:1], jobs[:1], strict=True):
        check_targets(cfg, job.groups)
    if any("data" in job.groups for job in kinds.values()):
        check_data(c for c, j in zip(configs, jobs, strict=True) if "data" in j.groups)
    if keys is None:
        from omegaconf import OmegaConf

        from widthlab.runtime.records import job_key

        keys = []
        for cfg in configs:
            node = OmegaConf.create(cfg)
            keys.append(job_key({k: OmegaConf.select(node, k) for k in cfg["study"]["job_keys"]}))
    estimate = lambda cfg: study.job(cfg["study"]["job"]).peak_memory(cfg)  # noqa: E731
    check_memory(configs, estimate, keys, concurrent)
    gpu = gpu_free_memory(first)
    if gpu is not None:
        check_memory(configs, estimate, keys, concurrent, gpu)
    check_tracking(first["tracking"])
