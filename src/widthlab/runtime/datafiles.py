"""Data files: a deterministic, checksummed format whose card proves how the data was made.

`save_dataset` writes `<dir>/<name>.npz` (every array) and `<dir>/<name>.json`, the card:
sizes, dims, the generator's settings and the sha256 of each array. Both are byte-for-byte
identical for the same settings (zip entries carry a fixed timestamp, JSON keys are sorted)
and written as one set (`runtime.atomic`), so an interrupted run leaves the old pair or the
new one, never new arrays beside an old card.

`load_dataset` refuses, with one line saying what to run, a file that is missing, unreadable,
whose card is malformed, whose arrays do not match their checksums, or whose settings differ
from the ones the job was given (`expected`): a job never computes from data other than what
its record says.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import zipfile
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from widthlab.dataset import Dataset
from widthlab.runtime.atomic import atomic_write_set, finish_interrupted_swaps
from widthlab.runtime.errors import DataFileError
from widthlab.runtime.records import json_text

FORMAT_VERSION = 1
_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)  # fixed entry timestamp: same arrays ⇒ same bytes
# Config keys of a data set that say where it lives, not what it is.
NOT_SETTINGS = ("name", "cache_dir")
CORE_ARRAYS = ("x_train", "y_train", "x_test", "y_test")


def sha256_of_array(a: np.ndarray) -> str:
    """sha256 of the array's .npy serialization (dtype, shape and C-order bytes)."""
    buf = io.BytesIO()
    np.lib.format.write_array(buf, np.ascontiguousarray(a), allow_pickle=False)
    return hashlib.sha256(buf.getvalue()).hexdigest()


def dataset_card(ds: Dataset) -> dict[str, Any]:
    """The JSON card of a data set: sizes, dims, settings and a checksum per array."""
    return {
        "name": ds.name,
        "task": ds.task,
        "format_version": FORMAT_VERSION,
        "n_train": int(ds.x_train.shape[0]),
        "n_test": int(ds.x_test.shape[0]),
        "dim": int(ds.x_train.shape[1]),
        "n_outputs": ds.n_outputs,
        "settings": ds.settings,
        "arrays": {
            k: {"shape": list(v.shape), "dtype": str(v.dtype), "sha256": sha256_of_array(v)}
            for k, v in sorted(ds.arrays().items())
        },
    }


def data_paths(name: str, directory: str | os.PathLike[str]) -> tuple[Path, Path]:
    """(`<dir>/<name>.npz`, `<dir>/<name>.json`)."""
    directory = Path(directory)
    return directory / f"{name}.npz", directory / f"{name}.json"


def save_dataset(ds: Dataset, directory: str | os.PathLike[str]) -> tuple[Path, Path]:
    """Write `<directory>/<name>.npz` and its card `<name>.json`; returns both paths."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_STORED) as zf:
        for key, arr in sorted(ds.arrays().items()):
            info = zipfile.ZipInfo(f"{key}.npy", date_time=_ZIP_EPOCH)
            info.external_attr = 0o644 << 16
            member = io.BytesIO()
            np.lib.format.write_array(member, np.ascontiguousarray(arr), allow_pickle=False)
            # Each member whole, with its size known: zip64 headers only past 4 GiB. A
            # streamed member (`open(..., force_zip64=True)`, what numpy.savez does) gets a
            # "version needed" byte that differs between Python 3.11.2 and 3.11.7, so the
            # same arrays gave different files, and DVC hashes, across Python versions.
            zf.writestr(info, member.getvalue())
    npz_path, json_path = data_paths(ds.name, directory)
    card = json_text(dataset_card(ds)).encode()
    atomic_write_set({npz_path: buf.getvalue(), json_path: card})  # the arrays and their card
    return npz_path, json_path


def regenerate_command(
    name: str, profile: str | None, changes: Mapping[str, Any] | None = None
) -> str:
    """The command that writes the data file a job asked for."""
    changes = changes or {}
    words = ["python pipelines/data.py", f"data={name}"]
    words += [f"profile={profile}"] if profile else []
    words += [f"data.{k}={v}" for k, v in changes.items()]
    return "`" + " ".join(words) + "`"


def _card_problem(card: Any) -> str | None:
    """What is wrong with a card's structure, or None."""
    if not isinstance(card, dict):
        return f"the card is a {type(card).__name__}, not a mapping"
    needed = {
        "name": str,
        "task": str,
        "n_train": int,
        "n_test": int,
        "dim": int,
        "n_outputs": int,
        "settings": dict,
        "arrays": dict,
    }
    for key, kind in needed.items():
        if not isinstance(card.get(key), kind):
            return f"the card's {key!r} is missing or not a {kind.__name__}"
    if card["task"] not in ("regression", "classification"):
        return f"the card's task {card['task']!r} is neither regression nor classification"
    missing = [k for k in CORE_ARRAYS if k not in card["arrays"]]
    if missing:
        return f"the card lists no array {missing[0]!r}"
    for key, entry in card["arrays"].items():
        digest = entry.get("sha256") if isinstance(entry, dict) else None
        if not (isinstance(digest, str) and len(digest) == 64):
            return f"the card's array {key!r} has no sha256"
    return None


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return math.isclose(float(a), float(b), rel_tol=1e-12, abs_tol=0.0)
    return a == b


def settings_mismatch(card_settings: Mapping[str, Any], expected: Mapping[str, Any]) -> dict:
    """{key: (file's value, config's value)} for every config setting the file disagrees with."""
    out = {}
    for key, want in expected.items():
        if key in NOT_SETTINGS or (want is None and key not in card_settings):
            continue
        have = card_settings.get(key, "<absent>")
        if not _same(have, want):
            out[key] = (have, want)
    return out


@lru_cache(maxsize=8)
def _read(npz_path: str, json_path: str, stamp: tuple) -> tuple[dict, dict[str, np.ndarray]]:
    # `stamp` (sizes and modification times) makes a rewritten file a new cache entry.
    name = Path(npz_path).stem
    card = json.loads(Path(json_path).read_text())
    problem = _card_problem(card)
    if problem:
        raise ValueError(problem)
    with np.load(npz_path, allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    if set(card["arrays"]) != set(arrays):
        raise ValueError(
            f"the card lists arrays {sorted(card['arrays'])}, the file {sorted(arrays)}"
        )
    for key, entry in card["arrays"].items():
        if sha256_of_array(arrays[key]) != entry["sha256"]:
            raise ValueError(f"array {key!r} does not match its sha256")
    if card["name"] != name:
        raise ValueError(f"the card names the data set {card['name']!r}")
    return card, arrays  # shared by every job of the process: never mutated in place


def file_digest(path: str | os.PathLike[str]) -> str:
    """sha256 of a file's bytes (the data set's digest in records and MLflow inputs)."""
    return _file_digest(str(path), _stamp(Path(path)))


@lru_cache(maxsize=16)
def _file_digest(path: str, stamp: tuple) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _stamp(*paths: Path) -> tuple:
    return tuple((p.stat().st_size, p.stat().st_mtime_ns) for p in paths)


def load_dataset(
    name: str,
    directory: str | os.PathLike[str] = "data",
    expected: Mapping[str, Any] | None = None,
    profile: str | None = None,
) -> Dataset:
    """Read a data set written by `save_dataset`, verifying its card and every checksum.

    `expected` (the job's `data` config) must agree with the settings the file was made with;
    `profile` goes into the command the error suggests. Files already read and unchanged
    come from an in-process cache (a sweep reads the same file once).
    """
    npz_path, json_path = data_paths(name, directory)
    finish_interrupted_swaps(npz_path.parent)  # a file and its card, renamed halfway by a kill
    rerun = regenerate_command(name, profile)
    if not npz_path.is_file() or not json_path.is_file():
        raise DataFileError(f"data set {name!r} not found in {directory}/: make it with {rerun}")
    try:
        card, arrays = _read(str(npz_path), str(json_path), _stamp(npz_path, json_path))
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise DataFileError(
            f"data set {name!r} in {directory}/ is unusable ({exc}): regenerate it with {rerun}"
        ) from exc
    if expected is not None:
        wrong = settings_mismatch(card["settings"], expected)
        if wrong:
            key, (have, want) = next(iter(wrong.items()))
            fix = regenerate_command(name, profile, {k: w for k, (_, w) in wrong.items()})
            raise DataFileError(
                f"data set {name!r} in {directory}/ was made with {key}={have!r}, but "
                f"data.{key}={want!r} here: regenerate it with {fix}"
            )
    arrays = dict(arrays)
    core = {k: arrays.pop(k) for k in CORE_ARRAYS}
    return Dataset(
        name=card["name"], task=card["task"], extras=arrays, settings=card["settings"], **core
    )


def load_job_data(cfg: Any) -> Dataset:
    """The data set a job's config names (`cfg.data`), checked against its settings."""
    from omegaconf import OmegaConf

    data = OmegaConf.to_container(cfg.data, resolve=True)
    profile = OmegaConf.select(cfg, "profile.name", default=None)
    return load_dataset(data["name"], cfg.paths.data_dir, expected=data, profile=profile)
