"""Study variations as queued DVC experiments, logging into one absolute tracking store."""

import json
import os
import subprocess
import time

import pytest
from mlflow import MlflowClient
from test_e2e_dvc import copy_repository, dvc

pytestmark = pytest.mark.slow


def test_queued_experiments_run_a_study_variation_each(tmp_path, monkeypatch):
    repo = tmp_path / "repo"
    copy_repository(repo)
    config = repo / "conf" / "config.yaml"
    config.write_text(config.read_text().replace("profile: laptop", "profile: smoke"))
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git, "commit", "-qam", "smoke"], cwd=repo, check=True)
    # Queued experiments run in temporary copies of the repository: a relative SQLite URI
    # would give each its own throwaway store.
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)

    # Two step budgets for the MLP double-descent study (the smoke profile holds its sizes).
    dvc(repo, "exp", "run", "--queue", "double_descent_mlp",
        "-S", "conf/profile/smoke.yaml:study.double_descent_mlp.max_steps=60,150")  # fmt: skip
    dvc(repo, "queue", "start", "-j", "2")
    deadline = time.time() + 600
    while time.time() < deadline:
        status = dvc(repo, "queue", "status").stdout
        if "Queued" not in status and "Running" not in status:
            break
        time.sleep(2)
    dvc(repo, "queue", "stop", "--kill")
    assert "Failed" not in status, status

    shown = json.loads(dvc(repo, "exp", "show", "--json").stdout)
    experiments = [exp for commit in shown for exp in (commit.get("experiments") or [])]
    found = {}
    for exp in experiments:
        for rev in exp.get("revs", []):
            data = rev.get("data", {})
            profile = data["params"]["conf/profile/smoke.yaml"]["data"]
            steps = profile["study"]["double_descent_mlp"]["max_steps"]
            summary = data["metrics"]["results/double_descent_mlp/summary.json"]["data"]
            found[steps] = summary
    assert set(found) == {60, 150}
    for steps, summary in found.items():
        assert summary["n_jobs"] == 5 * 2 and summary["n_failed"] == 0
        assert summary["max_steps"] == steps
    # Both variations logged their sweeps into the one absolute store.
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("double_descent_mlp")
    runs = client.search_runs([exp.experiment_id], max_results=1000)
    sweeps = [r for r in runs if r.data.tags.get("widthlab.stage") == "sweep"]
    assert len(sweeps) == 2
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId")]
    assert len(children) == 2 * 5 * 2
    assert os.path.exists(tmp_path / "mlflow.db")
