"""Typed schemas of every config group, checked before a job does any work or writes anything.

One mechanism for every entry point: `validate_config(cfg, job)` walks the groups the job
reads, checks each key against its schema (type, range, allowed values), flags keys the
schema does not know (a typo in a YAML file), then checks what involves two groups (a probe
set larger than the data, seeds beyond the training pool). The first problem raises
`ConfigError`, whose one-line message names the key, the value and what is allowed:

    model.depth=0 is not allowed: expected an integer ≥ 1

`validate_sweep` (through `SweepValidationCallback`, registered in conf/config.yaml) does the
same for every job of a multirun before the first one starts, and warns when a
double-descent sweep's widths do not cross its interpolation threshold.
"""

from __future__ import annotations

import copy
import itertools
import logging
import math
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

from widthlab.activations import ACTIVATIONS
from widthlab.losses import DTYPES, LOSSES, OPTIMIZERS
from widthlab.records import job_key
from widthlab.validation import (
    ConfigError,
    check_choice,
    check_fraction,
    check_nonnegative,
    check_positive,
    check_positive_int,
)

log = logging.getLogger(__name__)

Check = Callable[[str, Any], None]


def integer(minimum: int, maximum: int | None = None) -> Check:
    return lambda key, value: check_positive_int(key, value, minimum, maximum)


def choice(values: Iterable[str]) -> Check:
    values = tuple(values)
    return lambda key, value: check_choice(key, value, values)


# The scalar checks are those of widthlab.validation, so every message reads the same.
nonnegative: Check = check_nonnegative
positive: Check = check_positive
fraction: Check = check_fraction


def text(key: str, value: Any) -> None:
    if not isinstance(value, str) or not value:
        raise ConfigError(key, value, "a non-empty string")


def boolean(key: str, value: Any) -> None:
    if not isinstance(value, bool):
        raise ConfigError(key, value, "true or false")


def optional(inner: Check) -> Check:
    def check(key: str, value: Any) -> None:
        if value is not None:
            inner(key, value)

    return check


def list_of(inner: Check, min_length: int = 1) -> Check:
    def check(key: str, value: Any) -> None:
        if not isinstance(value, list | tuple | ListConfig) or len(value) < min_length:
            raise ConfigError(key, value, f"a list of at least {min_length} item(s)")
        for i, item in enumerate(value):
            inner(f"{key}[{i}]", item)

    return check


def any_value(key: str, value: Any) -> None:
    return None


Schema = Mapping[str, "Check | Schema"]

SEED = integer(0)
DATA: dict[str, Schema] = {
    "sphere_linear": {"name": text, "n_train": integer(1), "n_test": integer(1),
                      "dim": integer(2), "signal": nonnegative, "nonlinear": nonnegative,
                      "noise": nonnegative, "seed": SEED},
    "teacher": {"name": text, "n_train": integer(1), "n_test": integer(1), "dim": integer(1),
                "teacher_width": integer(1), "noise": nonnegative, "seed": SEED},
    "digits": {"name": text, "n_train": integer(1, 1796), "label_noise": fraction,
               "seed": SEED},
    "mnist": {"name": text, "n_train": integer(1, 60_000), "n_test": integer(1, 10_000),
              "label_noise": fraction, "seed": SEED, "cache_dir": text},
}  # fmt: skip
DATA["fashion_mnist"] = DATA["mnist"]
DATA["digits_noisy"] = DATA["digits"]

MODEL: dict[str, Schema] = {
    "mlp": {"_target_": text, "width": integer(1), "depth": integer(1),
            "activation": choice(ACTIVATIONS), "parameterization": choice(["ntk", "standard"]),
            "w_std": positive, "b_std": nonnegative, "out_features": integer(1)},
    "random_features": {"activation": choice(["relu", "erf", "tanh"]),
                        "feature_distribution": choice(["gaussian", "sphere"])},
}  # fmt: skip

TRAINER: Schema = {
    "_target_": text,
    "accelerator": text,
    "devices": any_value,
    "deterministic": any_value,
    "enable_checkpointing": boolean,
    "enable_progress_bar": boolean,
    "enable_model_summary": boolean,
    "limit_val_batches": any_value,
    "num_sanity_val_steps": integer(0),
    "log_every_n_steps": integer(1),
}
TRAIN: Schema = {
    "loss": choice(LOSSES),
    "optimizer": choice(OPTIMIZERS),
    "lr": positive,
    "momentum": nonnegative,
    "batch_size": optional(integer(1)),
    "max_steps": integer(1),
    "stop_loss": optional(positive),
    "dtype": choice(DTYPES),
    "log_every_n_epochs": integer(1),
    "trainer": TRAINER,
}

STUDY_COMMON: Schema = {"name": text, "job_keys": list_of(text)}
STUDY: dict[str, Schema] = {
    "ntk_convergence": {**STUDY_COMMON, "n_probe": integer(1), "mc_networks": integer(2),
                        "mc_max_width": integer(0),
                        "circle": {"widths": list_of(integer(1)), "seeds": integer(1),
                                   "depth": integer(1), "activation": choice(ACTIVATIONS),
                                   "points": integer(3)}},
    "double_descent_rf": {**STUDY_COMMON, "width_ratio": positive,
                          "ridges": list_of(nonnegative), "n_train": optional(integer(1)),
                          "gd_check_steps": integer(1), "gd_times": list_of(nonnegative)},
    "double_descent_mlp": {**STUDY_COMMON},
    "lazy_training": {**STUDY_COMMON, "n_train": integer(1), "n_eval": integer(1),
                      "lr_fraction": positive, "steps": integer(1)},
}  # fmt: skip

ROOT: Schema = {
    "seed": SEED,
    "resume": boolean,
    "device": text,
    "tracking": {"enabled": boolean, "uri": optional(text), "experiment": optional(text)},
    "paths": {"data_dir": text, "results_dir": text, "reports_dir": text, "cache_dir": text},
}

# Which groups each entry point reads (the others may be anything, even absent).
JOBS: dict[str, tuple[str, ...]] = {
    "data": ("data",),
    "ntk_convergence": ("data", "model", "study"),
    "ntk_circle": ("model", "study"),
    "random_features": ("data", "model", "study"),
    "double_descent_mlp": ("data", "model", "train", "study"),
    "lazy_training": ("data", "model", "train", "study"),
    "aggregate": ("study",),
    "report": (),
}


def check_node(prefix: str, node: Any, schema: Schema) -> None:
    """Check `node` (a mapping) against `schema`; unknown keys are errors."""
    if not isinstance(node, Mapping | DictConfig):
        raise ConfigError(prefix, node, f"a mapping with keys {sorted(schema)}")
    unknown = sorted(set(node) - set(schema))
    if unknown:
        key = f"{prefix}.{unknown[0]}"
        raise ConfigError(key, node[unknown[0]], f"no such key; {prefix} has {sorted(schema)}")
    for key, check in schema.items():
        full = f"{prefix}.{key}"
        if key not in node:
            raise ConfigError(full, None, "a value (the key is missing)")
        if isinstance(check, Mapping):
            check_node(full, node[key], check)
        else:
            check(full, node[key])


def model_kind(model: Mapping[str, Any]) -> str:
    target = str(model.get("_target_", ""))
    if target.endswith(".MLP"):
        return "mlp"
    if "feature_distribution" in model:
        return "random_features"
    raise ConfigError("model", dict(model), f"one of the model configs {sorted(MODEL)}")


def validate_config(cfg: DictConfig | Mapping[str, Any], job: str) -> None:
    """Check everything job `job` reads; raise ConfigError on the first problem."""
    if isinstance(cfg, DictConfig):
        cfg = OmegaConf.masked_copy(cfg, [k for k in cfg if k != "hydra"])
        resolved = OmegaConf.to_container(cfg, resolve=True)
    else:
        resolved = {k: v for k, v in cfg.items() if k != "hydra"}
    for key, check in ROOT.items():
        if isinstance(check, Mapping):
            check_node(key, resolved.get(key), check)
        else:
            check(key, resolved.get(key))
    from widthlab.jobs import resolve_device

    resolve_device(resolved["device"])
    groups = JOBS[job]
    data, model, study = resolved.get("data"), resolved.get("model"), resolved.get("study")
    if "data" in groups:
        name = (data or {}).get("name")
        if name not in DATA:
            raise ConfigError("data.name", name, f"one of {sorted(DATA)}")
        check_node("data", data, DATA[name])
    if "model" in groups:
        if not model:
            raise ConfigError("model", model, f"one of the model configs {sorted(MODEL)}")
        check_node("model", model, MODEL[model_kind(model)])
    if "train" in groups:
        check_node("train", resolved.get("train"), TRAIN)
    if "study" in groups:
        name = (study or {}).get("name")
        if name not in STUDY:
            raise ConfigError("study", name, f"one of {sorted(STUDY)}")
        check_node("study", study, STUDY[name])
        as_config = OmegaConf.create(resolved)
        for key in study["job_keys"]:
            if OmegaConf.select(as_config, key, default="§missing") == "§missing":
                raise ConfigError("study.job_keys", key, "config keys that exist")
        CROSS_CHECKS.get(name, lambda r, j: None)(resolved, job)


def _ntk_cross_checks(cfg: Mapping[str, Any], job: str) -> None:
    if cfg["model"]["parameterization"] != "ntk":
        # The analytic limits are those of the NTK parameterization.
        raise ConfigError("model.parameterization", cfg["model"]["parameterization"],
                          "'ntk' in this study")  # fmt: skip
    if job == "ntk_convergence" and cfg["study"]["n_probe"] > cfg["data"]["n_train"]:
        raise ConfigError("study.n_probe", cfg["study"]["n_probe"],
                          f"≤ data.n_train = {cfg['data']['n_train']} (the probe set is "
                          "taken from the training split)")  # fmt: skip


def _rf_cross_checks(cfg: Mapping[str, Any], job: str) -> None:
    n, seed = cfg["study"]["n_train"], cfg["seed"]
    if job == "random_features" and n is not None and (seed + 1) * n > cfg["data"]["n_train"]:
        pool = cfg["data"]["n_train"]
        raise ConfigError("study.n_train", n,
                          f"(seed + 1)·n_train ≤ data.n_train = {pool} (one disjoint block "
                          f"of the training pool per seed; seed={seed})")  # fmt: skip


def _lazy_cross_checks(cfg: Mapping[str, Any], job: str) -> None:
    """The linearized-model closed form of lazy_training holds for full-batch gradient
    descent on the squared loss of an NTK-parameterized network, and nothing else."""
    required = {
        "model.parameterization": (cfg["model"]["parameterization"], "ntk"),
        "train.optimizer": (cfg["train"]["optimizer"], "sgd"),
        "train.loss": (cfg["train"]["loss"], "squared"),
        "train.momentum": (cfg["train"]["momentum"], 0),
        "train.batch_size": (cfg["train"]["batch_size"], None),
    }
    for key, (value, allowed) in required.items():
        if value != allowed:
            shown = "null" if allowed is None else repr(allowed)
            raise ConfigError(key, value, f"{shown} in this study (its closed form is that of "
                              "full-batch gradient descent on the squared loss, NTK "
                              "parameterization)")  # fmt: skip
    if cfg["study"]["n_train"] > cfg["data"]["n_train"]:
        raise ConfigError("study.n_train", cfg["study"]["n_train"],
                          f"≤ data.n_train = {cfg['data']['n_train']}")  # fmt: skip


CROSS_CHECKS: dict[str, Callable[[Mapping[str, Any], str], None]] = {
    "ntk_convergence": _ntk_cross_checks,
    "double_descent_rf": _rf_cross_checks,
    "lazy_training": _lazy_cross_checks,
}


def sweep_values(config: DictConfig) -> dict[str, list[Any]]:
    """{key: [values]} of every non-group override of a multirun (sweeper params and the
    command line), values typed as Hydra parses them."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parser = OverridesParser.create()
    params = OmegaConf.select(config, "hydra.sweeper.params", default=None) or {}
    lines = [f"{k}={v}" for k, v in params.items()]
    lines += list(OmegaConf.select(config, "hydra.overrides.task", default=[]) or [])
    values: dict[str, list[Any]] = {}
    for override in parser.parse_overrides(lines):
        key = override.key_or_group
        if override.is_sweep_override():
            strings = list(override.sweep_string_iterator())
        else:
            strings = [override.get_value_element_as_str()]
        values[key] = [parser.parse_override(f"{key}={s}").value() for s in strings]
    return values


def validate_sweep(
    config: DictConfig, job: str, groups: Iterable[str] = (), record_keys: list[str] | None = None
) -> int:
    """Validate every job of a multirun; returns the number of jobs checked and, into
    `record_keys` when given, each job's record key (`widthlab.records.job_key` of the
    values of `study.job_keys`).

    Overrides of config groups (`data=a,b`) cannot be applied without composing; those jobs
    are checked by their own entry point before they start.
    """
    task = OmegaConf.masked_copy(config, [k for k in config if k != "hydra"])
    # Config-group choices (`profile=smoke`) are already composed into `task`.
    values = {
        k: v
        for k, v in sweep_values(config).items()
        if k not in set(groups) and not isinstance(OmegaConf.select(task, k), DictConfig)
    }
    base = OmegaConf.create(OmegaConf.to_container(task, resolve=True))
    keys = list(values)
    count = 0
    for combination in itertools.product(*(values[k] for k in keys)):
        # Overrides first, then resolve: a key that interpolates a swept key
        # (train.max_steps: ${study.steps}) takes the job's value, as in the job itself.
        unresolved = copy.deepcopy(task)
        for key, value in zip(keys, combination, strict=True):
            OmegaConf.update(unresolved, key, value, merge=False, force_add=True)
        cfg = OmegaConf.create(OmegaConf.to_container(unresolved, resolve=True))
        validate_config(cfg, job)
        count += 1
        if record_keys is not None and OmegaConf.select(cfg, "study.job_keys"):
            record_keys.append(job_key({k: OmegaConf.select(cfg, k) for k in cfg.study.job_keys}))
    ratios = values.get("study.width_ratio")
    if ratios and OmegaConf.select(base, "study.name") == "double_descent_rf":
        if not (min(ratios) < 1 < max(ratios)):
            log.warning(
                "study.width_ratio=%s does not cross the interpolation threshold d/n = 1: "
                "the sweep cannot show the double-descent peak",
                ratios,
            )
    widths = values.get("model.width")
    if widths and OmegaConf.select(base, "study.name") == "double_descent_mlp":
        _warn_if_mlp_widths_miss_threshold(base, widths)
    return count


def _warn_if_mlp_widths_miss_threshold(cfg: DictConfig, widths: list[int]) -> None:
    """Warn when the parameter counts of `widths` do not cross n·C (sizes from the data
    set's JSON, when it has been generated)."""
    import json
    from pathlib import Path

    meta_path = Path(str(cfg.paths.data_dir)) / f"{cfg.data.name}.json"
    if not meta_path.exists():
        return
    meta = json.loads(meta_path.read_text())
    dim, classes, n = meta["dim"], meta["n_outputs"], meta["n_train"]
    depth = int(cfg.model.depth)

    def params(w: int) -> int:
        return w * (dim + 1) + (depth - 1) * w * (w + 1) + classes * (w + 1)

    counts = [params(int(w)) for w in widths]
    if not (min(counts) < n * classes < max(counts)):
        log.warning(
            "model.width=%s gives %d to %d parameters, which does not cross the interpolation "
            "threshold n·C = %d: the sweep cannot show the double-descent peak",
            widths, min(counts), max(counts), n * classes,
        )  # fmt: skip


try:  # Hydra is a dependency, but keep the library importable without it.
    from hydra.experimental.callback import Callback
except ImportError:  # pragma: no cover
    Callback = object  # type: ignore[assignment,misc]


class SweepValidationCallback(Callback):
    """Checks every job of a multirun before the first one starts (and before the MLflow
    sweep run is created: it is registered first in conf/config.yaml)."""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        import sys

        job = str(OmegaConf.select(config, "hydra.job.name"))
        if job not in JOBS:
            return
        choices = OmegaConf.select(config, "hydra.runtime.choices") or {}
        groups = list(choices)
        keys: list[str] = []
        try:
            count = validate_sweep(config, job, groups=groups, record_keys=keys)
        except ConfigError as exc:
            print(f"error: {exc}", file=sys.stderr)
            raise SystemExit(2) from None
        log.info("checked the configs of %d jobs", count)
        self.write_manifest(config, choices, groups, keys)
        # For the jobs' progress lines (`widthlab.jobs.progress_line`): the sweep's size,
        # group sweeps included, and when it started. Every launcher passes the environment on.
        import os
        import time

        from widthlab.jobs import SWEEP_SIZE_ENV, SWEEP_START_ENV

        total = math.prod(len(v) for v in sweep_values(config).values())
        os.environ[SWEEP_SIZE_ENV] = str(total)
        os.environ[SWEEP_START_ENV] = repr(time.time())

    @staticmethod
    def write_manifest(config: DictConfig, choices: Any, groups: list[str], keys: list[str]):
        """Record which jobs this sweep of a study consists of (`records/sweeps/<study
        config>.json`), so the aggregate counts exactly the jobs of each study config's latest
        sweep, not records left by an earlier sweep over other widths. A sweep over a config
        group (`data=a,b`) cannot list its jobs here: its manifest says so (keys null) and the
        aggregate then keeps every record of the study."""
        from pathlib import Path

        from widthlab.records import write_sweep_manifest

        study = OmegaConf.select(config, "study.name")
        swept = {k for k, v in sweep_values(config).items() if len(v) > 1}
        if not study or not keys:
            return
        results = OmegaConf.select(config, "paths.results_dir")
        records = Path(str(results)) / str(study) / "records"
        # A group sweep's jobs are unknown here: `None` makes the aggregate keep every record.
        listed = None if swept & set(groups) else keys
        write_sweep_manifest(records, str(choices.get("study") or study), listed)
