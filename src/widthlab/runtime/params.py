"""Resolved settings for DVC: what each stage will run with, checked before any stage runs.

`write_params(cfg)` composes, for the active profile, every data set of `conf/data/` and
every study (each option of the config group `study` that lists its `sweeps`: a study
folder's `conf/study/<name>.yaml`, found on Hydra's search path), resolves every
interpolation, expands each sweep into its values, checks every job of every sweep against
the schemas and its study's checks, and only then writes

    results/params/stages.yaml           what DVC tracks (`params` in dvc.yaml), per stage:
                                         `digest`: sha256 of the stage's resolved settings and
                                         of the code its outputs come from (`sources`);
                                         per study also `jobs` (its sweeps' size) and the
                                         settings it shows (`Study.shown_settings`)
    results/params/data/<name>.yaml      a data set's resolved settings
    results/params/studies/<name>.yaml   a study's settings, model, data, training, the root
                                         settings that change numbers, and per sweep the
                                         values of every swept key

DVC reruns a stage when its entry of `stages.yaml` changes: when a setting it runs with
changes (editing the gpu profile leaves the laptop stages alone), or the code its outputs
come from (an edit to MLflow logging, a comment or a docstring changes no digest). The
per-stage entries keep `dvc exp show` to a few columns a study; the resolved files hold
every value (`git diff results/params/` shows what an experiment changed).

The profiles are the files `dvc exp run -S` writes: `conf/profile/<profile>.yaml` (the data
sets' sizes) and each study folder's `conf/profile/study/<study>/<profile>.yaml` (its
sizes). DVC rewrites such a file through its own loader, which turns an interpolation into
its value, so every file under a `profile/` folder of the search path must hold plain values
only. A profile value that is an interpolation, or any value a job
would refuse, stops this stage with one line before anything is written, so a bad
experiment stops before any stage that computes or writes results.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import yaml
from omegaconf import DictConfig, OmegaConf

from widthlab.runtime.errors import ConfigError
from widthlab.runtime.records import atomic_write_set, jsonable
from widthlab.runtime.sweep import swept_values
from widthlab.runtime.tracking import flatten

ROOT_KEYS = ("seed", "threads", "device")
HEADER = (
    "# Written by `python pipelines/params.py` (DVC's `params` stage) from conf/ for the\n"
    "# active profile: change a value in conf/ or a study's conf/, not here.\n"
)


def _compose(overrides: list[str], hydra: bool = False) -> DictConfig:
    from hydra import compose

    return compose("config", overrides=overrides, return_hydra_config=hydra)


def _dump(obj: Any, profile: str) -> bytes:
    text = yaml.safe_dump(obj, sort_keys=True, allow_unicode=True, width=100)
    return (HEADER.format(profile=profile) + text).encode()


def _digest(obj: Any) -> str:
    blob = json.dumps(jsonable(obj), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def study_params(sweeps: list[str], profile: list[str]) -> tuple[dict[str, Any], int]:
    """The resolved settings of a study's sweeps (module docstring: the first sweep's groups
    in full; for each sweep, the values of its swept keys and the settings in which it
    differs from the first), and how many jobs the sweeps hold. Every job is composed and
    checked first: a bad value raises its `ConfigError`."""
    out: dict[str, Any] = {"sweeps": {}}
    first: dict[str, Any] | None = None
    jobs = 0
    for sweep in sweeps:
        cfg = _compose([f"study={sweep}", *profile], hydra=True)
        jobs += check_sweep(cfg)
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
    return out, jobs


def check_sweep(cfg: DictConfig) -> int:
    """Compose every job of the sweep `cfg` and check it as the sweep would: the schemas, the
    study's checks, its targets and each job's estimated memory alone; returns the number of
    jobs. Data files, paths and jobs side by side are the sweep's own pre-flight (the data
    may not exist yet when this runs, and the launcher is the stage's)."""
    from widthlab.runtime.preflight import check_memory, check_targets
    from widthlab.runtime.reads import lookup
    from widthlab.runtime.records import job_key
    from widthlab.runtime.schemas import validate_config
    from widthlab.runtime.study import load_study
    from widthlab.runtime.sweep import resolved_jobs

    jobs = resolved_jobs(cfg)
    if not jobs:
        raise ConfigError("hydra.sweeper.params", "{}", "a sweep with at least one job")
    study = load_study(jobs[0]["study"]["_target_"])
    for job in jobs:
        validate_config(job, study.job(job["study"]["job"]).groups, study)
    check_targets(jobs[0], study.job(jobs[0]["study"]["job"]).groups)
    keys = [job_key({k: lookup(j, k) for k in j["study"]["job_keys"]}) for j in jobs]
    check_memory(jobs, lambda j: study.job(j["study"]["job"]).peak_memory(j), keys)
    return len(jobs)


def _typed(text: str) -> Any:
    return yaml.safe_load(text)


def check_plain_values(path: Path) -> None:
    """`ConfigError` for the first interpolation in a file `dvc exp run -S` may rewrite."""
    data = yaml.safe_load(path.read_text()) or {}
    for key, value in flatten(data).items():
        values = value if isinstance(value, list) else [value]
        if any(isinstance(v, str) and "${" in v for v in values):
            raise ConfigError(
                f"{path.name}: {key}",
                value,
                "a plain value (DVC's `exp run -S` rewrites this file and would turn an "
                "interpolation into its value)",
            )


def profile_files(roots: list[Path]) -> list[Path]:
    """Every file `dvc exp run -S` may rewrite: the YAML files under `profile/` of each
    config folder on the search path (the repository's `conf/`, each study's `conf/`)."""
    return sorted({p for root in roots for p in (root / "profile").rglob("*.yaml")})


def study_options() -> list[str]:
    """The options of the config group `study` (its top level: one per study, whichever
    folder on Hydra's search path holds it), sorted."""
    from hydra.core.global_hydra import GlobalHydra

    return sorted(GlobalHydra.instance().config_loader().get_group_options("study"))


def stage_digests(studies: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
    """`stages.yaml` (module docstring) from each study's `(settings, jobs, study)` and the
    data sets' settings."""
    from widthlab.runtime import sources

    data_code = sources.closure([sources.runtime_file("datastage")])
    report_code = sources.closure(
        [sources.runtime_file("report")]
        + [f for _, _, study in studies.values() for f in type(study).source_files()]
    )
    out: dict[str, Any] = {
        "data": {"digest": _digest([data, sources.digest(data_code)])},
        "report": {"digest": sources.digest(report_code)},
        "studies": {},
    }
    stage_code = [sources.runtime_file(n) for n in ("stage", "jobs", "aggregate")]
    for name, (settings, jobs, study) in studies.items():
        code = sources.closure([*stage_code, *sources.plugin_files(), *study.source_files()])
        entry: dict[str, Any] = {
            "digest": _digest([settings, sources.digest(code)]),
            "jobs": jobs,
        }
        for key in study.shown_settings:
            entry[key.rsplit(".", 1)[-1]] = OmegaConf.select(OmegaConf.create(settings), key)
        out["studies"][name] = entry
    return out


def write_params(cfg: DictConfig, results_dir: str | None = None) -> list[Path]:
    """Check every stage's settings, then write every resolved settings file (module
    docstring); returns their paths."""
    from hydra.core.hydra_config import HydraConfig

    from widthlab.runtime.study import load_study

    runtime = HydraConfig.get().runtime
    name = runtime.choices["profile"]
    profile = [f"profile={name}"]
    sources = [s for s in runtime.config_sources if s.schema == "file"]
    roots = [Path(s.path.removeprefix("file://")) for s in sources]
    conf = next(r for s, r in zip(sources, roots, strict=True) if s.provider == "main")
    for path in profile_files(roots):
        check_plain_values(path)
    folder = Path(results_dir or cfg.paths.results_dir) / "params"
    outputs: dict[Path, bytes] = {}
    data: dict[str, Any] = {}
    for path in sorted((conf / "data").glob("*.yaml")):
        data[path.stem] = OmegaConf.to_container(
            _compose([f"data={path.stem}", *profile]).data, resolve=True
        )
        outputs[folder / "data" / f"{path.stem}.yaml"] = _dump(data[path.stem], name)
    studies: dict[str, Any] = {}
    for option in study_options():
        main = _compose([f"study={option}", *profile])
        sweeps = OmegaConf.select(main, "study.sweeps", default=None)
        if not sweeps:
            continue
        settings, jobs = study_params(list(sweeps), profile)
        studies[option] = (settings, jobs, load_study(settings["study"]["_target_"]))
        outputs[folder / "studies" / f"{option}.yaml"] = _dump(settings, name)
    outputs[folder / "stages.yaml"] = _dump(stage_digests(studies, data), name)
    atomic_write_set(outputs)  # every check passed: now write, as a set
    print(f"wrote {len(outputs)} resolved settings files in {folder}/")
    return list(outputs)
