"""Every bad value of every group gives its one-line error before any work; every shipped
config is valid; a sweep is planned and checked job by job before it starts."""

import logging

import pytest
from conftest import STUDIES, composed, study_conf
from omegaconf import OmegaConf, open_dict

from widthlab.runtime.errors import ConfigError
from widthlab.runtime.schemas import validate_config
from widthlab.runtime.study import load_study
from widthlab.runtime.sweep import plan_sweep


def check(overrides, groups=("data", "model", "train")):
    cfg = composed(*overrides)
    target = OmegaConf.select(cfg, "study._target_", default=None)
    study = load_study(target) if target else None
    if study is not None:
        groups = study.job(cfg.study.job).groups
    return validate_config(cfg, groups if study else [g for g in groups if cfg.get(g)], study)


# (overrides, the start of the message)
BAD = [
    (["data=sphere_linear", "data.n_train=0"], "data.n_train=0"),
    (["data=sphere_linear", "data.noise=-0.5"], "data.noise=-0.5"),
    (["data=sphere_linear", "data.dim=1"], "data.dim=1"),
    (["data=sphere_linear", "data.n_test=abc"], "data.n_test='abc'"),
    (["data=teacher", "data.teacher_width=0"], "data.teacher_width=0"),
    (["data=digits", "data.label_noise=1.0"], "data.label_noise=1.0"),
    (["data=digits", "data.n_train=5000"], "data.n_train=5000"),
    (["data=sphere_linear", "data.name=cifar"], "data.name='cifar'"),
    (["data=digits", "seed=-1"], "seed=-1"),
    (["data=digits", "threads=0"], "threads=0"),
    (["data=digits", "tracking.enabled=maybe"], "tracking.enabled='maybe'"),
    (["study=ntk_convergence", "model.width=0"], "model.width=0"),
    (["study=ntk_convergence", "model.activation=sigmoid"], "model.activation='sigmoid'"),
    (["study=ntk_convergence", "model.parameterization=standard"],
     "model.parameterization='standard'"),
    (["study=ntk_convergence", "study.n_probe=100000"], "study.n_probe=100000"),
    (["study=ntk_convergence/mc", "study.mc.networks=1"], "study.mc.networks=1"),
    (["study=ntk_convergence/circle", "study.circle.points=2"], "study.circle.points=2"),
    (["study=ntk_convergence/circle", "study.circle.width=77"], "study.circle.width=77"),
    (["study=double_descent_rf", "study.ridges=[0.0,-1e-3]"], "study.ridges[1]=-0.001"),
    (["study=double_descent_rf", "study.width_ratios=[0]"], "study.width_ratios[0]=0"),
    (["study=double_descent_rf", "model.activation=gelu"], "model.activation='gelu'"),
    (["study=double_descent_rf", "seed=99"], "study.n_train=60"),
    (["study=double_descent_mlp", "train.lr=0"], "train.lr=0"),
    (["study=double_descent_mlp", "study.peak_band=[3,1]"], "study.peak_band=[3, 1]"),
    (["study=lazy_training", "study.steps=-3"], "study.steps=-3"),
    (["study=lazy_training", "train=adam"], "train.optimizer='adam'"),
    (["study=lazy_training", "study.n_eval=100000"], "study.n_eval=100000"),
    (["study=ntk_convergence", "study.job=nothing"], "study.job='nothing'"),
    (["study=ntk_convergence", "study._target_=no.such.Study"], "study._target_='no.such.Study'"),
    (["study=ntk_convergence", "study._target_=widthlab.models.mlp.MLP"],
     "study._target_='widthlab.models.mlp.MLP'"),
    (["study=ntk_convergence", "device=tpu"], "device='tpu'"),
]  # fmt: skip


@pytest.mark.parametrize(("overrides", "prefix"), BAD)
def test_bad_value_names_key_value_and_what_is_allowed(overrides, prefix):
    with pytest.raises(ConfigError) as info:
        check(overrides)
    message = str(info.value)
    assert message.startswith(prefix + " is not allowed: expected "), message
    assert "\n" not in message


STUDY_CONFIGS = sorted(
    str(p.relative_to(study_conf(s) / "study").with_suffix(""))
    for s in STUDIES
    for p in (study_conf(s) / "study").rglob("*.yaml")
    if p.stem != "common"
)


@pytest.mark.parametrize("profile", ["smoke", "laptop", "gpu"])
@pytest.mark.parametrize("study", STUDY_CONFIGS)
def test_every_shipped_study_config_is_valid_under_every_profile(study, profile):
    check([f"study={study}", f"profile={profile}"])


@pytest.mark.parametrize("profile", ["smoke", "laptop", "gpu"])
@pytest.mark.parametrize(
    "data",
    ["sphere_linear", "teacher", "digits", "digits_noisy", "mnist", "mnist1d", "mnist1d_noisy"],
)
def test_every_data_config_is_valid_under_every_profile(data, profile):
    check([f"data={data}", f"profile={profile}"], groups=("data",))


def test_a_typo_in_a_config_file_is_an_unknown_key():
    cfg = composed("data=sphere_linear")
    OmegaConf.set_struct(cfg, False)
    cfg.data.nosie = 0.3
    with pytest.raises(
        ConfigError, match=r"^data\.nosie=0\.3 is not allowed: expected no such key"
    ):
        validate_config(cfg, ("data",))


def test_the_key_the_user_set_is_named_not_the_one_that_copies_it():
    # train.max_steps: ${study.steps}: the user set study.steps, so the message names it.
    with pytest.raises(ConfigError, match=r"^study\.steps=-3"):
        check(["study=lazy_training", "study.steps=-3"])


def test_a_sweep_is_planned_and_checked_job_by_job(smoke_data, tmp_path):
    cfg = composed("study=ntk_convergence", "tracking=off", f"paths.data_dir={smoke_data}",
                   f"paths.results_dir={tmp_path}", hydra=True)  # fmt: skip
    plan = plan_sweep(cfg)
    assert len(plan.plans) == 3 * 2 * 2 * 2 and not any(plan.cached)
    assert plan.definition["model.activation"] == ["relu", "erf"]
    # A sweeper param with one value is a plain override, and every job still gets it.
    with open_dict(cfg):
        cfg.hydra.sweeper.params["model.width"] = "48"
    single = plan_sweep(cfg)
    assert len(single.plans) == 2 * 2 * 2
    assert {r["model"]["width"] for r in single.resolved} == {48}
    assert all("model.width=48" in p.key for p in single.plans)
    with open_dict(cfg):
        cfg.hydra.sweeper.params["model.depth"] = "1,2,0"  # the last job is the bad one
    with pytest.raises(ConfigError, match=r"^model\.depth=0 is not allowed"):
        plan_sweep(cfg)
    with open_dict(cfg):
        cfg.hydra.sweeper.params["model.depth"] = "range(5,5)"
    with pytest.raises(ConfigError, match=r"^model\.depth='range\(5,5\)' is not allowed: "
                       r"expected a sweep with at least one value"):  # fmt: skip
        plan_sweep(cfg)


def test_a_width_sweep_that_misses_the_threshold_warns(caplog, smoke_data, tmp_path):
    def plan(*overrides):
        cfg = composed("tracking=off", f"paths.data_dir={smoke_data}",
                       f"paths.results_dir={tmp_path}", *overrides, hydra=True)  # fmt: skip
        caplog.clear()
        with caplog.at_level(logging.WARNING):
            plan_sweep(cfg)
        return caplog.text

    assert "does not cross the interpolation threshold d/n = 1" in plan(
        "study=double_descent_rf", "profile.study.double_descent_rf.width_ratios=[2,4,8]"
    )
    assert "threshold" not in plan("study=double_descent_rf")
    # smoke digits_noisy: n·C = 300·10 = 3000 = P at width (3000 − 10)/75 ≈ 40
    missed = plan("study=double_descent_mlp", "profile.study.double_descent_mlp.widths='4,20,30'")
    assert "does not cross the interpolation threshold n·C = 3000" in missed
    assert "threshold" not in plan("study=double_descent_mlp")
