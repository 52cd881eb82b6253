"""Typed schemas of every config group, checked before a job does any work or writes anything.

`validate_config(cfg, groups, study)` checks the root keys, each group an entry point reads
(type, range, allowed values), flags keys a schema does not know (a typo in a YAML file),
then the study's own keys and its checks across groups (a probe set larger than the data,
seeds beyond the training pool). The first problem raises `ConfigError`, whose one-line
message names the key, the value and what is allowed:

    model.depth=0 is not allowed: expected an integer ≥ 1

The scalar rules are those of `widthlab.checks`, so the library and the schemas judge a value
the same way. Studies build the schema of their own keys from the checkers below.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

from widthlab.activations import ACTIVATIONS
from widthlab.checks import (
    InvalidValue,
    check_choice,
    check_fraction,
    check_int,
    check_nonnegative,
    check_positive,
)
from widthlab.losses import DTYPES, LOSSES, OPTIMIZERS
from widthlab.models.mlp import PARAMETERIZATIONS, SCALED_PARAMETERIZATIONS
from widthlab.models.random_features import FEATURE_DISTRIBUTIONS, RF_ACTIVATIONS
from widthlab.runtime.errors import ConfigError

Check = Callable[[str, Any], None]
Schema = Mapping[str, "Check | Schema"]


def _as_config_error(check: Callable[..., Any]) -> Check:
    def run(key: str, value: Any, *args: Any) -> None:
        try:
            check(key, value, *args)
        except InvalidValue as exc:
            raise ConfigError(exc.key, exc.value, exc.allowed) from None

    return run


def integer(minimum: int, maximum: int | None = None) -> Check:
    """A check that a value is an integer in [minimum, maximum]."""
    return lambda key, value: _as_config_error(check_int)(key, value, minimum, maximum)


def choice(values: Iterable[str]) -> Check:
    """A check that a value is one of `values`."""
    values = tuple(values)
    return lambda key, value: _as_config_error(check_choice)(key, value, values)


nonnegative: Check = _as_config_error(check_nonnegative)
positive: Check = _as_config_error(check_positive)
fraction: Check = _as_config_error(check_fraction)


def stable_step(key: str, value: Any) -> None:
    """A gradient-descent step as a fraction of the stability limit: η = value·n/λ_max, stable
    for 0 < value < 2 (from 2 on the iterates, and the NTK predictor of the same steps,
    diverge: the job would end 'ok' with a limit of 1e28)."""
    positive(key, value)
    if value >= 2:
        raise ConfigError(
            key,
            value,
            "a number in (0, 2): η = lr_fraction·n/λ_max(Θ), and gradient descent diverges "
            "from 2 on",
        )


def text(key: str, value: Any) -> None:
    """Check that a value is a non-empty string."""
    if not isinstance(value, str) or not value:
        raise ConfigError(key, value, "a non-empty string")


def boolean(key: str, value: Any) -> None:
    """Check that a value is true or false."""
    if not isinstance(value, bool):
        raise ConfigError(key, value, "true or false")


def optional(inner: Check) -> Check:
    """A check that accepts None and otherwise applies `inner`."""

    def check(key: str, value: Any) -> None:
        if value is not None:
            inner(key, value)

    return check


def list_of(inner: Check, min_length: int = 1) -> Check:
    """A check that a value is a list of at least `min_length` items, each passing `inner`."""

    def check(key: str, value: Any) -> None:
        if not isinstance(value, list | tuple | ListConfig) or len(value) < min_length:
            raise ConfigError(key, value, f"a list of at least {min_length} item(s)")
        for i, item in enumerate(value):
            inner(f"{key}[{i}]", item)

    return check


def any_value(key: str, value: Any) -> None:
    """Accept any value (a key whose value the study checks itself, or none)."""
    return None


def may_be_absent(inner: Check) -> Check:
    """A key a config may leave out (a group's key that only some configs need); when
    present, `inner` checks its value."""

    def check(key: str, value: Any) -> None:
        inner(key, value)

    check.may_be_absent = True  # type: ignore[attr-defined]
    return check


# numpy's, torch's and Lightning's seeds all take this range (torch refuses more than 64
# bits, so a larger seed failed inside the job).
MAX_SEED = 2**32 - 1
SEED = integer(0, MAX_SEED)


def usable_cores() -> int:
    """The CPU cores this process may run on (its affinity; the machine's count elsewhere)."""
    import os

    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def threads(key: str, value: Any) -> None:
    """At least one thread, and no more than the cores this process may use: more threads
    than cores only oversubscribe them (and the record would claim a setting it never had)."""
    cores = usable_cores()
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= cores:
        raise ConfigError(key, value, f"an integer from 1 to {cores} (the cores of this machine)")


DATA: dict[str, Schema] = {
    "sphere_linear": {
        "name": text, "n_train": integer(1), "n_test": integer(1), "dim": integer(2),
        "signal": nonnegative, "nonlinear": nonnegative, "noise": nonnegative, "seed": SEED,
    },
    "teacher": {
        "name": text, "n_train": integer(1), "n_test": integer(1), "dim": integer(1),
        "teacher_width": integer(1), "noise": nonnegative, "seed": SEED,
    },
    "digits": {"name": text, "n_train": integer(1, 1796), "label_noise": fraction, "seed": SEED},
    "mnist": {
        "name": text, "n_train": integer(1, 60_000), "n_test": integer(1, 10_000),
        "label_noise": fraction, "seed": SEED, "cache_dir": text,
    },
}  # fmt: skip
DATA["fashion_mnist"] = DATA["mnist"]
DATA["digits_noisy"] = DATA["digits"]
DATA["mnist1d"] = {
    "name": text,
    "n_train": integer(1, 4000),  # the mnist1d package's default split: 4000 / 1000
    "n_test": integer(1, 1000),
    "label_noise": fraction,
    "seed": SEED,
}
DATA["mnist1d_noisy"] = DATA["mnist1d"]

MODEL: dict[str, Schema] = {
    "mlp": {
        "_target_": text, "width": integer(1), "depth": integer(1),
        "activation": choice(ACTIVATIONS), "parameterization": choice(PARAMETERIZATIONS),
        "w_std": positive, "b_std": nonnegative, "out_features": integer(1),
        # Only mean_field and mup need it (the width at which they equal ntk and standard).
        "base_width": may_be_absent(optional(integer(1))),
    },
    "random_features": {
        "activation": choice(RF_ACTIVATIONS), "feature_distribution": choice(FEATURE_DISTRIBUTIONS),
    },
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
    "divergence_factor": positive,
    "trainer": TRAINER,
}

STUDY_COMMON: Schema = {
    "_target_": text,
    "name": text,
    "job": text,
    "job_keys": list_of(text),
    "sweeps": list_of(text),
}

ROOT: Schema = {
    "seed": SEED,
    "resume": boolean,
    "dry_run": boolean,
    "device": text,
    "threads": threads,
    "max_memory_gb": optional(positive),
    "tracking": {"enabled": boolean, "uri": optional(text), "experiment": optional(text)},
    "paths": {"data_dir": text, "results_dir": text, "reports_dir": text, "cache_dir": text},
}


def check_node(prefix: str, node: Any, schema: Schema) -> None:
    """Check `node` (a mapping) against `schema`; unknown and missing keys are errors."""
    if not isinstance(node, Mapping | DictConfig):
        raise ConfigError(prefix, node, f"a mapping with keys {sorted(schema)}")
    unknown = sorted(set(node) - set(schema))
    if unknown:
        key = f"{prefix}.{unknown[0]}"
        raise ConfigError(key, node[unknown[0]], f"no such key; {prefix} has {sorted(schema)}")
    for key, check in schema.items():
        full = f"{prefix}.{key}"
        if key not in node:
            if getattr(check, "may_be_absent", False):
                continue
            raise ConfigError(full, None, "a value (the key is missing)")
        if isinstance(check, Mapping):
            check_node(full, node[key], check)
        else:
            check(full, node[key])


def model_kind(model: Mapping[str, Any]) -> str:
    """Which model schema a `model` node follows: an MLP (a module `_target_`) or random
    features (a feature spec, no target)."""
    if "_target_" in model:
        return "mlp"
    if "feature_distribution" in model:
        return "random_features"
    raise ConfigError("model", dict(model), f"one of the model configs {sorted(MODEL)}")


def resolved_config(cfg: DictConfig | Mapping[str, Any]) -> dict[str, Any]:
    """The config as plain containers, interpolations resolved, without the `hydra` node and
    with `profile` reduced to its name: its sizes are resolved into the groups that use them
    (a profile's entries for other studies may refer to keys this config does not have)."""
    if not isinstance(cfg, DictConfig):
        return {k: v for k, v in cfg.items() if k != "hydra"}
    out: dict[str, Any] = {}
    for key in cfg:
        if key == "hydra":
            continue
        if key == "profile":
            out[key] = {"name": OmegaConf.select(cfg, "profile.name", default=None)}
            continue
        try:
            node = cfg[key]
            out[key] = (
                OmegaConf.to_container(node, resolve=True) if OmegaConf.is_config(node) else node
            )
        except Exception as exc:  # an interpolation to a key that is not there
            raise ConfigError(key, str(exc).splitlines()[0], "resolvable interpolations") from None
    return out


def validate_config(
    cfg: DictConfig | Mapping[str, Any], groups: Iterable[str] = (), study: Any = None
) -> dict[str, Any]:
    """Check the root keys, `groups` and, given a `Study`, the study node and its checks
    across groups; return the resolved config. Raise `ConfigError` on the first problem."""
    from widthlab.runtime.devices import resolve_device

    resolved = resolved_config(cfg)
    for key, check in ROOT.items():
        if isinstance(check, Mapping):
            check_node(key, resolved.get(key), check)
        else:
            check(key, resolved.get(key))
    resolve_device(resolved["device"])
    if study is not None:  # first: a key the user set (study.steps) before one that copies it
        check_node("study", resolved.get("study"), {**STUDY_COMMON, **study.schema})
    data, model = resolved.get("data"), resolved.get("model")
    groups = set(groups)
    if "data" in groups:
        name = (data or {}).get("name")
        if name not in DATA:
            raise ConfigError("data.name", name, f"one of {sorted(DATA)}")
        check_node("data", data, DATA[name])
    if "model" in groups:
        if not model:
            raise ConfigError("model", model, f"one of the model configs {sorted(MODEL)}")
        wanted = getattr(study, "model_config", None)
        if wanted is not None and model_kind(model) != wanted:
            raise ConfigError(
                "model",
                model_kind(model),
                f"{wanted!r} in this study (its jobs take the model config model={wanted})",
            )
        check_node("model", model, MODEL[model_kind(model)])
    if "train" in groups:
        check_node("train", resolved.get("train"), TRAIN)
    if study is not None:
        node = OmegaConf.create(resolved)
        for key in resolved["study"]["job_keys"]:
            if OmegaConf.select(node, key, default="§missing") == "§missing":
                raise ConfigError("study.job_keys", key, "config keys that exist")
        study.job(resolved["study"]["job"])
        study.check(resolved)
    if "model" in groups:  # after the study's checks: a study that refuses the
        check_base_width(model)  # parameterization says so in its own words first
    return resolved


def check_base_width(model: Mapping[str, Any]) -> None:
    """An MLP in a parameterization scaled from a base width (mean_field, mup) names it."""
    kind = model.get("parameterization")
    if model_kind(model) == "mlp" and kind in SCALED_PARAMETERIZATIONS:
        if model.get("base_width") is None:
            raise ConfigError(
                "model.base_width",
                model.get("base_width"),
                f"an integer ≥ 1 with model.parameterization={kind!r} (the width at which "
                "it equals the standard or NTK network)",
            )
