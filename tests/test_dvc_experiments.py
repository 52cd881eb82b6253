"""Study variations as queued DVC experiments, logging into one absolute tracking store."""

import json
import os
import subprocess
import sys
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
    dvc(
        repo,
        "exp",
        "run",
        "--queue",
        "study@double_descent_mlp",
        "-S",
        "conf/profile/smoke.yaml:study.double_descent_mlp.max_steps=60,150",
    )
    # The queue's workers outlive `queue start`: they must not hold its output pipes open.
    subprocess.run(
        [sys.executable, "-m", "dvc", "queue", "start", "-j", "2"],
        cwd=repo,
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
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
            # The resolved settings DVC tracks show the value the run used.
            params = data["params"]["results/params/studies/double_descent_mlp.yaml"]["data"]
            steps = params["train"]["max_steps"]
            found[steps] = data["metrics"]["results/double_descent_mlp/metrics.json"]["data"]
    assert set(found) == {60, 150}
    # Smoke: 5 widths × 2 seeds on the squared loss, 3 × 2 on the cross-entropy.
    jobs = 5 * 2 + 3 * 2
    for metrics in found.values():
        assert metrics["jobs"] == jobs and metrics["failed_jobs"] == 0
    # Both variations logged their sweeps into the one absolute store.
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("double_descent_mlp")
    runs = client.search_runs([exp.experiment_id], max_results=1000)
    sweeps = [r for r in runs if r.data.tags.get("widthlab.role") == "sweep"]
    assert len(sweeps) == 2 * 2  # two sweeps (losses) per variation
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId")]
    assert len(children) == 2 * jobs
    assert os.path.exists(tmp_path / "mlflow.db")
