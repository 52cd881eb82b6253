"""A study added from outside the package — one folder, tests/studies/toy_study, its module
and its configs (`conf/`, added to Hydra's search path) — runs end to end through the generic
entry points: sweep, records, MLflow runs, aggregate, figures, plots and its report section,
with no file of src/ or pipelines/ edited."""

import json
import subprocess

import pytest
from conftest import REPO, SEARCH_PATH
from mlflow import MlflowClient

pytestmark = pytest.mark.slow


def test_a_study_from_outside_the_package_runs_end_to_end(run_pipeline, tmp_path):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    proc = run_pipeline("stage", "study=toy", SEARCH_PATH, f"tracking.uri={uri}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    folder = tmp_path / "results" / "toy"
    assert len(list((folder / "records" / "main").glob("*.json"))) == 4 * 3
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["n_jobs"] == 12 and summary["n_failed"] == 0
    assert summary["slope"]["slope"] == pytest.approx(-0.5, abs=0.05)
    assert summary["slope"]["verdict"] == "agrees"
    metrics = summary["metrics"]
    assert metrics == {**metrics, "jobs": 12, "failed_jobs": 0, "agree": 1}
    # DVC's metric: what differs, what failed and the study's headline number
    shown = json.loads((folder / "metrics.json").read_text())
    assert shown == {"differs": 0, "failed_jobs": 0, "toy_slope": metrics["toy_slope"]}
    assert (folder / "figures" / "toy.png").is_file() and (folder / "svg" / "toy.svg").is_file()
    assert (folder / "tables" / "curves.csv").is_file()
    assert "distance vs width" in (folder / "plots.csv").read_text()

    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("toy")
    assert exp.tags["mlflow.note.content"] == "Does the toy distance shrink like width^slope?"
    runs = client.search_runs([exp.experiment_id])
    (parent,) = [r for r in runs if r.data.tags.get("widthlab.role") == "sweep"]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert len(children) == 12 and parent.data.metrics["toy_slope"] == metrics["toy_slope"]
    assert "figures/toy.png" in {
        a.path for a in client.list_artifacts(parent.info.run_id, "figures")
    }

    report = run_pipeline("report", SEARCH_PATH, "tracking=off")
    assert report.returncode == 0, report.stderr[-3000:]
    page = (tmp_path / "reports" / "report.md").read_text()
    assert "## A toy study from outside the package (`toy`)" in page
    assert "Toy slope −0.499 [−0.512, −0.487]: agrees" in page
    assert "*Toy distance against width, mean over seeds.*" in page

    edited = subprocess.run(
        ["git", "status", "--porcelain", "--", "src", "pipelines"],
        cwd=REPO,
        capture_output=True,
        text=True,
    ).stdout
    assert "toy" not in edited
