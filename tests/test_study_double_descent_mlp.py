"""double_descent_mlp: the job's counts, a sweep with a forced failure, and the peak rule on
hand-made records (a peak that is there, one within the noise, one at the edge)."""

import json
import pathlib

import numpy as np
import pytest

from widthlab.runtime.jobs import run_job
from widthlab.studies.double_descent_mlp.summary import summarize

SETTINGS = {"peak_band": [0.3333, 3.0], "peak_effect": 0.05}


def test_job_counts_parameters_and_the_threshold(compose_cfg, smoke_data, tmp_path):
    cfg = compose_cfg(
        "study=double_descent_mlp",
        "model.width=400",
        "train.max_steps=1000",
        f"paths.data_dir={smoke_data}",
        f"paths.results_dir={tmp_path}",
    )
    record = run_job(cfg)
    m = record["metrics"]
    assert record["status"] == "ok", record.get("reason")
    assert m["n_parameters"] == 400 * (64 + 1) + 10 * (400 + 1)
    assert m["threshold"] == 300 * 10
    assert m["params_over_threshold"] == pytest.approx(m["n_parameters"] / 3000)
    # Ten times the threshold and ≤ 1000 Adam steps: the noisy training labels are fitted.
    assert m["train_error"] == 0.0 and m["noisy_fit"] == 1.0
    assert 0 < m["test_error"] < 0.5  # well below chance (0.9) on clean test labels


def test_mnist1d_by_config_alone_and_regression_sets_refused(compose_cfg, smoke_data, tmp_path):
    from widthlab.runtime.errors import ConfigError
    from widthlab.runtime.schemas import validate_config
    from widthlab.studies.double_descent_mlp import DoubleDescentMLP

    cfg = compose_cfg(
        "study=double_descent_mlp",
        "data=mnist1d_noisy",
        "model.width=100",
        "train.max_steps=20",
        f"paths.data_dir={smoke_data}",
        f"paths.results_dir={tmp_path}",
    )
    record = run_job(cfg)
    m = record["metrics"]
    assert record["status"] == "ok", record.get("reason")
    # D = 40 inputs, C = 10 classes, n = 200 smoke signals with 13.5% of the labels flipped.
    assert m["n_parameters"] == 100 * (40 + 1) + 10 * (100 + 1)
    assert m["threshold"] == 200 * 10
    assert m["noisy_fit"] is not None  # the flipped labels are there to be fitted
    with pytest.raises(ConfigError, match=r"^data='teacher' is not allowed: .*classification"):
        validate_config(
            compose_cfg("study=double_descent_mlp", "data=teacher"),
            ("data", "model", "train"),
            DoubleDescentMLP(),
        )


def mlp_records(errors: dict[float, list[float]], loss: str = "squared"):
    out = []
    for i, (ratio, per_seed) in enumerate(sorted(errors.items())):
        width = 10 * (i + 1)
        for seed, err in enumerate(per_seed):
            metrics = {
                "test_error": err,
                "train_error": 0.0,
                "params_over_threshold": ratio,
                "threshold": 3000,
                "test_loss": err,
                "train_loss": 1e-5,
            }
            config = {
                "train": {
                    "max_steps": 100,
                    "stop_loss": 1e-4,
                    "loss": loss,
                    "optimizer": "adam",
                    "lr": 1e-3,
                },
                "data": {"label_noise": 0.2, "name": "digits_noisy"},
            }
            out.append(
                {
                    "key": f"w{width}s{seed}" + ("" if loss == "squared" else f"{loss}"),
                    "status": "ok",
                    "metrics": metrics,
                    "config": config,
                    "job": {"model.width": width, "seed": seed},
                }
            )
    return out


def noisy(mean, sd=0.01, seeds=4, seed=0):
    return list(mean + sd * np.random.default_rng(seed).standard_normal(seeds))


def test_a_clear_interior_peak_shows():
    curve = {
        0.1: noisy(0.2),
        0.5: noisy(0.25, seed=1),
        1.0: noisy(0.45, seed=2),
        2.0: noisy(0.3, seed=3),
        10.0: noisy(0.18, seed=4),
    }
    s = summarize({"train": mlp_records(curve)}, SETTINGS).summary
    assert s["interior_peak"] and s["shows_peak"] is True
    assert s["peak"]["params_over_threshold"] == 1.0
    assert s["peak"]["test_error_se"] == pytest.approx(np.std(curve[1.0], ddof=1) / 2)


def test_a_bump_within_the_noise_is_not_a_peak():
    curve = {
        0.1: noisy(0.3, sd=0.05),
        1.0: noisy(0.31, sd=0.05, seed=1),
        10.0: noisy(0.3, sd=0.05, seed=2),
    }
    s = summarize({"train": mlp_records(curve)}, SETTINGS).summary
    assert s["shows_peak"] is False
    # Four seeds with an SE of 0.025 a point: a 0.05 peak would show about a quarter of the
    # time, too rarely to call its absence a "differs".
    assert s["power"] < 0.8 and s["verdict"] == "inconclusive (4 seeds)"
    sharp = {r: noisy(m, sd=0.002, seeds=6, seed=i) for i, (r, m) in enumerate(
        ((0.1, 0.3), (1.0, 0.301), (10.0, 0.3)))}  # fmt: skip
    s = summarize({"train": mlp_records(sharp)}, SETTINGS).summary
    assert s["power"] > 0.99 and s["verdict"] == "differs"


def test_a_curve_falling_through_the_band_has_no_peak_and_says_so_on_the_page():
    """The cross-entropy curve of the laptop profile falls through the band: its highest
    point in the band (0.243) is below the best smaller network (0.301). That is no peak, and
    the page says "differs" where it counts one."""
    from widthlab.runtime.report import Page
    from widthlab.studies.double_descent_mlp.report import section

    falling = {
        0.1: noisy(0.40, sd=0.003, seeds=5),
        0.2: noisy(0.30, sd=0.003, seeds=5, seed=1),
        0.35: noisy(0.243, sd=0.003, seeds=5, seed=2),
        1.0: noisy(0.22, sd=0.003, seeds=5, seed=3),
        10.0: noisy(0.15, sd=0.003, seeds=5, seed=4),
    }
    squared = {0.1: noisy(0.2), 1.0: noisy(0.45, seed=2), 10.0: noisy(0.18, seed=4)}
    records = mlp_records(squared) + mlp_records(falling, "cross_entropy")
    result = summarize({"train": records}, SETTINGS)
    ce = result.summary["other_losses"]["cross_entropy"]
    assert ce["peak"]["params_over_threshold"] == 0.35 and ce["shows_peak"] is False
    assert ce["verdict"] == "differs"
    assert result.metrics["comparisons"] == 2 and result.metrics["agree"] == 1
    page = Page(pathlib.Path("results"), pathlib.Path("reports/report.md"), "laptop")
    text = "\n".join(section({**result.summary, "study": "double_descent_mlp"}, page))
    assert "The same rule, within this curve: no peak, **differs**" in text


def test_a_monotone_curve_reports_no_interior_peak():
    curve = {
        0.5: noisy(0.5),
        1.0: noisy(0.4, seed=1),
        2.0: noisy(0.3, seed=2),
        4.0: noisy(0.2, seed=3),
    }
    s = summarize({"train": mlp_records(curve)}, SETTINGS).summary
    assert s["interior_peak"] is False and s["shows_peak"] is False


def test_both_losses_get_their_own_curve_verdict_and_one_figure():
    """The cross-entropy sweep's records beside the squared loss's: the squared-loss summary
    is what it was alone, the cross-entropy curve is judged by the same rule beside it, and
    one figure draws both."""
    from widthlab.runtime.study import Results
    from widthlab.studies.double_descent_mlp import DoubleDescentMLP

    peaked = {0.1: noisy(0.2), 1.0: noisy(0.45, seed=2), 10.0: noisy(0.18, seed=4)}
    flat = {0.1: noisy(0.2, seed=5), 1.0: noisy(0.2, seed=6), 10.0: noisy(0.19, seed=7)}
    squared = mlp_records(peaked)
    alone = summarize({"train": squared}, SETTINGS)
    both = summarize({"train": squared + mlp_records(flat, "cross_entropy")}, SETTINGS)
    ce = both.summary.pop("other_losses")["cross_entropy"]
    assert both.summary == alone.summary
    assert alone.summary["shows_peak"] is True and ce["shows_peak"] is False
    assert ce["loss"] == "cross_entropy" and ce["largest_width"]["test_error"] == pytest.approx(
        np.mean(flat[10.0])
    )
    assert both.metrics["comparisons"] == 2 and both.metrics["agree"] == 1
    assert {r["loss"] for r in both.tables["curves.csv"]} == {"squared", "cross_entropy"}
    both = summarize({"train": squared + mlp_records(flat, "cross_entropy")}, SETTINGS)
    figures = DoubleDescentMLP().figures(Results(both.summary, both.tables))
    assert set(figures) == {"mlp_double_descent", "mlp_losses"}
    gids = {line.get_gid() for ax in figures["mlp_losses"].figure.axes for line in ax.lines}
    assert {"test_error:squared", "test_error:cross_entropy"} <= gids


@pytest.mark.slow
def test_forced_divergence_fails_one_cell_and_the_sweep_goes_on(run_pipeline, smoke_data, tmp_path):
    from mlflow import MlflowClient

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    common = [
        "profile=smoke",
        f"paths.data_dir={smoke_data}",
        f"paths.results_dir={tmp_path}/results",
        f"tracking.uri={uri}",
    ]
    proc = run_pipeline(
        "run",
        "-m",
        "study=double_descent_mlp",
        "train=gd",
        "model.activation=erf",
        "model.width=40",
        "seed=0",
        "train.max_steps=60",
        "train.log_every_n_epochs=20",
        "study.job_keys=[model.width,seed,train.lr]",
        "train.lr=0.05,0.1,1e6",
        *common,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    folder = tmp_path / "results/double_descent_mlp/records/train"
    records = [json.loads(p.read_text()) for p in folder.glob("*.json")]
    status = {r["job"]["train.lr"]: r["status"] for r in records}
    assert status == {0.05: "ok", 0.1: "ok", 1e6: "failed"}
    failed = next(r for r in records if r["status"] == "failed")
    assert "TrainingDiverged" in failed["reason"] and "lr=1e+06" in failed["reason"]

    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("double_descent_mlp")
    runs = client.search_runs([exp.experiment_id])
    (sweep,) = [r for r in runs if r.data.tags.get("widthlab.role") == "sweep"]
    jobs = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == sweep.info.run_id]
    assert sorted(r.info.status for r in jobs) == ["FAILED", "FINISHED", "FINISHED"]
    for run in jobs:
        if run.info.status == "FINISHED":
            history = client.get_metric_history(run.info.run_id, "epoch/test_error")
            assert [h.step for h in history] == [0, 20, 40, 60]  # the curve
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
