"""DVC experiments as DVC documents them (`dvc exp run -S <profile file>:<key>=<value>`) on a
copy of the smoke pipeline: a failed experiment changes nothing, a real one reruns only the
jobs that read its value and shows in `dvc exp show`, `dvc exp apply` goes back, and queued
variations run side by side into one tracking store."""

import json
import subprocess
import sys
import time

import pytest
from mlflow import MlflowClient
from smoke_repo import clone, dvc, git, pipeline_env, snapshot

pytestmark = pytest.mark.slow

# The files `dvc exp run -S` rewrites: a study's sizes under a profile, in the study's folder.
STUDIES = "src/widthlab/studies"
PROFILE = f"{STUDIES}/max_margin/conf/profile/study/max_margin/smoke.yaml"
MLP_PROFILE = f"{STUDIES}/double_descent_mlp/conf/profile/study/double_descent_mlp/smoke.yaml"


def test_a_failed_experiment_changes_nothing_but_the_value_dvc_wrote(smoke_pipeline, tmp_path):
    repo = clone(smoke_pipeline, tmp_path / "repo")
    before = snapshot(repo)
    profile = (repo / PROFILE).read_text()
    bad = f"{PROFILE}:separability_draws=-5"

    # In the workspace: DVC writes the value into the profile; the pipeline refuses it in
    # its first stage, with one line, before any stage that computes or writes runs.
    failed = dvc(repo, "exp", "run", "-S", bad, check=False)
    assert failed.returncode != 0
    errors = [line for line in failed.stderr.splitlines() if line.startswith("error:")]
    assert errors == ["error: study.separability.draws=-5 is not allowed: expected an integer ≥ 1"]
    assert "Running stage 'study@" not in failed.stdout
    after = snapshot(repo)
    assert {k for k in before if before[k] != after.get(k)} == {PROFILE}
    assert set(after) == set(before)
    lines = zip(profile.splitlines(), (repo / PROFILE).read_text().splitlines(), strict=True)
    changed = [(old, new) for old, new in lines if old != new]
    assert changed == [("separability_draws: 40", "separability_draws: -5")]

    # In a temporary copy (--temp, as queued experiments run): the workspace is untouched.
    git(repo, "reset", "-q")  # DVC staged the file it wrote
    (repo / PROFILE).write_text(profile)
    assert snapshot(repo) == before
    failed = dvc(repo, "exp", "run", "--temp", "-S", bad, check=False)
    assert failed.returncode != 0 and snapshot(repo) == before


def test_an_experiment_reruns_only_the_jobs_that_read_its_value(smoke_pipeline, tmp_path):
    repo = clone(smoke_pipeline, tmp_path / "repo")
    before = snapshot(repo, tracking=False)
    records = repo / "results" / "max_margin" / "records"
    old = {p.relative_to(records): p.read_bytes() for p in records.rglob("*.json")}

    ran = dvc(repo, "exp", "run", "-S", f"{PROFILE}:separability_draws=30")
    # Only the max_margin stage reran, and in it only the separability sweep's jobs: the
    # value is read by them alone (2 of the study's 10 smoke jobs).
    stages = [line for line in ran.stdout.splitlines() if line.startswith("Running stage")]
    assert stages == [
        "Running stage 'params':",
        "Running stage 'study@max_margin':",
        "Running stage 'report':",
    ], stages
    assert "max_margin/separability: 2 jobs, 2 computed (0 failed), 0 cached" in ran.stdout
    assert ran.stdout.count("every one of") == 4  # the other four sweeps: all cached
    new = {p.relative_to(records): p.read_bytes() for p in records.rglob("*.json")}
    changed = sorted(str(k) for k in new if old.get(k) != new[k])
    assert changed == [
        "separability/seed=0.json",
        "separability/seed=1.json",
        "sweeps/max_margin.separability.json",
    ] or changed == ["separability/seed=0.json", "separability/seed=1.json"], changed
    summary = json.loads((repo / "results/max_margin/summary.json").read_text())
    assert summary["settings"]["separability"]["draws"] == 30

    # `dvc exp show`: a table a reader can read, with the experiment's row.
    table = dvc(repo, "exp", "show", "--md").stdout.splitlines()
    assert table[0].count("|") - 1 <= 60, table[0]
    shown = json.loads(dvc(repo, "exp", "show", "--json").stdout)
    rows = {
        rev["name"] or rev["rev"]: rev["data"]
        for commit in shown
        for exp in [commit, *(commit.get("experiments") or [])]
        for rev in (exp.get("revs") or [exp])
        if rev.get("data")
    }
    stages = "results/params/stages.yaml"
    digests = {
        name: data["params"][stages]["data"]["studies"]["max_margin"]["digest"]
        for name, data in rows.items()
    }
    assert len(set(digests.values())) == 2, digests  # the baseline's, and the experiment's

    # `dvc exp apply` of the baseline brings its results back, byte for byte.
    dvc(repo, "exp", "apply", "HEAD")
    assert snapshot(repo, tracking=False) == before


def test_queued_experiments_run_a_study_variation_each(smoke_pipeline, tmp_path):
    repo = clone(smoke_pipeline, tmp_path / "repo")
    # Queued experiments run in temporary copies of the repository: a relative SQLite URI
    # would give each its own throwaway store.
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    env = {"MLFLOW_TRACKING_URI": uri}

    # Two step budgets for the MLP double-descent study (its smoke sizes file holds them; its
    # own, 150, is the baseline's).
    dvc(
        repo,
        "exp",
        "run",
        "--queue",
        "study@double_descent_mlp",
        "-S",
        f"{MLP_PROFILE}:max_steps=60,100",
        env=env,
    )
    # The queue's workers outlive `queue start`: they must not hold its output pipes open.
    subprocess.run(
        [sys.executable, "-m", "dvc", "queue", "start", "-j", "2"],
        cwd=repo,
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=pipeline_env(repo, env),
    )
    deadline = time.time() + 600
    while time.time() < deadline:
        status = dvc(repo, "queue", "status", env=env).stdout
        if "Queued" not in status and "Running" not in status:
            break
        time.sleep(2)
    dvc(repo, "queue", "stop", "--kill", env=env)
    assert "Failed" not in status, status

    shown = json.loads(dvc(repo, "exp", "show", "--json", env=env).stdout)
    experiments = [exp for commit in shown for exp in (commit.get("experiments") or [])]
    found = {}
    for exp in experiments:
        for rev in exp.get("revs", []):
            data = rev.get("data", {})
            # The stage's entry of the resolved settings DVC tracks shows the value it used.
            params = data["params"]["results/params/stages.yaml"]["data"]
            entry = params["studies"]["double_descent_mlp"]
            found[entry["max_steps"]] = (
                entry["jobs"],
                data["metrics"]["results/double_descent_mlp/metrics.json"]["data"],
            )
    assert set(found) == {60, 100}
    # Smoke: 5 widths × 2 seeds on the squared loss, 3 × 2 on the cross-entropy.
    jobs = 5 * 2 + 3 * 2
    for count, metrics in found.values():
        assert count == jobs and metrics["failed_jobs"] == 0
    # Both variations logged their sweeps into the one absolute store.
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("double_descent_mlp")
    runs = client.search_runs([exp.experiment_id], max_results=1000)
    sweeps = [r for r in runs if r.data.tags.get("widthlab.role") == "sweep"]
    assert len(sweeps) == 2 * 2  # two sweeps (losses) per variation
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId")]
    assert len(children) == 2 * jobs
