"""The cores launcher's template jobs are the jobs Hydra itself composes (src/hydra_plugins/
widthlab_launcher), it starts the widest jobs first and returns them in the sweep's order, and
it is still counted as joblib by the memory pre-flight."""

import os
from pathlib import Path

import pytest
from conftest import REPO, STUDIES
from hydra import initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import HydraContext, RunMode
from hydra_plugins.hydra_joblib_launcher.joblib_launcher import JoblibLauncher
from omegaconf import OmegaConf

from hydra_plugins import widthlab_launcher
from hydra_plugins.widthlab_launcher import (
    JoblibTemplateLauncher,
    TemplateConfigLoader,
    from_template,
    launch_order,
    sweep_key,
)
from widthlab.runtime.preflight import concurrent_jobs
from widthlab.runtime.stage import study_sweeps
from widthlab.runtime.sweep import job_overrides

CONF = str(REPO / "conf")


def master(overrides):
    """The multirun config `python pipelines/run.py -m <overrides>` hands its launcher."""
    loader = GlobalHydra.instance().config_loader()
    return loader, loader.load_configuration("config", overrides, run_mode=RunMode.MULTIRUN)


def sample(jobs, k=4):
    """The first two jobs, one from the middle and the last (each compared job costs a full
    Hydra composition, ~0.1 s)."""
    picks = sorted({0, 1, len(jobs) // 2, len(jobs) - 1} if len(jobs) > k else range(len(jobs)))
    return [jobs[i] for i in picks]


def compare(loader, cfg, jobs):
    """Every job through a fresh template loader against Hydra's own composition; returns how
    many came from the template."""
    widthlab_launcher._TEMPLATES.clear()
    fast = TemplateConfigLoader(loader, sweep_key(cfg))
    hits = 0
    for lines in jobs:
        had = sweep_key(cfg) in widthlab_launcher._TEMPLATES
        ours, hydras = fast.load_sweep_config(cfg, lines), loader.load_sweep_config(cfg, lines)
        assert OmegaConf.to_yaml(ours) == OmegaConf.to_yaml(hydras), lines
        assert OmegaConf.is_struct(ours) and OmegaConf.is_struct(hydras)
        assert OmegaConf.is_readonly(ours.hydra) == OmegaConf.is_readonly(hydras.hydra)
        HydraConfig.instance().set_config(hydras)
        task = [k for k in hydras if k != "hydra"]
        resolved = [OmegaConf.to_container(OmegaConf.masked_copy(c, task), resolve=True)
                    for c in (ours, hydras)]  # fmt: skip
        assert resolved[0] == resolved[1], lines
        template = widthlab_launcher._TEMPLATES[sweep_key(cfg)]
        hits += had and from_template(template, cfg, list(lines)) is not None
    return hits


@pytest.mark.slow
@pytest.mark.parametrize("study", STUDIES)
def test_every_study_sweeps_jobs_from_the_template_are_hydras_own(study):
    sweeps = study_sweeps(REPO / "pipelines", [f"study={study}", "profile=smoke"])[1]
    with initialize_config_dir(config_dir=CONF, version_base="1.3"):
        for sweep in sweeps:
            loader, cfg = master([f"study={sweep}", "profile=smoke", "hydra/launcher=cores"])
            jobs = sample(job_overrides(cfg))
            # every job but the first comes from the template: the swept keys are plain values
            assert compare(loader, cfg, jobs) == len(jobs) - 1, sweep


def test_the_laptop_ntk_sweep_and_a_command_line_sweep_come_from_the_template():
    overrides = ["study=ntk_convergence", "hydra/launcher=cores", "study.n_probe=64,128"]
    with initialize_config_dir(config_dir=CONF, version_base="1.3"):
        loader, cfg = master(overrides)
        jobs = job_overrides(cfg)
        assert len(jobs) == 480
        assert compare(loader, cfg, sample(jobs)) == 3


def test_a_config_group_sweep_and_other_overrides_go_to_hydra():
    with initialize_config_dir(config_dir=CONF, version_base="1.3"):
        loader, cfg = master(["data=digits,teacher", "profile=smoke", "hydra/launcher=cores"])
        jobs = job_overrides(cfg)
        assert len(jobs) == 2
        assert compare(loader, cfg, jobs) == 0  # `data` is a config group: Hydra composes both
        loader, cfg = master(["study=lazy_training", "profile=smoke"])
        lines = list(job_overrides(cfg)[0])
        widthlab_launcher._TEMPLATES.clear()
        TemplateConfigLoader(loader, sweep_key(cfg)).load_sweep_config(cfg, lines)
        template = widthlab_launcher._TEMPLATES[sweep_key(cfg)]
        width = next(i for i, line in enumerate(lines) if line.startswith("model.width="))
        for other in ("+model.width=7", "model.width={a: 1}", "model=mlp", "hydra.verbose=true"):
            changed = [*lines[:width], other, *lines[width + 1 :]]
            assert from_template(template, cfg, changed) is None
        assert from_template(template, cfg, [*lines, "seed=1"]) is None  # not the same keys
        assert from_template(template, cfg, lines) is not None


def test_the_cores_launcher_is_joblib_for_the_memory_preflight(monkeypatch):
    with initialize_config_dir(config_dir=CONF, version_base="1.3"):
        _, cfg = master(["study=lazy_training", "hydra/launcher=cores"])
    launcher = OmegaConf.to_container(cfg.hydra.launcher, resolve=True)
    assert launcher["_target_"] == "hydra_plugins.widthlab_launcher.JoblibTemplateLauncher"
    assert launcher["largest_first"] == ["model.width", "model.depth"]
    monkeypatch.setattr(os, "cpu_count", lambda: 6)
    assert concurrent_jobs(launcher) == 6


def test_the_sweep_key_names_the_multirun_and_the_directory(tmp_path, monkeypatch):
    with initialize_config_dir(config_dir=CONF, version_base="1.3"):
        _, a = master(["study=lazy_training", "profile=smoke"])
        _, b = master(["study=lazy_training", "profile=smoke", "train.lr=0.5"])
    assert sweep_key(a) != sweep_key(b)
    here = sweep_key(a)
    monkeypatch.chdir(tmp_path)
    assert sweep_key(a) != here
    monkeypatch.chdir(Path(REPO))


def test_templates_survive_hydras_plugin_scan_executing_the_module_again():
    """In a joblib worker, Hydra's plugin scan executes every `hydra_plugins` module again in
    its existing module object for each job; a cache reset there would make every job a full
    composition again (as the first version of the launcher did, 0 templates in 240 jobs)."""
    import importlib.util
    import sys

    name = "hydra_plugins.widthlab_launcher"
    module = sys.modules[name]
    module._TEMPLATES["probe"] = "kept"
    try:
        spec = importlib.util.find_spec(name)
        spec.loader.exec_module(module)  # what Hydra's `Plugins._scan_all_plugins` does
        assert sys.modules[name]._TEMPLATES.get("probe") == "kept"
    finally:
        module._TEMPLATES.pop("probe", None)


def test_launch_order_is_widest_first_then_deepest_stable_and_unswept_last():
    jobs = [
        ["model.width=13", "seed=0"],
        ["model.width=1333", "seed=0"],
        ["model.width=133", "model.depth=2", "seed=0"],
        ["model.width=133", "model.depth=3", "seed=0"],
        ["seed=1"],  # no width: after every job with one
        ["model.width=${oc.env:W}"],  # not a plain number: the same
        ["model.width=13", "seed=1"],  # ties keep the sweep's order
        ["model.width=1.5e3"],
    ]
    assert launch_order(jobs, ["model.width", "model.depth"]) == [7, 1, 3, 2, 0, 6, 4, 5]
    assert launch_order(jobs, []) == list(range(len(jobs)))


def test_the_launcher_starts_the_widest_jobs_first_and_returns_the_sweeps_order(monkeypatch):
    started = []

    def fake_launch(self, job_overrides, initial_job_idx):  # Hydra's joblib launch
        # (by name: Hydra's plugin scan executes the module again, making new classes)
        assert type(self.hydra_context.config_loader).__name__ == "TemplateConfigLoader"
        started.extend(" ".join(o) for o in job_overrides)
        return [f"ran {' '.join(o)} as #{initial_job_idx + i}" for i, o in enumerate(job_overrides)]

    monkeypatch.setattr(JoblibLauncher, "launch", fake_launch)
    launcher = JoblibTemplateLauncher(largest_first=["model.width"], n_jobs=2)
    launcher.config = OmegaConf.create({"study": "x"})
    context = HydraContext(config_loader=object(), callbacks=None)
    launcher.hydra_context = context
    sweep = [["model.width=64", "seed=0"], ["model.width=1024", "seed=0"], ["model.width=256"]]
    runs = launcher.launch(sweep, initial_job_idx=0)
    assert started == ["model.width=1024 seed=0", "model.width=256", "model.width=64 seed=0"]
    assert runs == [
        "ran model.width=64 seed=0 as #2",
        "ran model.width=1024 seed=0 as #0",
        "ran model.width=256 as #1",
    ]
    assert launcher.hydra_context is context
