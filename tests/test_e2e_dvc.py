"""The whole pipeline through `dvc repro` on a copy of the repository, smoke profile: every
stage, MLflow, the metrics table, the plots, which stages an edit invalidates, and results
that a forced rerun on one thread leaves byte-identical."""

import json
import os
import shutil
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest
from conftest import REPO
from mlflow import MlflowClient

pytestmark = pytest.mark.slow

STUDIES = (
    "ntk_convergence",
    "double_descent_rf",
    "double_descent_mlp",
    "lazy_training",
    "feature_learning",
    "mnist1d_double_descent",
    "finite_vs_infinite",
    "max_margin",
)
DATASETS = ("sphere_linear", "teacher", "digits", "digits_noisy", "mnist1d", "mnist1d_noisy")


def copy_repository(dest: Path) -> None:
    """Copy the files git would clone (tracked + untracked-not-ignored) into a fresh repo."""
    files = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split("\0")
    for rel in filter(None, files):
        src = REPO / rel
        if src.is_file() and not rel.startswith(("results/", "reports/")) and rel != "dvc.lock":
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
    git(dest, "init", "-q")
    git(dest, "add", "-A")
    git(dest, "commit", "-qm", "copy")


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@t", *args],
        cwd=cwd,
        check=True,
        capture_output=True,
        text=True,
    ).stdout


def dvc(cwd: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        [sys.executable, "-m", "dvc", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=900,
        env={**os.environ, **(env or {})},
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def smoke_repository(tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    copy_repository(repo)
    config = repo / "conf" / "config.yaml"
    config.write_text(config.read_text().replace("profile: laptop", "profile: smoke"))
    git(repo, "commit", "-qam", "smoke")
    return repo


def stages_listed(status: str) -> set[str]:
    return {line.rstrip(":") for line in status.splitlines() if line and not line[0].isspace()}


def test_dvc_repro_smoke_end_to_end(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    repo = smoke_repository(tmp_path)
    first = dvc(repo, "repro")
    assert "Running stage 'data'" in first.stdout
    for name in DATASETS:
        assert (repo / "data" / f"{name}.npz").is_file()

    # The data stage: one parent run, one child per data set.
    client = MlflowClient(tracking_uri=f"sqlite:///{repo}/mlflow.db")
    runs = client.search_runs([client.get_experiment_by_name("data").experiment_id])
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    assert sorted(r.info.run_name for r in children) == sorted(DATASETS)
    assert len(parents) == 1 and {r.data.tags["mlflow.parentRunId"] for r in children} == {
        parents[0].info.run_id
    }
    assert {r.info.status for r in runs} == {"FINISHED"}
    for study in STUDIES:
        folder = repo / "results" / study
        metrics = json.loads((folder / "metrics.json").read_text())
        assert metrics["jobs"] > 0 and metrics["failed_jobs"] == 0, study
        exp = client.get_experiment_by_name(study)
        runs = client.search_runs([exp.experiment_id], max_results=1000)
        children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
        assert len(children) == metrics["jobs"] and {r.info.status for r in children} == {
            "FINISHED"
        }
        assert list((folder / "figures").glob("*.png")) and (folder / "plots.csv").is_file()
    page = (repo / "reports" / "report.md").read_text()
    assert "missing: run `dvc repro`" not in page and "profile `smoke`" in page

    # Nothing changed: nothing reruns.
    assert "Data and pipelines are up to date" in dvc(repo, "status").stdout
    second = dvc(repo, "repro")
    assert "Running stage" not in second.stdout

    # One small table of headline numbers.
    table = dvc(repo, "metrics", "show", "--md").stdout.splitlines()[0]
    assert table.count("|") - 1 <= 60, table

    # Every plotted series is a line of its own: within (panel, series, revision) each x
    # appears once, and the template draws one line per series and revision.
    shown = json.loads(dvc(repo, "plots", "show", "--json").stdout)["data"]
    panels = 0
    for name, entries in shown.items():
        if not name.endswith("plots.csv"):
            continue
        spec = entries[0]["content"]
        encoding = spec["spec"]["encoding"]
        assert encoding["detail"] == {"field": "line", "type": "nominal"}
        assert {"calculate": "datum.series + ' · ' + datum.rev", "as": "line"} in spec["transform"]
        data = spec["data"]["values"]
        points = defaultdict(list)
        for row in data:
            points[(row["panel"], row["series"], row.get("rev"))].append(float(row["x"]))
        for key, xs in points.items():
            assert len(xs) == len(set(xs)), key
        panels += len({k[0] for k in points})
    assert panels >= 8

    # Editing another profile leaves every stage of this one up to date; editing the library
    # invalidates every stage that runs its code.
    gpu = repo / "conf" / "profile" / "gpu.yaml"
    gpu.write_text(gpu.read_text().replace("seeds: range(20)", "seeds: range(21)"))
    listed = stages_listed(dvc(repo, "status").stdout)
    assert listed <= {"params"}, listed
    git(repo, "checkout", "conf/profile/gpu.yaml")
    dvc(repo, "repro", "params")
    kernels = repo / "src" / "widthlab" / "seeding.py"
    kernels.write_text(kernels.read_text() + "\n# an edit\n")
    listed = stages_listed(dvc(repo, "status").stdout)
    assert {f"study@{s}" for s in STUDIES} | {"data"} <= listed, listed
    git(repo, "checkout", "src/widthlab/seeding.py")

    # Committed results stay put: a forced rerun on one thread writes the same bytes.
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "results")
    dvc(repo, "repro", "--force", env={"OMP_NUM_THREADS": "1"})
    changed = git(repo, "status", "--porcelain").strip()
    assert changed == "", changed
