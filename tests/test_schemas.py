"""Every bad value of every group gives its one-line error before any work (issue: schemas)."""

import logging

import pytest
from conftest import CONF
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf, open_dict

from widthlab.schemas import validate_config, validate_sweep
from widthlab.validation import ConfigError

# (entry point, overrides, the key the message must start with)
BAD = [
    ("data", ["data=sphere_linear", "data.n_train=0"], "data.n_train=0"),
    ("data", ["data=sphere_linear", "data.noise=-0.5"], "data.noise=-0.5"),
    ("data", ["data=sphere_linear", "data.dim=1"], "data.dim=1"),
    ("data", ["data=sphere_linear", "data.n_test=abc"], "data.n_test='abc'"),
    ("data", ["data=teacher", "data.teacher_width=0"], "data.teacher_width=0"),
    ("data", ["data=digits", "data.label_noise=1.0"], "data.label_noise=1.0"),
    ("data", ["data=digits", "data.label_noise=-0.1"], "data.label_noise=-0.1"),
    ("data", ["data=digits", "data.n_train=5000"], "data.n_train=5000"),
    ("data", ["data=mnist", "data.n_test=0"], "data.n_test=0"),
    ("data", ["data=sphere_linear", "data.name=cifar"], "data.name='cifar'"),
    ("data", ["data=digits", "seed=-1"], "seed=-1"),
    ("data", ["data=digits", "tracking.enabled=maybe"], "tracking.enabled='maybe'"),
    ("ntk_convergence", ["study=ntk_convergence", "model.width=0"], "model.width=0"),
    ("ntk_convergence", ["study=ntk_convergence", "model.depth=0"], "model.depth=0"),
    ("ntk_convergence", ["study=ntk_convergence", "model.activation=sigmoid"],
     "model.activation='sigmoid'"),
    ("ntk_convergence", ["study=ntk_convergence", "model.parameterization=mup"],
     "model.parameterization='mup'"),
    ("ntk_convergence", ["study=ntk_convergence", "model.parameterization=standard"],
     "model.parameterization='standard'"),
    ("ntk_convergence", ["study=ntk_convergence", "model.w_std=0"], "model.w_std=0"),
    ("ntk_convergence", ["study=ntk_convergence", "model.b_std=-1"], "model.b_std=-1"),
    ("ntk_convergence", ["study=ntk_convergence", "study.n_probe=100000"],
     "study.n_probe=100000"),
    ("ntk_convergence", ["study=ntk_convergence", "study.mc_networks=1"],
     "study.mc_networks=1"),
    ("ntk_circle", ["study=ntk_convergence", "study.circle.points=2"],
     "study.circle.points=2"),
    ("random_features", ["study=double_descent_rf", "study.ridges=[0.0,-1e-3]"],
     "study.ridges[1]=-0.001"),
    ("random_features", ["study=double_descent_rf", "study.width_ratio=0"],
     "study.width_ratio=0"),
    ("random_features", ["study=double_descent_rf", "model.activation=gelu"],
     "model.activation='gelu'"),
    ("random_features", ["study=double_descent_rf", "model.feature_distribution=uniform"],
     "model.feature_distribution='uniform'"),
    ("random_features", ["study=double_descent_rf", "seed=99"], "study.n_train=60"),
    ("report", ["device=tpu"], "device='tpu'"),
]  # fmt: skip


def composed(*overrides):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose("config", overrides=["profile=smoke", *overrides])


@pytest.mark.parametrize(("job", "overrides", "prefix"), BAD)
def test_bad_value_names_key_value_and_what_is_allowed(job, overrides, prefix):
    with pytest.raises(ConfigError) as info:
        validate_config(composed(*overrides), job)
    message = str(info.value)
    assert message.startswith(prefix + " is not allowed: expected "), message
    assert "\n" not in message


@pytest.mark.parametrize(
    ("job", "overrides"),
    [("data", ["data=" + d]) for d in ("sphere_linear", "teacher", "digits", "mnist")]
    + [("ntk_convergence", ["study=ntk_convergence"]), ("ntk_circle", ["study=ntk_convergence"]),
       ("random_features", ["study=double_descent_rf"]),
       ("random_features", ["study=double_descent_rf_digits"]),
       ("aggregate", ["study=ntk_convergence"]), ("report", [])],
)  # fmt: skip
def test_every_shipped_config_is_valid(job, overrides):
    for profile in ("smoke", "laptop", "gpu"):
        validate_config(composed(*overrides, f"profile={profile}"), job)


def test_a_typo_in_a_config_file_is_an_unknown_key():
    cfg = composed("data=sphere_linear")
    OmegaConf.set_struct(cfg, False)
    cfg.data.nosie = 0.3
    with pytest.raises(
        ConfigError, match=r"^data\.nosie=0\.3 is not allowed: expected no such key"
    ):
        validate_config(cfg, "data")


def sweep_cfg(*overrides):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose("config", overrides=["profile=smoke", *overrides],
                       return_hydra_config=True)  # fmt: skip


def test_a_sweep_is_checked_job_by_job_before_it_starts():
    cfg = sweep_cfg("study=ntk_convergence")
    groups = ["study", "data", "model"]
    assert validate_sweep(cfg, "ntk_convergence", groups=groups) == 3 * 2 * 2 * 2
    bad = sweep_cfg("study=ntk_convergence")
    with open_dict(bad):
        bad.hydra.sweeper.params["model.depth"] = "1,2,0"  # the last job is the bad one
    with pytest.raises(ConfigError, match=r"^model\.depth=0 is not allowed"):
        validate_sweep(bad, "ntk_convergence", groups=groups)


def test_a_width_sweep_that_misses_the_threshold_warns(caplog):
    cfg = sweep_cfg("study=double_descent_rf",
                    "profile.study.double_descent_rf.width_ratios='2,4,8'")  # fmt: skip
    with caplog.at_level(logging.WARNING):
        validate_sweep(cfg, "random_features", groups=["study", "data", "model"])
    assert "does not cross the interpolation threshold" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        validate_sweep(sweep_cfg("study=double_descent_rf"), "random_features",
                       groups=["study", "data", "model"])  # fmt: skip
    assert "threshold" not in caplog.text


def test_an_mlp_width_sweep_that_misses_the_threshold_warns(caplog, smoke_data):
    # smoke digits_noisy: n·C = 300·10 = 3000 = P at width (3000 − 10)/75 ≈ 40
    groups = ["study", "data", "model", "train"]
    for widths, warned in (("4,20,30", True), ("4,40,400", False)):
        cfg = sweep_cfg("study=double_descent_mlp", f"paths.data_dir={smoke_data}",
                        f"profile.study.double_descent_mlp.widths='{widths}'")  # fmt: skip
        caplog.clear()
        with caplog.at_level(logging.WARNING):
            validate_sweep(cfg, "double_descent_mlp", groups=groups)
        assert ("does not cross the interpolation threshold n·C = 3000" in caplog.text) is warned
