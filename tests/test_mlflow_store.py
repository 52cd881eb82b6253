"""What a smoke study leaves in a fresh SQLite store: MLflow's own source and dataset fields
on every child, resolved params and the headline results on every parent, no param a run
did not use, and no empty parent from an all-cached rerun."""

import hashlib
import json

import pytest
from mlflow import MlflowClient

pytestmark = pytest.mark.slow


def test_the_store_shows_the_study(run_pipeline, tmp_path, smoke_data):
    uri = f"sqlite:///{tmp_path}/fresh.db"
    common = ["profile=smoke", f"tracking.uri={uri}", f"paths.data_dir={smoke_data}"]
    proc = run_pipeline("stage", "study=double_descent_rf", *common)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((tmp_path / "results/double_descent_rf/summary.json").read_text())
    metrics = summary["metrics"]

    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("double_descent_rf")
    assert "interpolation threshold" in exp.tags["mlflow.note.content"]
    runs = client.search_runs([exp.experiment_id])
    parents = [r for r in runs if r.data.tags.get("widthlab.role") == "sweep"]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert sorted(p.info.run_name for p in parents) == [
        "double_descent_rf · smoke",
        "double_descent_rf/digits · smoke",
    ]
    assert len(children) == 2 + 1  # sphere_linear: seeds 0, 1; digits: seed 0

    digests = {
        n: hashlib.sha256((smoke_data / f"{n}.npz").read_bytes()).hexdigest()
        for n in ("sphere_linear", "digits")
    }
    for child in children:
        tags = child.data.tags
        assert tags["mlflow.source.name"].endswith("pipelines/run.py")
        assert tags["mlflow.source.git.commit"]
        (dataset,) = client.get_run(child.info.run_id).inputs.dataset_inputs
        name = dataset.dataset.name
        assert dataset.dataset.digest == digests[name][:36]  # the file's sha256, as stored
        assert child.info.run_name in (f"{name} s=0", f"{name} s=1")
        # Only what the job reads: no training settings for random features.
        assert not [k for k in child.data.params if k.startswith(("train.", "hydra."))]
        assert {"data.name", "model.activation", "study.width_ratios", "seed"} <= set(
            child.data.params
        )
    for parent in parents:
        params = parent.data.params
        assert params["seed"].startswith("[") and "${" not in json.dumps(params)
        assert not [k for k in params if k.startswith(("model.", "train.", "data."))]
        assert parent.data.metrics["jobs"] == metrics["jobs"]
        assert parent.data.metrics["comparisons"] == metrics["comparisons"]
        figures = {a.path for a in client.list_artifacts(parent.info.run_id, "figures")}
        assert "figures/rf_double_descent_sphere_linear.png" in figures
    assert not [r for r in runs if r.info.status != "FINISHED"]

    again = run_pipeline("stage", "study=double_descent_rf", *common)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "every job is cached: reusing MLflow parent run" in again.stdout + again.stderr
    after = client.search_runs([exp.experiment_id])
    assert len(after) == len(runs)  # no empty parent, no duplicate child
