"""Job records: one small JSON file per job at a fixed path, written atomically.

A record holds what the job measured, the values that identify the job within its sweep,
a hash of the resolved config that affects results, and where it came from (git commit,
package versions). Paths never contain timestamps: `<results_dir>/<study>/records/<key>.json`
with `key` built from the swept values (`depth=2_activation=relu_seed=3_width=1024`).
Writing goes to a temporary file in the same folder that is then renamed into place, so a
killed job leaves the old record or the new one, never half of one.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import platform
import tempfile
from collections.abc import Iterable, Mapping
from importlib import metadata
from pathlib import Path
from typing import Any


def atomic_write_bytes(path: str | os.PathLike[str], payload: bytes) -> None:
    """Write `payload` to `path` through a temporary file renamed into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.fchmod(fd, 0o666 & ~umask)  # mkstemp makes 0600; give the file the usual mode
        with os.fdopen(fd, "wb") as fh:
            fh.write(payload)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _jsonable(obj: Any) -> Any:
    # Non-finite floats become null: strict JSON readers (browsers, DVC's plots) reject NaN.
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, Mapping):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_jsonable(v) for v in obj]
    if hasattr(obj, "item") and callable(obj.item):  # numpy / torch scalars
        return _jsonable(obj.item())
    return obj


def atomic_write_json(path: str | os.PathLike[str], obj: Mapping[str, Any]) -> None:
    """Write `obj` as sorted, indented, strict JSON, atomically."""
    text = json.dumps(_jsonable(obj), indent=2, sort_keys=True, allow_nan=False) + "\n"
    atomic_write_bytes(path, text.encode())


def job_key(values: Mapping[str, Any]) -> str:
    """A file-name-safe key from the values that identify a job, in Hydra's override style:
    `model.width=1024,seed=3`, sorted by key; characters other than letters, digits and
    `=._-+,` become `-`."""
    text = ",".join(f"{name}={value}" for name, value in sorted(values.items()))
    return "".join(c if c.isalnum() or c in "=._-+," else "-" for c in text)


def config_hash(resolved: Mapping[str, Any], exclude: Iterable[str] = ()) -> str:
    """sha256 (first 16 hex digits) of a resolved config, less the top-level keys `exclude`."""
    kept = {k: v for k, v in resolved.items() if k not in set(exclude)}
    blob = json.dumps(_jsonable(kept), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


# Modules that cannot change a record's numbers (presentation, bookkeeping, config checks):
# editing them keeps finished records reusable.
NOT_RESULT_CODE = ("figures.py", "figures_training.py", "summaries.py", "tracking.py",
                   "schemas.py")  # fmt: skip


def code_hash(*extra_files: str | os.PathLike[str]) -> str:
    """sha256 (first 16 hex digits) of the code that computes a record: the modules of the
    `widthlab` package (less `NOT_RESULT_CODE`) and `extra_files` (the job's entry point).
    A record computed by other code is not reused when a sweep resumes."""
    package = Path(__file__).resolve().parent
    digest = hashlib.sha256()
    modules = [p for p in sorted(package.rglob("*.py")) if p.name not in NOT_RESULT_CODE]
    files = modules + [Path(f).resolve() for f in extra_files]
    for path in files:
        name = path.relative_to(package) if path.is_relative_to(package) else path.name
        digest.update(f"{name}\0".encode())
        digest.update(path.read_bytes())
        digest.update(b"\0")
    return digest.hexdigest()[:16]


SWEEPS_FOLDER = "sweeps"


def write_sweep_manifest(
    records_dir: str | os.PathLike[str], name: str, keys: list[str] | None
) -> Path:
    """`<records_dir>/sweeps/<name>.json`: the job keys of the latest sweep called `name`
    (None: a sweep whose jobs could not be listed)."""
    path = Path(records_dir) / SWEEPS_FOLDER / f"{name}.json"
    atomic_write_json(path, {"sweep": name, "keys": None if keys is None else sorted(keys)})
    return path


def current_job_keys(records_dir: str | os.PathLike[str]) -> set[str] | None:
    """The union of the job keys of every sweep manifest in `records_dir`, or None — every
    record counts — if there is no manifest or one could not list its jobs."""
    folder = Path(records_dir) / SWEEPS_FOLDER
    manifests = sorted(folder.glob("[!.]*.json")) if folder.is_dir() else []
    listed = [json.loads(p.read_text())["keys"] for p in manifests]
    if not listed or any(keys is None for keys in listed):
        return None
    return {key for keys in listed for key in keys}


def provenance() -> dict[str, Any]:
    """Where a record came from: git commit and the versions that can change its numbers."""
    from widthlab.tracking import git_commit

    versions = {}
    for package in ("widthlab", "torch", "numpy", "scipy"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    return {"git_commit": git_commit(), "python": platform.python_version(), **versions}


def read_records(folder: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Every record in `folder`, sorted by file name (temporary files are skipped)."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    return [json.loads(p.read_text()) for p in sorted(folder.glob("[!.]*.json"))]
