"""Every option of every config group composes and resolves under every profile."""

import re

import pytest
from conftest import CONF
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


@pytest.mark.parametrize("profile", ["smoke", "laptop", "gpu"])
def test_profiles_are_files_dvc_can_rewrite_one_line_at_a_time(profile, tmp_path):
    """`dvc exp run -S conf/profile/<p>.yaml:<key>=<value>` rewrites the whole file through
    DVC's loader (dvc.utils.hydra.apply_overrides), which turns an interpolation into its
    value and reformats lists: a profile holds plain values in DVC's own form, so DVC's
    rewrite of an unchanged value leaves every byte, and a changed value changes one line."""
    from dvc.utils.hydra import apply_overrides

    from widthlab.runtime.params import check_plain_values

    source = CONF / "profile" / f"{profile}.yaml"
    check_plain_values(source)
    copy = tmp_path / source.name
    copy.write_bytes(source.read_bytes())
    apply_overrides(copy, [f"name={profile}"])
    assert copy.read_bytes() == source.read_bytes()
    apply_overrides(copy, ["study.max_margin.steps=123"])
    changed = [
        (a, b)
        for a, b in zip(source.read_text().splitlines(), copy.read_text().splitlines(), strict=True)
        if a != b
    ]
    assert len(changed) == 1 and changed[0][1].strip() == "steps: 123", changed


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
