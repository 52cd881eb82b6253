"""Every option of every config group composes and resolves under every profile."""

import re

import pytest
import yaml
from conftest import CONF, PROFILES, REPO, STUDIES, study_conf
from omegaconf import OmegaConf


def group_options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


@pytest.mark.parametrize(
    "group", [p.name for p in sorted(CONF.iterdir()) if p.is_dir() and group_options(p.name)]
)
def test_every_group_option_composes_and_resolves(compose_cfg, group):
    for option in group_options(group):
        cfg = compose_cfg(f"{group}={option}")
        resolved = OmegaConf.to_container(cfg, resolve=True)
        assert resolved[group] is not None, f"{group}={option} composed to nothing"


@pytest.mark.parametrize("profile", group_options("profile"))
@pytest.mark.parametrize("data", group_options("data"))
def test_every_profile_sizes_every_data_set(compose_cfg, profile, data):
    cfg = compose_cfg(f"profile={profile}", f"data={data}")
    data_cfg = OmegaConf.to_container(cfg.data, resolve=True)
    assert cfg.profile.name == profile
    assert isinstance(data_cfg["n_train"], int) and data_cfg["n_train"] > 0


def test_profiles_scale_sizes_monotonically(compose_cfg):
    sizes = {
        p: compose_cfg(f"profile={p}", "data=sphere_linear").data.n_train
        for p in ("smoke", "laptop", "gpu")
    }
    assert sizes["smoke"] < sizes["laptop"] < sizes["gpu"]


def test_defaults_are_laptop_profile_and_mlflow_sqlite():
    root = OmegaConf.load(CONF / "config.yaml")
    assert {"profile": "laptop"} in root.defaults
    tracking = OmegaConf.load(CONF / "tracking" / "mlflow.yaml")
    assert "sqlite:///mlflow.db" in tracking.uri  # the literal, before env resolution


def test_hydra_interpolations_only_inside_the_hydra_node():
    # ${hydra:...} in a task config breaks compose(); it may appear only under `hydra:`.
    for path in CONF.rglob("*.yaml"):
        cfg = OmegaConf.load(path)
        body = OmegaConf.to_yaml(OmegaConf.masked_copy(cfg, [k for k in cfg if k != "hydra"]))
        assert not re.search(r"\$\{hydra:", body), path


def test_hydra_settings_fixed_paths_and_no_chdir(compose_cfg):
    cfg = compose_cfg(return_hydra_config=True)
    assert cfg.hydra.job.chdir is False
    assert cfg.paths.data_dir == "data" and cfg.paths.results_dir == "results"


# Every file `dvc exp run -S` may rewrite: the profiles' data sizes, and each study's sizes
# per profile in its own folder.
PROFILE_FILES = sorted(
    [CONF / "profile" / f"{p}.yaml" for p in PROFILES]
    + [study_conf(s) / "profile" / "study" / s / f"{p}.yaml" for s in STUDIES for p in PROFILES]
)


@pytest.mark.parametrize("source", PROFILE_FILES, ids=lambda p: str(p.relative_to(REPO)))
def test_profiles_are_files_dvc_can_rewrite_one_line_at_a_time(source, tmp_path):
    """`dvc exp run -S <profile file>:<key>=<value>` rewrites the whole file through DVC's
    loader (dvc.utils.hydra.apply_overrides), which turns an interpolation into its value and
    reformats lists: a profile file holds plain values in DVC's own form, so DVC's rewrite of
    an unchanged value leaves every byte, and a changed value changes one line."""
    from dvc.utils.hydra import apply_overrides

    from widthlab.runtime.params import check_plain_values

    check_plain_values(source)
    copy = tmp_path / source.name
    copy.write_bytes(source.read_bytes())
    values = yaml.safe_load(source.read_text())
    apply_overrides(copy, [])
    assert copy.read_bytes() == source.read_bytes()
    key = next(k for k, v in values.items() if isinstance(v, int) and not isinstance(v, bool))
    apply_overrides(copy, [f"{key}={values[key] + 1}"])
    changed = [
        (a, b)
        for a, b in zip(source.read_text().splitlines(), copy.read_text().splitlines(), strict=True)
        if a != b
    ]
    assert len(changed) == 1 and changed[0][1].startswith(f"{key}: {values[key] + 1}"), changed


def test_every_study_has_its_sizes_for_every_profile_in_its_folder(compose_cfg):
    for study in STUDIES:
        for profile in PROFILES:
            cfg = compose_cfg(f"study={study}", f"profile={profile}", return_hydra_config=True)
            assert cfg.hydra.runtime.choices[f"profile/study/{study}"] == profile
            sizes = yaml.safe_load(
                (study_conf(study) / "profile" / "study" / study / f"{profile}.yaml").read_text()
            )
            assert OmegaConf.to_container(cfg.profile.study[study]) == sizes
            assert list(cfg.profile.study) == [study]  # a job composes its own study's only


def test_an_interpolation_in_a_profile_is_refused_with_one_line(tmp_path):
    from widthlab.runtime.errors import ConfigError
    from widthlab.runtime.params import check_plain_values

    profile = tmp_path / "laptop.yaml"
    profile.write_text("study:\n  rf:\n    widths: ${oc.select:grid,null}\n    n: 3\n")
    with pytest.raises(ConfigError) as error:
        check_plain_values(profile)
    assert str(error.value).startswith("laptop.yaml: study.rf.widths='${oc.select:grid,null}'")
    profile.write_text("study:\n  rf:\n    widths: [1, '${x}']\n")
    with pytest.raises(ConfigError):
        check_plain_values(profile)


def test_a_studys_configs_come_from_the_repository_the_app_runs_with(tmp_path):
    """`dvc exp run --temp` and `--queue` run a copy of the repository while Python imports
    the original (an editable install): the copy's study configs, with the value DVC set in
    them, are the ones composed (hydra_plugins.widthlab_studies)."""
    import shutil

    from hydra import compose, initialize_config_dir

    shutil.copytree(CONF, tmp_path / "conf")
    for study in STUDIES:
        shutil.copytree(study_conf(study), tmp_path / "src/widthlab/studies" / study / "conf")
    sizes = tmp_path / "src/widthlab/studies/max_margin/conf/profile/study/max_margin/smoke.yaml"
    assert "separability_draws: 40\n" in sizes.read_text()
    text = sizes.read_text()
    sizes.write_text(text.replace("separability_draws: 40\n", "separability_draws: 41\n"))
    for conf, draws in ((tmp_path / "conf", 41), (CONF, 40)):
        with initialize_config_dir(config_dir=str(conf), version_base="1.3"):
            cfg = compose("config", overrides=["study=max_margin", "profile=smoke"])
        assert cfg.profile.study.max_margin.separability_draws == draws
