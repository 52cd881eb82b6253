"""The data stage (`pipelines/data.py`): check, make, write and log one data set."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from widthlab.checks import InvalidValue
from widthlab.data import make_dataset
from widthlab.dataset import Dataset
from widthlab.runtime.datafiles import save_dataset
from widthlab.runtime.errors import as_config_error
from widthlab.runtime.preflight import check_memory, check_tracking, check_writable_dir
from widthlab.runtime.schemas import validate_config
from widthlab.runtime.tracking import flatten, job_run


def card_metrics(ds: Dataset) -> dict[str, float]:
    """What the data stage logs of a data set: sizes and the realized noise."""
    metrics = {
        "n_train": ds.x_train.shape[0],
        "n_test": ds.x_test.shape[0],
        "dim": ds.x_train.shape[1],
        "n_outputs": ds.n_outputs,
        "mean_sq_norm_x": float(np.mean(np.sum(ds.x_train**2, axis=1))),
    }
    if ds.task == "regression":
        metrics["var_y_train"] = float(np.var(ds.y_train))
    else:
        metrics["label_noise_realized"] = float(np.mean(ds.extras["flipped_train"]))
    return metrics


def generation_memory(cfg: Mapping[str, Any]) -> float:
    """Bytes to generate a data set: its inputs three times over (draws, scaled copy, the
    file's buffer); the OpenML sets hold all 70 000 images of 784 pixels while subsampling."""
    data = cfg["data"]
    if data["name"] in ("mnist", "fashion_mnist"):
        return 8.0 * 3 * 70_000 * 784
    points = data["n_train"] + (data.get("n_test") or 1797)
    return 8.0 * 3 * points * (data.get("dim") or 64)


def check_data_job(cfg: Any) -> dict[str, Any]:
    """The checks of one data set's job, before anything is made: the `data` config, the
    data folder, the memory estimate and the tracking URI. Returns the resolved config; a
    bad value raises a stopping error whose message is the one line to print."""
    resolved = validate_config(cfg, ("data",))
    check_writable_dir("paths.data_dir", resolved["paths"]["data_dir"])
    check_memory([resolved], generation_memory, [f"data={resolved['data']['name']}"])
    check_tracking(resolved["tracking"])
    return resolved


def make_data_files(cfg: Any) -> tuple[Path, Path]:
    """The data stage (`pipelines/data.py`): check the `data` config and the paths, make the
    data set, write its files and log one MLflow run (experiment `data`). A multirun over
    several data sets (what DVC runs) checks every one of them first
    (`runtime.sweep.SweepCallback`)."""
    resolved = check_data_job(cfg)
    settings = dict(resolved["data"])
    name = settings.pop("name")
    try:
        ds = make_dataset(name, **settings)
    except InvalidValue as exc:
        raise as_config_error(exc, "data") from None
    profile = (resolved.get("profile") or {}).get("name")
    tags = {
        "widthlab.key": name,
        "widthlab.stage": "data",
        "widthlab.study": "data",
        "widthlab.profile": str(profile),
    }
    params = flatten({"data": resolved["data"], "profile": profile})
    with job_run(
        resolved["tracking"],
        "data",
        "The data sets of the studies, one run per file.",
        name,
        tags,
        params,
    ) as run:
        npz_path, json_path = save_dataset(ds, resolved["paths"]["data_dir"])
        run.log_metrics(card_metrics(ds))
        run.log_artifact(json_path)
    return npz_path, json_path
