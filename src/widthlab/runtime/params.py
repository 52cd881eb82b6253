"""Resolved settings for DVC: what each data stage and study stage will run with.

`write_params(cfg)` composes, for the active profile, every data set of `conf/data/` and
every study (each config of `conf/study/` that lists its `sweeps`), resolves every
interpolation, expands each sweep into its values, and writes

    results/params/data/<name>.yaml      the data set's settings
    results/params/studies/<name>.yaml   the study's settings, model, data, training, root
                                         settings that change numbers, and per sweep the
                                         values of every swept key

DVC reads these as the stages' `params`. A stage therefore reruns when — and only when — its
own resolved settings change (editing the gpu profile leaves the laptop stages alone), and
`dvc params diff` shows values, never `${profile…}` strings.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from omegaconf import DictConfig, OmegaConf

from widthlab.runtime.records import atomic_write_bytes
from widthlab.runtime.sweep import swept_values
from widthlab.runtime.tracking import flatten

ROOT_KEYS = ("seed", "threads", "device")


def _compose(overrides: list[str], hydra: bool = False) -> DictConfig:
    from hydra import compose

    return compose("config", overrides=overrides, return_hydra_config=hydra)


def _dump(obj: Any) -> bytes:
    return yaml.safe_dump(obj, sort_keys=True, allow_unicode=True, width=100).encode()


def study_params(sweeps: list[str], profile: list[str]) -> dict[str, Any]:
    """The resolved settings of a study's sweeps (see the module docstring): the first
    sweep's groups in full; for each sweep, the values of its swept keys and the settings
    in which it differs from the first."""
    out: dict[str, Any] = {"sweeps": {}}
    first: dict[str, Any] | None = None
    for sweep in sweeps:
        cfg = _compose([f"study={sweep}", *profile], hydra=True)
        task = OmegaConf.to_container(
            OmegaConf.masked_copy(cfg, [k for k in cfg if k != "hydra"]), resolve=True
        )
        kept = {g: task[g] for g in ("study", "model", "data", "train") if task.get(g) is not None}
        kept.update({k: task[k] for k in ROOT_KEYS}, profile=task["profile"]["name"])
        entry: dict[str, Any] = {
            "swept": {k: [_typed(v) for v in vs] for k, vs in swept_values(cfg).items()}
        }
        if first is None:
            first = kept
            out.update(kept)
        else:
            flat, base = flatten(kept), flatten(first)
            entry["differs"] = {k: v for k, v in flat.items() if base.get(k, "§") != v}
        out["sweeps"][sweep] = entry
    return out


def _typed(text: str) -> Any:
    return yaml.safe_load(text)


def write_params(cfg: DictConfig, results_dir: str | None = None) -> list[Path]:
    """Write every resolved settings file (module docstring); returns their paths."""
    from hydra.core.hydra_config import HydraConfig

    runtime = HydraConfig.get().runtime
    profile = [f"profile={runtime.choices['profile']}"]
    conf = next(
        Path(s.path.removeprefix("file://")) for s in runtime.config_sources if s.provider == "main"
    )
    folder = Path(results_dir or cfg.paths.results_dir) / "params"
    written = []
    for path in sorted((conf / "data").glob("*.yaml")):
        data = OmegaConf.to_container(_compose([f"data={path.stem}", *profile]).data, resolve=True)
        target = folder / "data" / f"{path.stem}.yaml"
        atomic_write_bytes(target, _dump(data))
        written.append(target)
    for path in sorted((conf / "study").glob("*.yaml")):
        main = _compose([f"study={path.stem}", *profile])
        sweeps = OmegaConf.select(main, "study.sweeps", default=None)
        if not sweeps:
            continue
        target = folder / "studies" / f"{path.stem}.yaml"
        atomic_write_bytes(target, _dump(study_params(list(sweeps), profile)))
        written.append(target)
    print(f"wrote {len(written)} resolved settings files in {folder}/")
    return written
