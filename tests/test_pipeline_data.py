"""The data entry point end to end: files, MLflow parent/child runs, fail-fast errors."""

import json

import pytest
from mlflow import MlflowClient


def test_multirun_logs_one_parent_and_a_child_per_job(run_pipeline, tmp_path):
    uri = f"sqlite:///{tmp_path}/store.db"
    proc = run_pipeline(
        "data",
        "-m",
        "data=sphere_linear,teacher,digits",
        "profile=smoke",
        f"tracking.uri={uri}",
        "paths.data_dir=out",
    )
    assert proc.returncode == 0, proc.stderr
    for name in ("sphere_linear", "teacher", "digits"):
        meta = json.loads((tmp_path / "out" / f"{name}.json").read_text())
        assert meta["name"] == name
    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name("data")
    runs = client.search_runs([exp.experiment_id])
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(parents) == 1 and len(children) == 3
    parent_id = parents[0].info.run_id
    assert {c.data.tags["mlflow.parentRunId"] for c in children} == {parent_id}
    by_name = {c.info.run_name: c for c in children}
    assert set(by_name) == {"sphere_linear", "teacher", "digits"}
    sphere = by_name["sphere_linear"]
    assert sphere.info.status == "FINISHED"
    assert sphere.data.params["data.dim"] == "20"  # smoke profile, resolved and flattened
    assert sphere.data.params["data.noise"] == "0.5"
    assert sphere.data.metrics["n_train"] == 120  # the smoke pool: 2 seeds × n = 60
    assert sphere.data.tags["widthlab.stage"] == "data"
    assert sphere.data.tags["widthlab.study"] == "data"
    assert sphere.data.tags["mlflow.source.git.commit"]  # MLflow's own source fields
    assert sphere.data.tags["mlflow.source.name"].endswith("data.py")
    assert parents[0].info.status == "FINISHED"
    assert parents[0].data.params["data"] == "[sphere_linear, teacher, digits]"


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("data.n_train=-5", "data.n_train=-5 is not allowed: expected an integer ≥ 1"),
        ("data.noise=-1.0", "data.noise=-1.0 is not allowed: expected a finite number ≥ 0"),
        ("data.dim=abc", "data.dim='abc' is not allowed: expected an integer ≥ 2"),
    ],
)
def test_bad_value_fails_fast_with_one_line_and_writes_nothing(
    run_pipeline, tmp_path, override, expected
):
    proc = run_pipeline(
        "data",
        "data=sphere_linear",
        override,
        "profile=smoke",
        f"tracking.uri=sqlite:///{tmp_path}/store.db",
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1] == f"error: {expected}"
    assert not (tmp_path / "data").exists()
    assert not (tmp_path / "store.db").exists()  # no tracking store, no run


def test_bad_label_noise_and_unknown_data_set(run_pipeline, tmp_path):
    proc = run_pipeline("data", "data=digits", "data.label_noise=1.5", "tracking=off")
    assert proc.returncode == 2
    assert "data.label_noise=1.5 is not allowed: expected a number in [0, 1)" in proc.stderr
    proc = run_pipeline("data", "data=cifar", "tracking=off")
    assert proc.returncode != 0
    assert "data" in proc.stderr and "sphere_linear" in proc.stderr  # Hydra lists the options
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "data").exists()
