"""Keys a study never reads are refused, not ignored (`widthlab.runtime.unread`).

Each job kind lists the keys of its config it never reads (`Job.ignores`). The list must be
sound: no record of the smoke pipeline, which runs every sweep of every study, may have
read a key its job kind claims to ignore (else a value the job uses would be refused).
"""

import json

import pytest

from widthlab.runtime.errors import ConfigError
from widthlab.runtime.study import load_study
from widthlab.runtime.unread import check_unread, command_line_values, ignored_by

STUDIES = {
    "ntk_convergence": "widthlab.studies.ntk_convergence.NTKConvergence",
    "finite_vs_infinite": "widthlab.studies.finite_vs_infinite.FiniteVsInfinite",
    "lazy_training": "widthlab.studies.lazy_training.LazyTraining",
    "feature_learning": "widthlab.studies.feature_learning.FeatureLearning",
}


def test_command_line_values_are_the_value_overrides():
    lines = ["model.width=64", "data=digits", "+study.x=1", "~seed", "hydra.verbose=true",
             "hydra/launcher=cores", "train.trainer.max_epochs=3"]  # fmt: skip
    assert command_line_values(lines, ["data", "hydra/launcher"]) == {
        "model.width": "64",
        "study.x": "1",
        "train.trainer.max_epochs": "3",
    }


def test_a_key_is_refused_only_when_every_job_kind_given_ignores_it():
    study = load_study(STUDIES["ntk_convergence"])
    values = {"model.width": "1000"}
    check_unread(study, "ntk_convergence", ["kernels", "circle"], values)  # kernels reads it
    with pytest.raises(ConfigError, match=r"the circle job of ntk_convergence does not read"):
        check_unread(study, "ntk_convergence", ["circle"], values)
    with pytest.raises(ConfigError, match=r"model\._target_='torch\.nn\.Linear' is not"):
        check_unread(study, "ntk_convergence", study.jobs, {"model._target_": "torch.nn.Linear"})
    check_unread(study, "ntk_convergence", ["circle"], values, skip={"model.width"})
    assert ignored_by("train.trainer.max_epochs", ("train.trainer",))
    assert not ignored_by("train.trainer_x", ("train.trainer",))


def test_no_job_of_the_smoke_pipeline_read_a_key_its_kind_ignores(smoke_pipeline):
    """Every record's `reads` against its job kind's `ignores`, for every study."""
    checked = 0
    for path in sorted((smoke_pipeline / "results").glob("*/records/*/*.json")):
        if path.parent.name in ("sweeps", ".stacks"):  # manifests and stack plans
            continue
        record = json.loads(path.read_text())
        summary = json.loads((path.parents[2] / "summary.json").read_text())
        study = load_study(summary["study_class"])
        ignores = study.job(record["job_kind"]).ignores
        read = [key for key in record.get("reads", {}) if ignored_by(key, ignores)]
        assert not read, f"{path}: read {read}, which {record['job_kind']} claims to ignore"
        checked += bool(ignores)
    assert checked >= 10  # records of job kinds that ignore something were looked at
