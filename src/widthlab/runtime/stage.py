"""A study's DVC stage: every sweep the study lists (`study.sweeps`), then its aggregate, in
one process.

`run_stage(argv, pipelines)` reads `study=<name>` and any other overrides from `argv`, checks
the study's config, then runs `pipelines/run.py -m study=<sweep> <overrides>` for each sweep
and `pipelines/aggregate.py study=<name> <overrides>` (not under `dry_run=true`, where each
sweep only lists its jobs): the same tasks, as Hydra apps on the
same conf/ folder called in this process (Hydra clears its global state after every app),
so torch, Lightning and MLflow are imported once per stage rather than once per sweep, and
caches (data files, the last network) carry over. The first step that fails stops the stage
with its exit status.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

USAGE = """usage: python pipelines/stage.py study=<name> [overrides ...]

Runs every sweep the study's config lists (study.sweeps) with `pipelines/run.py -m`, then
`pipelines/aggregate.py`; the overrides (profile=smoke, tracking=off, ...) go to each step."""


def _app(task, conf: Path, name: str):
    """`task` as a Hydra app on the config folder `conf` (what `pipelines/<name>.py` is)."""
    import hydra

    from widthlab.runtime.errors import exit_on_error

    task.__name__ = name  # Hydra names the job (its output folder) after the task
    return hydra.main(version_base="1.3", config_path=str(conf), config_name="config")(
        exit_on_error(task)
    )


def _run_task(cfg) -> None:
    from widthlab.runtime.collector import tune_collector

    tune_collector()  # a sweep's worker process starts its jobs here
    from widthlab.runtime.stacks import run_task

    run_task(cfg)


def _aggregate_task(cfg) -> None:
    from widthlab.runtime.aggregate import aggregate

    aggregate(cfg)


def _call(main, argv: list[str]) -> int:
    saved = sys.argv
    sys.argv = argv
    try:
        main()
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    finally:
        sys.argv = saved
    return 0


def study_sweeps(pipelines: Path, overrides: list[str]) -> tuple[str, list[str], bool]:
    """The study's name, the sweeps its config lists and whether this is a dry run; a bad
    config raises its error."""
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from widthlab.runtime.schemas import validate_config
    from widthlab.runtime.study import load_study

    # Hydra's own errors (an unknown study, a YAML file it cannot read) and the config's reach
    # `entry.guarded`, which prints each as one line.
    with initialize_config_dir(str((pipelines.parent / "conf").resolve()), version_base="1.3"):
        cfg = compose("config", overrides=overrides, return_hydra_config=True)
        groups = list(cfg.hydra.runtime.choices)
    study = load_study(OmegaConf.select(cfg, "study._target_", default=None))
    resolved = validate_config(cfg, (), study)
    from widthlab.runtime.unread import STAGE_KEYS, check_unread, command_line_values

    typed = command_line_values(overrides, groups)  # each sweep passes them on: checked here
    check_unread(study, resolved["study"]["name"], study.jobs, typed)
    STAGE_KEYS.update(typed)
    return resolved["study"]["name"], list(resolved["study"]["sweeps"]), resolved["dry_run"]


def run_stage(argv: Sequence[str], pipelines: Path) -> int:
    """The stage (module docstring); returns the exit status. Every error is one line
    (`runtime.entry`), SIGTERM and Ctrl-C included."""
    from widthlab.runtime.entry import guarded, prepared_arguments

    argv = list(argv)
    if any(a in ("-h", "--help") for a in argv) or not any(a.startswith("study=") for a in argv):
        print(USAGE, file=sys.stderr if argv and "--help" not in argv else sys.stdout)
        return 0 if "--help" in argv or "-h" in argv else 2
    from widthlab.runtime.unread import STAGE_KEYS

    try:
        with guarded():
            status = _run_stage(prepared_arguments(argv), pipelines)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    finally:
        STAGE_KEYS.clear()
    return status


def _run_stage(argv: list[str], pipelines: Path) -> int:
    study_choice = next(a for a in argv if a.startswith("study="))
    others = [a for a in argv if a != study_choice]
    name, sweeps, dry_run = study_sweeps(pipelines, [study_choice, *others])
    conf = (pipelines.parent / "conf").resolve()
    run, aggregate = _app(_run_task, conf, "run"), _app(_aggregate_task, conf, "aggregate")
    for sweep in sweeps:
        print(f"stage {name}: sweep study={sweep}", flush=True)
        status = _call(run, [str(pipelines / "run.py"), "-m", f"study={sweep}", *others])
        if status:
            return status
    if dry_run:  # the sweeps listed their jobs; there is nothing new to aggregate
        return 0
    return _call(aggregate, [str(pipelines / "aggregate.py"), study_choice, *others])
