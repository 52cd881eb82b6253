"""double_descent_rf: the job against independent least-squares solves, and its verdicts on
hand-made records (a curve that matches the theory within noise, a shifted one, peaks)."""

import numpy as np
import pytest

from widthlab.models.random_features import draw_features
from widthlab.runtime.datafiles import load_dataset
from widthlab.runtime.errors import ConfigError
from widthlab.runtime.jobs import run_job
from widthlab.studies.double_descent_rf.summary import summarize

SETTINGS = {"peak_k": 2.0, "theory_excluded_band": [0.8, 1.25], "kkt_tolerance": 1e-8}


def test_job_matches_lstsq_on_its_own_training_block(compose_cfg, smoke_data, tmp_path):
    cfg = compose_cfg(
        "study=double_descent_rf",
        "seed=1",
        f"paths.data_dir={smoke_data}",
        f"paths.results_dir={tmp_path}",
        "study.width_ratios=[0.5,2.0]",
    )
    record = run_job(cfg)
    assert record["status"] == "ok", record.get("reason")
    metrics = record["metrics"]
    ds = load_dataset("sphere_linear", smoke_data)
    n = cfg.study.n_train
    x, y = ds.x_train[n : 2 * n], ds.y_train[n : 2 * n]  # seed 1 trains on block 1
    for ratio in (0.5, 2.0):
        d = round(ratio * n)
        # Independent features: the same draw, rebuilt with numpy (relu, Gaussian N(0, I/D)).
        alpha = draw_features(x.shape[1], d, "gaussian", 1)
        h = np.maximum(x @ alpha, 0) / np.sqrt(d)
        h_test = np.maximum(ds.x_test @ alpha, 0) / np.sqrt(d)
        beta = np.linalg.lstsq(h, y, rcond=None)[0]
        ridgeless = metrics[f"width={d},ridge=0"]
        np.testing.assert_allclose(ridgeless["beta_norm"], np.linalg.norm(beta), rtol=1e-8)
        excess = np.mean((h_test @ beta - ds.extras["f_test"]) ** 2)
        np.testing.assert_allclose(ridgeless["excess_risk"], excess, rtol=1e-8)
        beta_r = np.linalg.solve(h.T @ h + n * 1e-3 * np.eye(d), h.T @ y)
        np.testing.assert_allclose(
            metrics[f"width={d},ridge=0.001"]["beta_norm"], np.linalg.norm(beta_r), rtol=1e-8
        )
        if d >= n:
            assert ridgeless["kkt_feasibility"] <= 1e-8 and ridgeless["kkt_stationarity"] <= 1e-8
            assert ridgeless["gd_limit_distance"] <= 1e-6
            assert ridgeless["gd_explicit_vs_closed_form"] <= 1e-8
            assert ridgeless["train_mse"] < 1e-16
        else:
            assert "kkt_feasibility" not in ridgeless and ridgeless["train_mse"] > 1e-3


def test_seeds_beyond_the_training_pool_are_a_config_error(compose_cfg, smoke_data):
    cfg = compose_cfg("study=double_descent_rf", "seed=5", f"paths.data_dir={smoke_data}")
    with pytest.raises(ConfigError, match=r"^study\.n_train=60 is not allowed"):
        run_job(cfg)


def test_digits_job_reports_classification_error(compose_cfg, smoke_data, tmp_path):
    cfg = compose_cfg(
        "study=double_descent_rf/digits",
        f"paths.data_dir={smoke_data}",
        f"paths.results_dir={tmp_path}",
        "study.width_ratios=[3.0]",
    )
    metrics = run_job(cfg)["metrics"]
    entry = metrics["width=900,ridge=0"]
    assert 0 <= entry["test_error"] < 0.5  # 10 classes: chance is 0.9
    assert entry["train_error"] == 0.0  # d = 3n features interpolate the one-hot labels
    assert "theory_excess_risk" not in entry


def rf_records(curve, theory, se=0.05, seeds=5, ridge=0.0):
    """Records whose mean excess risk at each d/n is curve(r), with seed noise of the given
    standard error of the mean, and whose theory is theory(r)."""
    rng = np.random.default_rng(3)
    n = 100
    ratios = [0.2, 0.4, 0.6, 0.9, 1.0, 1.1, 2.0, 4.0, 8.0]
    out = []
    for seed in range(seeds):
        metrics = {"n_train": n}
        for r in ratios:
            noise = se * np.sqrt(seeds) * rng.standard_normal()
            metrics[f"width={round(r * n)},ridge={ridge:g}"] = {
                "excess_risk": curve(r) + noise,
                "theory_excess_risk": theory(r),
                "kernel_limit_excess_risk": 0.2,
                "test_mse": curve(r) + 0.25,
            }
        out.append(
            {
                "key": f"s{seed}",
                "status": "ok",
                "metrics": metrics,
                "job": {"data.name": "sphere_linear", "seed": seed},
            }
        )
    return out


def peaked(r):
    return 0.3 + 1.0 / (abs(r - 1) + 0.1)


def test_a_curve_that_matches_theory_within_noise_has_no_point_beyond_3_se():
    s = summarize({"rf": rf_records(peaked, peaked)}, SETTINGS).summary["curves"]
    theory = s["sphere_linear_ridge0"]["theory"]
    assert theory["beyond_3se"] == 0 and theory["verdict"] == "agrees"
    assert all(abs(p["z"]) <= 3 for p in theory["by_point"])
    assert theory["points"] == 6  # 0.9, 1.0 and 1.1 lie in the excluded band


def test_a_shifted_curve_is_flagged():
    s = summarize({"rf": rf_records(lambda r: peaked(r) + 0.5, peaked)}, SETTINGS).summary
    theory = s["curves"]["sphere_linear_ridge0"]["theory"]
    assert theory["beyond_3se"] == theory["points"] and theory["verdict"] == "differs"
    assert theory["rms_z"] > 3


def test_the_peak_at_the_threshold_is_interior_and_shown():
    entry = summarize({"rf": rf_records(peaked, peaked)}, SETTINGS).summary["curves"][
        "sphere_linear_ridge0"
    ]
    assert entry["interior_peak"] and entry["shows_peak"] is True
    assert entry["peak_d_over_n"] == 1.0


def test_a_monotone_curve_reports_no_interior_peak():
    def falling(r):
        return 2.0 / r

    entry = summarize({"rf": rf_records(falling, falling)}, SETTINGS).summary["curves"][
        "sphere_linear_ridge0"
    ]
    assert entry["interior_peak"] is False and entry["peak_d_over_n"] is None
    assert entry["maximum_at_edge_d_over_n"] == 0.2
