"""What a reviewer sees of a study in MLflow: curves MLflow can draw against width, the parent
each aggregate belongs to, the review view, dirty trees, and no empty experiment."""

import json
import shutil

import pytest
from mlflow import MlflowClient

from widthlab.runtime.aggregate import curve_points
from widthlab.runtime.parents import dirty_tags, experiment_url, read_view, review_view
from widthlab.runtime.study import PlotSpec
from widthlab.runtime.tracking import metric_points


def test_conditions_solved_at_a_width_become_points_at_that_step():
    points = metric_points(
        {
            "width=60,ridge=0": {"test_mse": 1.5, "beta_norm": 2.0},
            "width=120,ridge=0": {"test_mse": 0.5},
            "width=60": {"separable_fraction": 0.25},
            "log2_lr=3": {"diverged": 1},
            "test_error": 0.3,
            "curve": [1, 2],  # a list stays in the record only
        }
    )
    assert sorted(points) == sorted(
        [
            ("ridge_0/test_mse", 1.5, 60),
            ("ridge_0/beta_norm", 2.0, 60),
            ("ridge_0/test_mse", 0.5, 120),
            ("separable_fraction", 0.25, 60),
            ("log2_lr_3/diverged", 1.0, 0),
            ("test_error", 0.3, 0),
        ]
    )


def test_the_report_curves_become_histories_against_width():
    study = type(
        "S",
        (),
        {
            "plots": (
                PlotSpec("p", "curves.csv", "params_over_threshold", ("test_error",), ("loss",)),
                PlotSpec("q", "ratios.csv", "d_over_n", ("excess_risk",)),
            )
        },
    )()
    tables = {
        "curves.csv": [
            {"loss": "squared", "width": 13, "params_over_threshold": 0.1, "test_error_mean": 0.4},
            {"loss": "squared", "width": 27, "params_over_threshold": 0.2, "test_error_mean": 0.5},
        ],
        "ratios.csv": [{"d_over_n": 0.85, "excess_risk_mean": 2.0}],
    }
    assert curve_points(study, tables) == [
        ("curve/test_error/loss_squared", 0.4, 13),
        ("curve/test_error/loss_squared", 0.5, 27),
        ("curve/excess_risk vs 1000 d_over_n", 2.0, 850),
    ]


def test_the_review_view_is_the_uis_own_saved_view_state():
    tag = review_view("mlp: review", ["model.width", "seed"], ["test_error"], ["curve/test_error"])
    view = read_view(tag)
    assert view["name"] == "mlp: review"
    state = view["state"]
    assert state["selectedColumns"] == [
        "params.`model.width`",
        "params.`seed`",
        "metrics.`test_error`",
    ]
    (chart,) = state["compareRunCharts"]
    assert chart["type"] == "LINE" and chart["metricKey"] == "curve/test_error"
    assert [s["name"] for s in state["compareRunSections"]] == ["against width"]
    url = experiment_url("7")
    assert "#/experiments/7/runs?workflowType=machine_learning" in url
    assert url.endswith("viewStateShareKey=widthlab")


def test_a_dirty_tree_is_on_the_run():
    assert dirty_tags("abc123")["widthlab.git_dirty"] == "false"
    tags = dirty_tags("abc123+dirty")
    assert tags["widthlab.git_dirty"] == "true"
    assert "uncommitted changes" in tags["mlflow.note.content"]


@pytest.mark.slow
def test_the_aggregate_logs_onto_the_parent_of_the_sweep_it_summarized(
    run_pipeline, tmp_path, smoke_data
):
    """Two sweeps of one study config (the baseline, then an experiment with other draws),
    then the baseline's records back (as `dvc exp apply` puts them): the aggregate's numbers
    go to the baseline's parent, not to the newest."""
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    sweep = ["-m", "study=max_margin/separability", "profile=smoke", f"tracking.uri={uri}"]
    common = [f"paths.data_dir={smoke_data}", f"tracking.uri={uri}", "profile=smoke"]
    assert run_pipeline("run", *sweep, f"paths.data_dir={smoke_data}").returncode == 0
    records = tmp_path / "results" / "max_margin" / "records"
    shutil.copytree(records, tmp_path / "baseline_records")
    other = run_pipeline(
        "run", *sweep, f"paths.data_dir={smoke_data}", "study.separability.draws=30"
    )
    assert other.returncode == 0, other.stderr[-2000:]
    shutil.rmtree(records)
    shutil.copytree(tmp_path / "baseline_records", records)
    agg = run_pipeline("aggregate", "study=max_margin", *common)
    assert agg.returncode == 0, agg.stderr[-2000:]

    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("max_margin")
    parents = client.search_runs(
        [exp.experiment_id], "tags.`widthlab.role` = 'sweep'", order_by=["start_time ASC"]
    )
    baseline, newest = parents
    assert baseline.data.params["study.separability.draws"] == "40"
    assert newest.data.params["study.separability.draws"] == "30"
    summary = json.loads((tmp_path / "results" / "max_margin" / "summary.json").read_text())
    logged = client.get_run(baseline.info.run_id).data.metrics
    assert logged["cover_max_abs_z"] == summary["metrics"]["cover_max_abs_z"]
    assert "cover_max_abs_z" not in client.get_run(newest.info.run_id).data.metrics
    # The curve the report draws is a history MLflow charts draw against width.
    history = client.get_metric_history(baseline.info.run_id, "curve/separable_fraction")
    assert history and all(p.step > 0 for p in history)
    # The children: the separable fraction of each width at that width's step.
    child = client.search_runs([exp.experiment_id], "tags.`widthlab.key` = 'seed=0'")[0]
    steps = [p.step for p in client.get_metric_history(child.info.run_id, "separable_fraction")]
    assert len(steps) == 11 and steps == sorted(steps) and steps[0] > 0
    # The review view: the job's key and headline on the columns, the parent expanded.
    view = read_view(exp.tags["mlflow.sharedViewState.widthlab"])["state"]
    assert "params.`seed`" in view["selectedColumns"]
    assert "curve/separable_fraction" in {c.get("metricKey") for c in view["compareRunCharts"]}
    # Only the study's experiment (and MLflow's Default, retired while empty).
    names = {e.name for e in client.search_experiments()}
    assert names == {"max_margin"}


@pytest.mark.slow
def test_runs_made_from_a_dirty_tree_say_so(run_pipeline, tmp_path, smoke_data):
    import subprocess

    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t"]
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "x.py").write_text("X = 1\n")
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "x"]):
        subprocess.run([*git, *args], cwd=tmp_path, check=True)
    (tmp_path / "src" / "x.py").write_text("X = 2\n")  # an uncommitted change to the source
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    sweep = ["-m", "study=max_margin/separability", "profile=smoke", f"tracking.uri={uri}"]
    assert run_pipeline("run", *sweep, f"paths.data_dir={smoke_data}").returncode == 0
    client = MlflowClient(uri)
    runs = client.search_runs([client.get_experiment_by_name("max_margin").experiment_id])
    assert len(runs) == 3  # the parent and two jobs
    for run in runs:
        assert run.data.tags["widthlab.git_dirty"] == "true"
        assert run.data.tags["widthlab.git_commit"].endswith("+dirty")
        assert "uncommitted changes" in run.data.tags["mlflow.note.content"]
    record = json.loads(
        (tmp_path / "results/max_margin/records/separability/seed=0.json").read_text()
    )
    assert record["provenance"]["git_commit"] == runs[0].data.tags["widthlab.git_commit"]
