"""The study jobs, run in-process on the smoke profile, against independent computations."""

import numpy as np
import pytest
import torch
from conftest import load_pipeline
from omegaconf import open_dict

from widthlab.data import load_dataset
from widthlab.kernels import nngp_and_ntk
from widthlab.validation import ConfigError

random_features = load_pipeline("random_features")
ntk_convergence = load_pipeline("ntk_convergence")


def rf_cfg(compose_cfg, smoke_data, *overrides):
    cfg = compose_cfg("study=double_descent_rf", f"paths.data_dir={smoke_data}", *overrides)
    return cfg


@pytest.mark.parametrize("ratio", [0.5, 2.0])
def test_rf_job_matches_lstsq_on_its_own_training_block(compose_cfg, smoke_data, ratio):
    cfg = rf_cfg(compose_cfg, smoke_data, f"study.width_ratio={ratio}", "seed=1")
    metrics = random_features.measure(cfg)
    ds = load_dataset("sphere_linear", smoke_data)
    n = cfg.study.n_train
    x, y = ds.x_train[n : 2 * n], ds.y_train[n : 2 * n]  # seed 1 trains on block 1
    d = round(ratio * n)
    # Independent features: the same draw, rebuilt with numpy (relu, Gaussian N(0, I/D)).
    from widthlab.models.random_features import draw_features

    alpha = draw_features(x.shape[1], d, "gaussian", 1)
    h, h_test = np.maximum(x @ alpha, 0) / np.sqrt(d), np.maximum(ds.x_test @ alpha, 0) / np.sqrt(d)
    beta = np.linalg.lstsq(h, y, rcond=None)[0]
    ridgeless = metrics["ridge=0"]
    assert metrics["width"] == d and metrics["n_train"] == n
    np.testing.assert_allclose(ridgeless["beta_norm"], np.linalg.norm(beta), rtol=1e-8)
    excess = np.mean((h_test @ beta - ds.extras["f_test"]) ** 2)
    np.testing.assert_allclose(ridgeless["excess_risk"], excess, rtol=1e-8)
    lam = 1e-3
    beta_r = np.linalg.solve(h.T @ h + n * lam * np.eye(d), h.T @ y)
    np.testing.assert_allclose(metrics["ridge=0.001"]["beta_norm"], np.linalg.norm(beta_r),
                               rtol=1e-8)  # fmt: skip
    if d >= n:
        assert ridgeless["kkt_feasibility"] <= 1e-8 and ridgeless["kkt_stationarity"] <= 1e-8
        assert ridgeless["gd_limit_distance"] <= 1e-6
        assert ridgeless["gd_explicit_vs_closed_form"] <= 1e-8
        assert ridgeless["train_mse"] < 1e-16
    else:
        assert "kkt_feasibility" not in ridgeless and ridgeless["train_mse"] > 1e-3


def test_rf_seeds_beyond_the_training_pool_are_a_config_error(compose_cfg, smoke_data):
    cfg = rf_cfg(compose_cfg, smoke_data, "seed=5")
    with pytest.raises(ConfigError, match=r"^study\.n_train=60 is not allowed"):
        random_features.measure(cfg)


def test_rf_digits_job_reports_classification_error(compose_cfg, smoke_data):
    cfg = compose_cfg("study=double_descent_rf_digits", f"paths.data_dir={smoke_data}",
                      "study.width_ratio=3.0")  # fmt: skip
    metrics = random_features.measure(cfg)["ridge=0"]
    assert 0 <= metrics["test_error"] < 0.5  # 10 classes: chance is 0.9
    assert metrics["train_error"] == 0.0  # d = 3n features interpolate the one-hot labels
    assert "theory_excess_risk" not in metrics


def test_ntk_job_distances_match_an_independent_jacobian_ntk(compose_cfg, smoke_data):
    cfg = compose_cfg("study=ntk_convergence", f"paths.data_dir={smoke_data}",
                      "model.width=64", "model.depth=2", "model.activation=erf",
                      "seed=3")  # fmt: skip
    metrics = ntk_convergence.measure(cfg)
    x = torch.as_tensor(load_dataset("digits", smoke_data).x_train[: cfg.study.n_probe])
    from widthlab.empirical import empirical_ntk
    from widthlab.models.mlp import MLP

    net = MLP(x.shape[1], 64, 2, activation="erf", b_std=0.1, seed=3, dtype=torch.float64)
    theta = empirical_ntk(net, x, method="jacobian")
    _, ntk = nngp_and_ntk(x, depth=2, activation="erf", w_std=1.0, b_std=0.1)
    expected = float(torch.linalg.norm(theta - ntk) / torch.linalg.norm(ntk))
    assert metrics["ntk_distance"] == pytest.approx(expected, rel=1e-9)
    assert 0 < metrics["nngp_distance"] < 1 and "mc_nngp_distance" in metrics


def test_ntk_probe_larger_than_the_data_is_a_config_error(compose_cfg, smoke_data):
    cfg = compose_cfg("study=ntk_convergence", f"paths.data_dir={smoke_data}")
    with open_dict(cfg):
        cfg.study.n_probe = 10_000
    with pytest.raises(ConfigError, match=r"study\.n_probe"):
        ntk_convergence.measure(cfg)
