"""The whole pipeline through `dvc repro` on a copy of the repository, smoke profile: every
stage, MLflow, the metrics table, the plots, which stages an edit invalidates, and results
that a forced rerun on one thread leaves byte-identical. The pipeline ran once for the test
session (conftest.py's `smoke_pipeline`); each test works on its own clone of it."""

import json
from collections import defaultdict

import pytest
from conftest import STUDIES
from mlflow import MlflowClient
from smoke_repo import clone, dvc, git

pytestmark = pytest.mark.slow

DATASETS = ("sphere_linear", "teacher", "digits", "digits_noisy", "mnist1d", "mnist1d_noisy")


def stages_listed(status: str) -> set[str]:
    return {line.rstrip(":") for line in status.splitlines() if line and not line[0].isspace()}


def test_dvc_repro_smoke_end_to_end(smoke_pipeline, tmp_path):
    repo = clone(smoke_pipeline, tmp_path / "repo")
    first = (smoke_pipeline.parent / "first_repro.log").read_text()
    assert "Running stage 'data'" in first
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
        metrics = json.loads((folder / "summary.json").read_text())["metrics"]
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

    # Editing another profile leaves every stage of this one up to date; so do an edit that
    # changes no code (a comment, a docstring) and an edit to MLflow logging: once `params`
    # has rerun, nothing else is out of date. An edit to the code of the library
    # invalidates the stages that run it, and reruns only the jobs whose code it is.
    gpu = (
        repo
        / "src/widthlab/studies/double_descent_rf/conf/profile/study/double_descent_rf/gpu.yaml"
    )
    assert "seeds: range(20)" in gpu.read_text()
    gpu.write_text(gpu.read_text().replace("seeds: range(20)", "seeds: range(21)"))
    assert stages_listed(dvc(repo, "status").stdout) <= {"params"}
    tracking = repo / "src" / "widthlab" / "runtime" / "tracking.py"
    tracking.write_text(tracking.read_text() + "\n\ndef unused():\n    return 1\n")
    seeding = repo / "src" / "widthlab" / "seeding.py"
    text = seeding.read_text()
    seeding.write_text("# a comment\n\n" + text.replace('"""', '"""A new docstring. ', 1))
    rerun = dvc(repo, "repro").stdout
    assert "Running stage 'params'" in rerun and rerun.count("Running stage") == 1, rerun
    assert "Data and pipelines are up to date" in dvc(repo, "status").stdout
    seeding.write_text(seeding.read_text() + "\nUNUSED = 1\n")
    dvc(repo, "repro", "params")
    listed = stages_listed(dvc(repo, "status").stdout)
    assert {f"study@{s}" for s in STUDIES} | {"data"} <= listed, listed
    git(repo, "checkout", "conf", "src")
    dvc(repo, "repro")

    # Back where it started, nothing out of date; and the committed results stay put: a
    # forced rerun on one thread writes the same bytes.
    assert git(repo, "status", "--porcelain").strip() == ""
    dvc(repo, "repro", "--force", env={"OMP_NUM_THREADS": "1"})
    changed = git(repo, "status", "--porcelain").strip()
    assert changed == "", changed
