"""The whole pipeline through `dvc repro`, on a copy of the repository, with profile=smoke."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO
from mlflow import MlflowClient

pytestmark = pytest.mark.slow


def copy_repository(dest: Path) -> None:
    """Copy the files git would clone (tracked + untracked-not-ignored) into a fresh repo."""
    files = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=REPO, capture_output=True, text=True, check=True,
    ).stdout.split("\0")  # fmt: skip
    for rel in filter(None, files):
        src = REPO / rel
        if src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run(["git", "init", "-q"], cwd=dest, check=True)
    subprocess.run([*git, "add", "-A"], cwd=dest, check=True)
    subprocess.run([*git, "commit", "-qm", "copy"], cwd=dest, check=True)


def dvc(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "dvc", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=900)  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


def test_dvc_repro_smoke_end_to_end(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    repo = tmp_path / "repo"
    copy_repository(repo)
    config = repo / "conf" / "config.yaml"
    config.write_text(config.read_text().replace("profile: laptop", "profile: smoke"))

    first = dvc(repo, "repro")
    for name in ("sphere_linear", "teacher", "digits", "digits_noisy"):
        assert (repo / "data" / f"{name}.npz").is_file()
        assert (repo / "data" / f"{name}.json").is_file()
        assert f"Running stage 'data@{name}'" in first.stdout

    client = MlflowClient(tracking_uri=f"sqlite:///{repo}/mlflow.db")
    exp = client.get_experiment_by_name("data")
    runs = client.search_runs([exp.experiment_id])
    assert sorted(r.info.run_name for r in runs) == [
        "digits",
        "digits_noisy",
        "sphere_linear",
        "teacher",
    ]
    assert {r.info.status for r in runs} == {"FINISHED"}

    # Every study: records for the whole sweep, a summary with no failures, MLflow children.
    expected_jobs = {"ntk_convergence": 3 * 2 * 2 * 2, "double_descent_rf": 10 * 2 + 10,
                     "double_descent_mlp": 5 * 2, "lazy_training": 3 * 2 * 2}  # fmt: skip
    for study, n_jobs in expected_jobs.items():
        folder = repo / "results" / study
        assert len(list((folder / "records").glob("*.json"))) == n_jobs
        summary = json.loads((folder / "summary.json").read_text())
        assert summary["n_jobs"] == n_jobs and summary["n_failed"] == 0
        assert (folder / "curves.csv").read_text().count("\n") > 1
        exp = client.get_experiment_by_name(study)
        runs = client.search_runs([exp.experiment_id], max_results=1000)
        children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
        assert len(children) == n_jobs
        assert {r.info.status for r in children} == {"FINISHED"}
    metrics = dvc(repo, "metrics", "show", "--json").stdout
    assert "slopes" in metrics and "peak_d_over_n" in metrics
    page = (repo / "reports" / "report.md").read_text()
    assert "missing: run `dvc repro`" not in page  # every figure exists
    figures = {"ntk_convergence": 3, "double_descent_rf": 3, "double_descent_mlp": 1,
               "lazy_training": 1}  # fmt: skip
    for study, count in figures.items():
        assert len(list((repo / "results" / study / "figures").glob("*.png"))) >= count
    dvc(repo, "plots", "show", "-o", str(tmp_path / "plots"))
    html = (tmp_path / "plots" / "index.html").read_text()
    assert "rf_test_error_vs_width" in html and "kernel_convergence.png" in html

    second = dvc(repo, "repro")
    assert "Running stage" not in second.stdout
    assert "Data and pipelines are up to date" in second.stdout

    # Editing one data config reruns exactly the stage that reads it.
    teacher_cfg = repo / "conf" / "data" / "teacher.yaml"
    teacher_cfg.write_text(teacher_cfg.read_text().replace("noise: 0.1", "noise: 0.3"))
    third = dvc(repo, "repro")
    assert "Running stage 'data@teacher'" in third.stdout
    assert "Running stage 'data@sphere_linear'" not in third.stdout
    assert "Running stage 'data@digits'" not in third.stdout
    assert "Running stage 'ntk_convergence'" not in third.stdout  # reads digits only
    assert "Running stage 'double_descent_rf'" not in third.stdout
    assert "Running stage 'double_descent_mlp'" not in third.stdout
    assert "Running stage 'lazy_training'" in third.stdout  # trains on the teacher data
