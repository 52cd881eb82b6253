"""The trained-network studies: lazy_training's closed form, both jobs at smoke size, and a
sweep with a forced divergence (one failed cell, a FAILED MLflow run, listed in the summary)."""

import json

import pytest
import torch
from conftest import load_pipeline

from widthlab.jobs import run_study_job

lazy = load_pipeline("lazy_training")
dd_mlp = load_pipeline("double_descent_mlp")


def test_linear_prediction_equals_gradient_descent_on_the_linear_model():
    g = torch.Generator().manual_seed(0)
    n, m, steps = 12, 5, 40
    # rank 30 ≥ n (full rank), and rank 6 < n (zero eigenvalues: g_T(0) = ηT/n)
    cases = [(rank, fraction) for rank in (30, 6) for fraction in (0.3, 1.0, 1.9)]
    for rank, fraction in cases:  # 1.9: oscillating modes (ηλ/n > 1)
        a = torch.randn(n + m, rank, generator=g, dtype=torch.float64)
        kernel = a @ a.T  # PSD: [train + eval] × [train + eval]
        k_train, k_eval = kernel[:n, :n], kernel[n:, :n]
        residual = torch.randn(n, 2, generator=g, dtype=torch.float64)
        lam_max = float(torch.linalg.eigvalsh(k_train)[-1])
        lr = fraction * n / lam_max
        # Explicit GD on f_lin: the training residual r_t = (I − ηΘ/n)^t r_0, and every
        # output moves by (η/n) Θ(x, X) r_t per step.
        r, moved = residual.clone(), torch.zeros(m, 2, dtype=torch.float64)
        moved_train = torch.zeros(n, 2, dtype=torch.float64)
        for _ in range(steps):
            moved += lr / n * k_eval @ r
            moved_train += lr / n * k_train @ r
            r = r - lr / n * k_train @ r
        closed = lazy.linear_prediction(k_train, k_eval, residual, lr, steps)
        torch.testing.assert_close(closed, moved, rtol=1e-9, atol=1e-9)
        closed_train = lazy.linear_prediction(k_train, k_train, residual, lr, steps)
        torch.testing.assert_close(closed_train, moved_train, rtol=1e-9, atol=1e-9)
        torch.testing.assert_close(residual - closed_train, r, rtol=1e-8, atol=1e-9)


def test_lazy_training_moves_less_at_larger_width(compose_cfg, smoke_data, tmp_path):
    out = {}
    for width in (32, 1024):
        paths = [f"paths.data_dir={smoke_data}", f"paths.results_dir={tmp_path}"]
        cfg = compose_cfg("study=lazy_training", f"model.width={width}", "model.depth=1", *paths)
        record = run_study_job(cfg, lazy.measure)
        assert record["status"] == "ok", record.get("reason")
        out[width] = record["metrics"]
    narrow, wide = out[32], out[1024]
    assert narrow["steps"] == wide["steps"] == 50
    assert 0.5 < wide["lr_stability"] < 2  # η·λ_max(Θ̂₀)/n near lr_fraction = 1
    # 32× the width: every change shrinks (width^-1/2 predicts 5.7×; allow seed noise)
    for metric in ("ntk_change", "linearization_gap", "limit_gap", "param_change",
                   "weight_change_layer_1", "weight_change_layer_2"):  # fmt: skip
        assert wide[metric] < narrow[metric] / 2, metric
    assert wide["linearization_gap"] < 0.05


def test_double_descent_mlp_job_counts_parameters_and_the_threshold(compose_cfg, smoke_data,
                                                                    tmp_path):  # fmt: skip
    cfg = compose_cfg("study=double_descent_mlp", "model.width=400", "train.max_steps=1000",
                      f"paths.data_dir={smoke_data}", f"paths.results_dir={tmp_path}")  # fmt: skip
    record = run_study_job(cfg, dd_mlp.measure)
    m = record["metrics"]
    assert record["status"] == "ok", record.get("reason")
    assert m["n_parameters"] == 400 * (64 + 1) + 10 * (400 + 1)
    assert m["threshold"] == 300 * 10
    assert m["params_over_threshold"] == pytest.approx(m["n_parameters"] / 3000)
    # Ten times the threshold and ≤ 1000 Adam steps: the noisy training labels are fitted.
    assert m["train_error"] == 0.0 and m["noisy_fit"] == 1.0
    assert 0 < m["test_error"] < 0.5  # well below chance (0.9) on clean test labels


@pytest.mark.slow
def test_forced_divergence_fails_one_cell_and_the_sweep_goes_on(run_pipeline, smoke_data,
                                                                tmp_path):  # fmt: skip
    from mlflow import MlflowClient

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    common = ["profile=smoke", f"paths.data_dir={smoke_data}",
              f"paths.results_dir={tmp_path}/results", f"tracking.uri={uri}"]  # fmt: skip
    proc = run_pipeline(
        "double_descent_mlp", "-m", "study=double_descent_mlp", "train=gd",
        "model.activation=erf", "model.width=40", "seed=0", "train.max_steps=60",
        "train.log_every_n_epochs=20", "study.job_keys=[model.width,seed,train.lr]",
        "train.lr=0.05,0.1,1e6", *common,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    folder = tmp_path / "results/double_descent_mlp/records"
    records = [json.loads(p.read_text()) for p in folder.glob("*.json")]
    status = {r["job"]["train.lr"]: r["status"] for r in records}
    assert status == {0.05: "ok", 0.1: "ok", 1e6: "failed"}
    failed = next(r for r in records if r["status"] == "failed")
    assert "TrainingDiverged" in failed["reason"] and "lr=1e+06" in failed["reason"]

    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("double_descent_mlp")
    runs = client.search_runs([exp.experiment_id])
    (sweep,) = [r for r in runs if r.data.tags.get("widthlab.stage") == "sweep"]
    jobs = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == sweep.info.run_id]
    assert sorted(r.info.status for r in jobs) == ["FAILED", "FINISHED", "FINISHED"]
    for run in jobs:
        if run.info.status == "FINISHED":
            history = client.get_metric_history(run.info.run_id, "epoch/test_error")
            assert [h.step for h in history] == [1, 21, 41, 60]  # per-epoch curve
            assert "test_error" in run.data.metrics  # and the final metrics
        else:
            assert "TrainingDiverged" in run.data.tags["widthlab.failure"]

    proc = run_pipeline("aggregate", "study=double_descent_mlp", *common)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((tmp_path / "results/double_descent_mlp/summary.json").read_text())
    assert summary["n_jobs"] == 3 and summary["n_failed"] == 1
    assert summary["failed"][0]["key"] == failed["key"]
    assert "TrainingDiverged" in summary["failed"][0]["reason"]
    assert (tmp_path / "results/double_descent_mlp/figures/mlp_double_descent.png").exists()


def test_training_configs_are_checked_before_any_work(compose_cfg):
    from widthlab.schemas import validate_config
    from widthlab.validation import ConfigError

    bad = {
        "train.optimizer=lbfgs": "train.optimizer='lbfgs' is not allowed",
        "train.loss=hinge": "train.loss='hinge' is not allowed",
        "train.lr=0": "train.lr=0 is not allowed",
        "train.batch_size=0": "train.batch_size=0 is not allowed",
        "train.dtype=float16": "train.dtype='float16' is not allowed",
        "data.label_noise=1.0": "data.label_noise=1.0 is not allowed",
    }
    for override, message in bad.items():
        cfg = compose_cfg("study=double_descent_mlp", override)
        with pytest.raises(ConfigError) as err:
            validate_config(cfg, "double_descent_mlp")
        assert str(err.value).startswith(message), (override, str(err.value))


def test_lazy_training_refuses_settings_its_closed_form_does_not_cover(compose_cfg):
    from widthlab.schemas import validate_config
    from widthlab.validation import ConfigError

    for override in ("train=adam", "model.parameterization=standard", "train.momentum=0.9",
                     "train.batch_size=16", "train.loss=cross_entropy"):  # fmt: skip
        cfg = compose_cfg("study=lazy_training", override)
        key = override.split("=")[0].replace("train", "train.optimizer", override == "train=adam")
        with pytest.raises(ConfigError, match=rf"^{key}=.* is not allowed: expected .* in this"):
            validate_config(cfg, "lazy_training")
    validate_config(compose_cfg("study=lazy_training"), "lazy_training")
