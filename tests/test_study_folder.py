"""Adding a study to the pipeline is one folder and one line of dvc.yaml: the toy study's
folder (tests/studies/toy_study: its module and its configs) copied into src/widthlab/studies/,
its `_target_` naming it there, and its name added to dvc.yaml's `studies` make a stage that
`dvc repro` runs; no other file of the repository is edited."""

import json
import shutil

import pytest
import yaml
from conftest import TOY, dvc_studies
from smoke_repo import dvc, git, smoke_repository

pytestmark = pytest.mark.slow


def test_one_folder_and_one_dvc_line_add_a_study(tmp_path):
    repo = smoke_repository(tmp_path / "repo")
    folder = repo / "src" / "widthlab" / "studies" / "toy_study"
    shutil.copytree(TOY, folder, ignore=shutil.ignore_patterns("__pycache__"))
    config = folder / "conf" / "study" / "toy.yaml"
    config.write_text(
        config.read_text().replace("toy_study.ToyStudy", "widthlab.studies.toy_study.ToyStudy")
    )
    pipeline = repo / "dvc.yaml"
    last = dvc_studies(pipeline)[-1]
    text = pipeline.read_text()
    assert text.count(f"      - {last}\n") == 1
    pipeline.write_text(text.replace(f"      - {last}\n", f"      - {last}\n      - toy\n"))
    assert dvc_studies(pipeline)[-1] == "toy"
    edits = set(git(repo, "status", "--porcelain").splitlines())
    assert edits == {" M dvc.yaml", "?? src/widthlab/studies/toy_study/"}

    assert "study@toy" in dvc(repo, "stage", "list").stdout
    dvc(repo, "repro", "study@toy")
    stages = yaml.safe_load((repo / "results" / "params" / "stages.yaml").read_text())
    assert stages["studies"]["toy"]["jobs"] == 12
    summary = json.loads((repo / "results" / "toy" / "summary.json").read_text())
    assert summary["n_jobs"] == 12 and summary["n_failed"] == 0
    assert summary["slope"]["verdict"] == "agrees"
    assert (repo / "results" / "toy" / "figures" / "toy.png").is_file()
