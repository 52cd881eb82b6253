"""The job run's dataset input survives the race of a parallel sweep's first jobs."""

import hashlib

import pytest
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from widthlab.runtime.tracking import JobRun


class LosesTheFirstRace:
    """A client whose first `log_inputs` fails as the store's insert does when another job
    created the same data set a moment earlier (after really creating it, as that job did)."""

    def __init__(self, client: MlflowClient, error: str) -> None:
        self.client, self.error, self.calls = client, error, 0

    def log_inputs(self, run_id, inputs):
        self.calls += 1
        if self.calls == 1:
            other = self.client.create_run(self.client.get_run(run_id).info.experiment_id)
            self.client.log_inputs(other.info.run_id, inputs)
            raise MlflowException(self.error)
        return self.client.log_inputs(run_id, inputs)


def _run(tmp_path):
    client = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    run = client.create_run(client.create_experiment("race"))
    data = tmp_path / "digits.npz"
    data.write_bytes(b"not really a data set")
    return client, run.info.run_id, data, hashlib.sha256(data.read_bytes()).hexdigest()


def test_a_dataset_input_that_lost_the_insert_race_is_linked_on_retry(tmp_path):
    client, run_id, data, sha = _run(tmp_path)
    racing = LosesTheFirstRace(
        client,
        "(sqlite3.IntegrityError) UNIQUE constraint failed: datasets.experiment_id, "
        "datasets.name, datasets.digest",
    )
    JobRun(racing, run_id).log_dataset("digits", data, sha)
    assert racing.calls == 2
    (logged,) = client.get_run(run_id).inputs.dataset_inputs
    assert (logged.dataset.name, logged.dataset.digest) == ("digits", sha[:36])


def test_other_tracking_errors_are_not_retried(tmp_path):
    client, run_id, data, sha = _run(tmp_path)
    racing = LosesTheFirstRace(client, "RESOURCE_DOES_NOT_EXIST: no such run")
    with pytest.raises(MlflowException, match="no such run"):
        JobRun(racing, run_id).log_dataset("digits", data, sha)
    assert racing.calls == 1
