"""Job records: one small JSON file per job at a fixed path, written atomically.

A record holds what the job measured, the values that identify it within its sweep, a hash
of the resolved config that affects results (the data file's digest included), the values
of the settings its measurement read (`runtime.reads`), a digest of the code that computed
it (`runtime.sources`), and where it came from (git commit, package versions). Paths
never contain timestamps: `<results_dir>/<study>/records/<job>/<key>.json` with `key` built
from the swept values (`model.depth=2,model.width=1024,seed=3`). Writing goes to a temporary
file in the same folder that is then renamed into place (`runtime.atomic`), so a killed job
leaves the old record or the new one, never half of one.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import platform
import subprocess
from collections.abc import Mapping
from functools import cache
from importlib import metadata
from pathlib import Path
from typing import Any

from widthlab.runtime.atomic import atomic_write_bytes, atomic_write_set  # noqa: F401
from widthlab.runtime.errors import BadFile


def jsonable(obj: Any) -> Any:
    """Plain JSON types; non-finite floats become null (strict JSON readers reject NaN)."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, Mapping):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [jsonable(v) for v in obj]
    if hasattr(obj, "item") and callable(obj.item):  # numpy / torch scalars
        return jsonable(obj.item())
    return obj


def json_text(obj: Any) -> str:
    """Sorted, indented, strict JSON with a final newline."""
    return json.dumps(jsonable(obj), indent=2, sort_keys=True, allow_nan=False) + "\n"


def atomic_write_json(path: str | os.PathLike[str], obj: Any) -> None:
    """Write `obj` as sorted, indented, strict JSON, atomically."""
    atomic_write_bytes(path, json_text(obj).encode())


def job_key(values: Mapping[str, Any]) -> str:
    """A file-name-safe key from the values that identify a job, in Hydra's override style:
    `model.width=1024,seed=3`, sorted by key; characters other than letters, digits and
    `=._-+,` become `-`."""
    text = ",".join(f"{name}={value}" for name, value in sorted(values.items()))
    return "".join(c if c.isalnum() or c in "=._-+," else "-" for c in text)


def config_hash(resolved: Mapping[str, Any]) -> str:
    """sha256 (first 16 hex digits) of a resolved config."""
    blob = json.dumps(jsonable(resolved), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


# --------------------------------------------------------------------------- sweep manifests
SWEEPS_FOLDER = "sweeps"


def write_sweep_manifest(
    records_dir: str | os.PathLike[str],
    name: str,
    job: str,
    keys: list[str] | None,
    digest: str | None = None,
) -> Path:
    """`<records_dir>/sweeps/<name>.json`: the job keys of the latest sweep of the study
    config `name` (None: a sweep whose jobs could not be listed) and its digest, which names
    its MLflow parent run (`runtime.parents`)."""
    path = Path(records_dir) / SWEEPS_FOLDER / f"{name.replace('/', '.')}.json"
    listed = None if keys is None else sorted(keys)
    atomic_write_json(path, {"sweep": name, "job": job, "keys": listed, "digest": digest})
    return path


def sweep_digests(records_dir: str | os.PathLike[str]) -> dict[str, str]:
    """{study config: the digest of its latest sweep} from the manifests that hold one."""
    folder = Path(records_dir) / SWEEPS_FOLDER
    out = {}
    for path in sorted(folder.glob("[!.]*.json")) if folder.is_dir() else []:
        manifest = read_json(path, "sweep manifest")
        if isinstance(manifest, dict) and isinstance(manifest.get("digest"), str):
            out[str(manifest.get("sweep"))] = manifest["digest"]
    return out


def read_json(path: Path, what: str) -> Any:
    """A JSON file, or `BadFile` naming it and what is wrong."""
    try:
        return json.loads(path.read_text())
    except OSError as exc:
        raise BadFile(path, f"unreadable {what} ({exc.strerror or exc})") from None
    except ValueError as exc:
        raise BadFile(path, f"not valid JSON, so not a {what} ({exc})") from None


def current_job_keys(records_dir: str | os.PathLike[str]) -> dict[str, set[str] | None]:
    """{job: union of the keys of that job's latest sweeps} from the manifests; a job with a
    manifest that could not list its jobs maps to None (every record of it counts)."""
    folder = Path(records_dir) / SWEEPS_FOLDER
    out: dict[str, set[str] | None] = {}
    for path in sorted(folder.glob("[!.]*.json")) if folder.is_dir() else []:
        manifest = read_json(path, "sweep manifest")
        keys = manifest.get("keys") if isinstance(manifest, dict) else "bad"
        job = manifest.get("job") if isinstance(manifest, dict) else None
        if not isinstance(job, str) or not (keys is None or isinstance(keys, list)):
            raise BadFile(path, "not a sweep manifest (expected {sweep, job, keys})")
        if keys is None or out.get(job, set()) is None:
            out[job] = None
        else:
            out[job] = out.get(job, set()) | {str(k) for k in keys}
    return out


# --------------------------------------------------------------------------- provenance
SOURCE_PATHS = ("src", "conf", "pipelines", "pyproject.toml")


def _git(*args: str) -> str:
    return subprocess.run(
        ["git", *args], capture_output=True, text=True, check=True, timeout=10
    ).stdout.strip()


@cache
def git_commit() -> str:
    """The commit of the working tree, with "+dirty" when tracked source or configuration
    (`SOURCE_PATHS`) has uncommitted changes — not when only results or `dvc.lock` do —
    or "unknown" outside a git checkout."""
    try:
        sha = _git("rev-parse", "HEAD")
        dirty = _git("status", "--porcelain", "--untracked-files=no", "--", *SOURCE_PATHS)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return sha + ("+dirty" if dirty else "")


@cache
def source_commit() -> dict[str, str]:
    """The newest commit that changed the source or configuration, and its date (ISO): what
    produced the results, stable across commits that only add results."""
    try:
        sha, date = _git("log", "-1", "--format=%H %cs", "--", *SOURCE_PATHS).split()
    except (OSError, subprocess.SubprocessError, ValueError):
        return {"commit": "unknown", "date": "unknown"}
    return {"commit": sha, "date": date}


def provenance() -> dict[str, Any]:
    """Where a record came from: git commit and the versions that can change its numbers."""
    versions = {}
    for package in ("widthlab", "torch", "numpy", "scipy"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    return {"git_commit": git_commit(), "python": platform.python_version(), **versions}


# --------------------------------------------------------------------------- reading records
def check_record(record: Any, path: Path) -> dict[str, Any]:
    """A record read back, or `BadFile` saying what it lacks."""
    if not isinstance(record, dict):
        raise BadFile(path, f"a record must be a JSON object, found {type(record).__name__}")
    for key, kind in (("key", str), ("status", str), ("job", dict)):
        if not isinstance(record.get(key), kind):
            raise BadFile(path, f"not a job record: {key!r} is missing or not a {kind.__name__}")
    if record["status"] not in ("ok", "failed"):
        raise BadFile(path, f"status {record['status']!r} is neither 'ok' nor 'failed'")
    metrics = record.get("metrics", {})
    if not isinstance(metrics, dict):
        raise BadFile(path, "its 'metrics' is not a mapping")
    if record["status"] == "ok":
        if not metrics:
            raise BadFile(
                path,
                "status 'ok' but no metrics: not a finished job's record (remove it and rerun "
                "the sweep, which recomputes this job)",
            )
        _check_numbers(metrics, path, "metrics")
    return record


def _check_numbers(node: Mapping[str, Any], path: Path, where: str) -> None:
    for key, value in node.items():
        if isinstance(value, Mapping):
            _check_numbers(value, path, f"{where}.{key}")
        elif isinstance(value, str):
            raise BadFile(path, f"{where}.{key} = {value!r} is text, not a number")


def read_records(folder: str | os.PathLike[str]) -> dict[str, list[dict[str, Any]]]:
    """{job: its records} from `<folder>/<job>/*.json`, sorted by file name; temporary and
    lock files are skipped; an unusable file raises `BadFile` naming it."""
    folder = Path(folder)
    out: dict[str, list[dict[str, Any]]] = {}
    if not folder.is_dir():
        return out
    for job_dir in sorted(p for p in folder.iterdir() if p.is_dir()):
        if job_dir.name.startswith(".") or job_dir.name == SWEEPS_FOLDER:
            continue
        paths = sorted(job_dir.glob("[!.]*.json"))
        out[job_dir.name] = [check_record(read_json(p, "job record"), p) for p in paths]
    return out
