"""The cores launcher's template jobs are the jobs Hydra itself composes (src/hydra_plugins/
widthlab_launcher), and the launcher is still counted as joblib by the memory pre-flight."""

import os
from pathlib import Path

import pytest
from conftest import REPO
from hydra import initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import OmegaConf

from hydra_plugins import widthlab_launcher
from hydra_plugins.widthlab_launcher import TemplateConfigLoader, from_template, sweep_key
from widthlab.runtime.preflight import concurrent_jobs
from widthlab.runtime.stage import study_sweeps
from widthlab.runtime.sweep import job_overrides

CONF = str(REPO / "conf")
STUDIES = sorted(p.stem for p in (REPO / "conf" / "study").glob("*.yaml"))


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
