"""The job run's dataset input survives the race of a parallel sweep's first jobs; a tracking
store out of reach stops a job's logging, not the job."""

import hashlib
import socket

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


def test_a_store_out_of_reach_stops_the_logging_and_the_record_says_so(tmp_path, monkeypatch):
    """Past MLflow's retries (none here) the job's run stops logging instead of failing the
    job; its record says why and what the calls took (`JobRun.note`)."""
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    with socket.socket() as s:  # a port nothing listens on: a tracking server that is down
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    run = JobRun(MlflowClient(f"http://127.0.0.1:{port}"), "0" * 32)
    run.log_points([("distance", 1.0, 0)])
    assert not run.active
    run.set_tags({"widthlab.failure": "not sent"})  # nothing more is tried
    record = {"timing": {"seconds": 1.0}}
    run.note(record)
    assert "ConnectionError" in record["tracking_lost"], record
    assert record["timing"]["tracking_seconds"] >= 0


def test_a_wrong_call_to_a_reachable_store_still_raises(tmp_path):
    client, _, _, _ = _run(tmp_path)
    with pytest.raises(MlflowException):
        JobRun(client, "0" * 32).log_points([("distance", 1.0, 0)])  # no such run


@pytest.mark.parametrize("stop", [KeyboardInterrupt, SystemExit])
def test_a_job_stopped_mid_run_ends_killed_and_the_stop_propagates(tmp_path, stop):
    """Ctrl-C, SIGTERM (`errors.Terminated`) or an exit inside a job: its run ends KILLED with
    the stop's name as a tag, not FAILED, and the stop reaches the caller unchanged."""
    from widthlab.runtime.tracking import job_run

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    tracking = {"enabled": True, "uri": uri}
    with pytest.raises(stop):
        with job_run(tracking, "stops", "", "w=1", {"widthlab.key": "w=1"}, {"w": 1}):
            raise stop()
    (run,) = MlflowClient(uri).search_runs(
        [MlflowClient(uri).get_experiment_by_name("stops").experiment_id]
    )
    assert run.info.status == "KILLED"
    assert run.data.tags["widthlab.stopped"] == stop.__name__
