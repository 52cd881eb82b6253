"""Stopping a sweep from outside: SIGTERM, Ctrl-C, and a `dvc repro` that is killed.

Each test runs a sweep of a slow study (each job sleeps) in its own process, stops it once
some jobs are done, and checks what a user sees and what stays behind: one line on stderr
(no traceback), the exit status of the signal, no MLflow run left RUNNING (the stopped jobs'
runs KILLED, the sweep's parent KILLED), no half-written record; a rerun finishes the sweep.
"""

import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from conftest import REPO, subprocess_env

pytestmark = pytest.mark.slow

SLOW_STUDY = """
import time
from widthlab.runtime.schemas import integer
from widthlab.runtime.study import Job, Results, Study


def measure(cfg):
    time.sleep(float(cfg.study.sleep))
    return {"value": float(cfg.seed)}


class SlowStudy(Study):
    question = "Does a slow job stop cleanly?"
    jobs = {"main": Job(measure, "value", groups=("study",), peak_memory=lambda cfg: 1e6)}
    schema = {"sleep": lambda key, value: None}

    def summarize(self, records, settings):
        return Results(summary={}, metrics={})
"""

SLOW_CONFIG = """
# @package _global_
study:
  _target_: slow_study.SlowStudy
  name: slow
  job: main
  job_keys: [seed]
  sweeps: [slow]
  sleep: 0.4
hydra:
  sweeper:
    params:
      seed: range(12)
"""


@pytest.fixture
def slow(tmp_path, empty_store):
    """A folder with the slow study's module and config; returns (folder, env, args)."""
    import shutil

    shutil.copy(empty_store, tmp_path / "mlflow.db")
    (tmp_path / "slow_study.py").write_text(SLOW_STUDY)
    (tmp_path / "conf" / "study").mkdir(parents=True)
    (tmp_path / "conf" / "study" / "slow.yaml").write_text(textwrap.dedent(SLOW_CONFIG))
    env = subprocess_env(
        {"PYTHONPATH": f"{tmp_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    )
    args = [
        "study=slow",
        "profile=smoke",
        f"hydra.searchpath=[file://{tmp_path / 'conf'}]",
        f"tracking.uri=sqlite:///{tmp_path / 'mlflow.db'}",
    ]
    return tmp_path, env, args


def records(folder: Path) -> list[Path]:
    return sorted((folder / "results" / "slow" / "records" / "main").glob("*.json"))


def wait_for(predicate, what: str, limit_s: float = 300.0) -> None:
    """Poll until `predicate()` (a hang guard, not a timing assertion)."""
    deadline = time.monotonic() + limit_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.2)


def stage_processes(folder: Path) -> list:
    """The stage processes of this test (their command line names its folder)."""
    import psutil

    found = []
    for proc in psutil.process_iter(["cmdline"]):
        line = " ".join(proc.info["cmdline"] or [])
        if "stage.py" in line and str(folder) in line and proc.status() != psutil.STATUS_ZOMBIE:
            found.append(proc)
    return found


def parent_statuses(db: Path) -> list[str]:
    with sqlite3.connect(db) as con:
        rows = con.execute(
            "select runs.status from runs join tags on tags.run_uuid = runs.run_uuid "
            "where tags.key = 'widthlab.role' and tags.value = 'sweep' "
            "and runs.lifecycle_stage = 'active'"
        ).fetchall()
    return [status for (status,) in rows]


def run_statuses(db: Path) -> dict[str, int]:
    with sqlite3.connect(db) as con:
        rows = con.execute(
            "select status, count(*) from runs where lifecycle_stage = 'active' group by status"
        ).fetchall()
    return dict(rows)


def stopped_cleanly(proc: subprocess.Popen, folder: Path, code: int, words: str) -> None:
    _, err = proc.communicate(timeout=300)
    lines = [line for line in err.splitlines() if line.strip()]
    assert proc.returncode == code, err[-3000:]
    assert "Traceback" not in err, err[-3000:]
    assert lines[-1].startswith(f"error: {words}"), err[-3000:]
    assert [line for line in lines if line.startswith("error:")] == [lines[-1]]
    statuses = run_statuses(folder / "mlflow.db")
    assert "RUNNING" not in statuses, statuses
    assert parent_statuses(folder / "mlflow.db") == ["KILLED"]
    # Every job that finished has its record, whole; a job it stopped ended KILLED.
    assert statuses.get("FINISHED", 0) == len(records(folder)), statuses
    for path in records(folder):
        assert json.loads(path.read_text())["status"] == "ok"


CORES = ["hydra/launcher=cores", "hydra.launcher.n_jobs=2"]


@pytest.mark.parametrize(
    ("sig", "code", "words", "launcher"),
    [
        (signal.SIGTERM, 143, "stopped by SIGTERM", []),
        (signal.SIGINT, 130, "interrupted (Ctrl-C)", []),
        # As a terminal sends them: to the whole process group, the launcher's workers too.
        (signal.SIGINT, 130, "interrupted (Ctrl-C)", CORES),
        (signal.SIGTERM, 143, "stopped by SIGTERM", CORES),
    ],
    ids=["sigterm", "ctrl-c", "ctrl-c-joblib", "sigterm-joblib"],
)  # fmt: skip
def test_a_signal_stops_the_sweep_with_one_line_and_no_run_left_running(slow, sig, code, words,
                                                                       launcher):  # fmt: skip
    folder, env, args = slow
    command = [sys.executable, str(REPO / "pipelines" / "run.py"), "-m", *args, *launcher]
    proc = subprocess.Popen(
        command, cwd=folder, env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        start_new_session=True,
    )  # fmt: skip
    wait_for(lambda: len(records(folder)) >= 3 or proc.poll() is not None, "three records")
    assert proc.poll() is None, proc.communicate()[1][-3000:]
    os.killpg(proc.pid, sig)
    stopped_cleanly(proc, folder, code, words)
    done = len(records(folder))
    assert done < 12
    if launcher:
        return
    rerun = subprocess.run(command, cwd=folder, env=env, capture_output=True, text=True,
                           timeout=600)  # fmt: skip
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert len(records(folder)) == 12  # the rest, and only the rest, computed
    assert "RUNNING" not in run_statuses(folder / "mlflow.db")


@pytest.mark.parametrize("shell_stays", [False, True], ids=["exec", "shell-in-between"])
def test_sigterm_to_dvc_stops_its_stage(slow, shell_stays):
    """DVC runs a stage as `$SHELL -c <cmd>` with DVC_STAGE set, and does not pass SIGTERM
    on: here a stand-in for dvc starts the stage the same way and is then terminated."""
    folder, env, args = slow
    stage = " ".join([sys.executable, str(REPO / "pipelines" / "stage.py"), *args])
    command = f"{stage}; true" if shell_stays else stage  # `; true`: the shell stays between
    stand_in = (
        f"import subprocess, sys; sys.exit(subprocess.Popen(['bash', '-c', {command!r}]).wait())"
    )
    dvc = subprocess.Popen(
        [sys.executable, "-c", stand_in], cwd=folder, env={**env, "DVC_STAGE": "study@slow"},
        text=True, stderr=subprocess.PIPE, start_new_session=True,
    )  # fmt: skip
    wait_for(lambda: len(records(folder)) >= 3 or dvc.poll() is not None, "three records")
    assert dvc.poll() is None, dvc.communicate()[1][-3000:]
    dvc.terminate()  # dvc alone, not its process group
    dvc.wait(timeout=60)
    # The stage notices that dvc is gone, stops, and closes its runs: no orphan runs on.
    wait_for(lambda: not stage_processes(folder), "the stage to end")
    assert len(records(folder)) < 12
    assert "RUNNING" not in run_statuses(folder / "mlflow.db")
    err = dvc.stderr.read()
    assert "Traceback" not in err, err[-3000:]
    assert "error: stopped by SIGTERM" in err, err[-3000:]
    assert parent_statuses(folder / "mlflow.db") == ["KILLED"]
