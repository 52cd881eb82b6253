"""The same sweep under every launcher, resuming an interrupted sweep, a tracking server."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import pytest
from conftest import REPO, subprocess_env
from mlflow import MlflowClient

pytestmark = pytest.mark.slow

SWEEP = [
    "-m",
    "study=ntk_convergence",
    "profile=smoke",
    "model.width=32,64",
    "model.depth=1",
    "model.activation=relu",
    "seed=0",
]


def pipeline(job, *args, cwd, background=False):
    env = subprocess_env()
    cmd = [sys.executable, str(REPO / "pipelines" / f"{job}.py"), *args]
    if background:
        return subprocess.Popen(
            cmd,
            cwd=cwd,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


@pytest.fixture
def digits_dir(tmp_path):
    proc = pipeline("data", "data=digits", "profile=smoke", "tracking=off", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    return tmp_path


def records(folder):
    out = {}
    for path in sorted(folder.rglob("records/kernels/*.json")):
        record = json.loads(path.read_text())
        record.pop("timing")
        out[path.name] = record
    return out


def test_joblib_and_submitit_give_the_records_of_the_basic_launcher(digits_dir):
    uri = f"sqlite:///{digits_dir}/s.db"
    for launcher in ("basic", "cores", "local"):
        extra = [] if launcher == "basic" else [f"hydra/launcher={launcher}"]
        extra += ["hydra.launcher.n_jobs=2"] if launcher == "cores" else []
        proc = pipeline(
            "run",
            *SWEEP,
            *extra,
            f"paths.results_dir=res_{launcher}",
            f"tracking.uri={uri}",
            cwd=digits_dir,
        )
        assert proc.returncode == 0, proc.stderr[-2000:]
    basic = records(digits_dir / "res_basic")
    assert len(basic) == 2
    assert records(digits_dir / "res_cores") == basic
    assert records(digits_dir / "res_local") == basic
    client = MlflowClient(tracking_uri=uri)
    runs = client.search_runs([client.get_experiment_by_name("ntk_convergence").experiment_id])
    parents = {r.info.run_id for r in runs if r.data.tags.get("widthlab.role") == "sweep"}
    children = [r for r in runs if r.data.tags.get("widthlab.role") != "sweep"]
    assert len(parents) == 3 and len(children) == 6
    assert {r.data.tags["mlflow.parentRunId"] for r in children} == parents


def test_a_stage_on_parallel_workers_gives_each_sweep_its_own_children(digits_dir):
    """One stage runs three sweeps in one process; joblib reuses its worker processes across
    them, so whatever a sweep tells its jobs (its parent run, its size) must reach workers
    started for an earlier sweep: every child belongs to its own sweep's parent."""
    uri = f"sqlite:///{digits_dir}/s.db"
    proc = subprocess.run(
        [sys.executable, str(REPO / "pipelines" / "stage.py"), "study=ntk_convergence",
         "profile=smoke", "hydra/launcher=cores", "hydra.launcher.n_jobs=2",
         "profile.study.ntk_convergence.widths=32", "profile.study.ntk_convergence.depths=1",
         "profile.study.ntk_convergence.seeds=0", "profile.study.ntk_convergence.mc_widths=8",
         "profile.study.ntk_convergence.circle_widths=32", f"tracking.uri={uri}"],
        cwd=digits_dir, env=subprocess_env(), capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    log = proc.stdout + proc.stderr
    assert "ntk_convergence ntk_convergence: 2 jobs, 2 computed" in log
    assert "ntk_convergence ntk_convergence/circle: 1 job, 1 computed" in log
    # The jobs' own log lines (in the sweep folders) number each job in its own sweep.
    jobs_logs = "".join(p.read_text() for p in digits_dir.glob("outputs/multirun/*/*/*/*.log"))
    assert "[2/2] ntk_convergence model.activation" in jobs_logs  # each sweep's own size
    assert "[1/1] ntk_convergence study.circle.part=0,study.circle.width=32" in jobs_logs
    client = MlflowClient(tracking_uri=uri)
    runs = client.search_runs([client.get_experiment_by_name("ntk_convergence").experiment_id])
    sweep_of = {
        r.info.run_id: r.data.tags["widthlab.sweep"]
        for r in runs
        if r.data.tags.get("widthlab.role") == "sweep"
    }
    assert sorted(sweep_of.values()) == [
        "ntk_convergence", "ntk_convergence/circle", "ntk_convergence/mc"
    ]  # fmt: skip
    children = [r for r in runs if "widthlab.key" in r.data.tags]
    assert len(children) == 5
    sweep_of_job = {"kernels": "ntk_convergence", "mc_nngp": "ntk_convergence/mc",
                    "circle": "ntk_convergence/circle"}  # fmt: skip
    for child in children:
        expected = sweep_of_job[child.data.tags["widthlab.job"]]
        assert sweep_of[child.data.tags["mlflow.parentRunId"]] == expected


def test_a_killed_sweep_resumes_without_recomputing_or_duplicating(digits_dir):
    uri = f"sqlite:///{digits_dir}/s.db"
    args = ["-m", "study=ntk_convergence", "profile=smoke", f"tracking.uri={uri}"]
    proc = pipeline("run", *args, cwd=digits_dir, background=True)
    folder = digits_dir / "results" / "ntk_convergence" / "records" / "kernels"
    deadline = time.time() + 300
    while time.time() < deadline and len(list(folder.glob("*.json"))) < 6:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)  # as a scheduler would: no cleanup at all
    proc.wait()
    finished = {p.name for p in folder.glob("*.json")}
    assert 6 <= len(finished) < 24, "the sweep should have been killed midway"

    rerun = pipeline("run", *args, cwd=digits_dir)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    log = rerun.stdout + rerun.stderr
    cached = len(finished)
    assert f"24 jobs, {24 - cached} computed (0 failed), {cached} cached" in log, log
    assert len(list(folder.glob("*.json"))) == 24
    for path in folder.glob("*.json"):
        json.loads(path.read_text())  # every record is whole
    client = MlflowClient(tracking_uri=uri)
    runs = client.search_runs(
        [client.get_experiment_by_name("ntk_convergence").experiment_id], max_results=1000
    )
    done = [r for r in runs if r.info.status == "FINISHED" and "widthlab.key" in r.data.tags]
    keys = [r.data.tags["widthlab.key"] for r in done]
    assert len(keys) == 24 and len(set(keys)) == 24  # one finished child per job, no duplicate
    assert not [r for r in runs if r.info.status == "RUNNING"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_sweep_against_a_tracking_server(digits_dir):
    port = free_port()
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mlflow",
            "server",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--backend-store-uri",
            f"sqlite:///{digits_dir}/server.db",
            "--artifacts-destination",
            str(digits_dir / "artifacts"),
            "--workers",
            "1",
        ],
        cwd=digits_dir,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    uri = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 120
        while True:
            try:
                with urllib.request.urlopen(f"{uri}/health", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                if time.time() > deadline or server.poll() is not None:
                    raise
                time.sleep(0.5)
        proc = pipeline("run", *SWEEP, f"tracking.uri={uri}", cwd=digits_dir)
        assert proc.returncode == 0, proc.stderr[-2000:]
        client = MlflowClient(tracking_uri=uri)
        runs = client.search_runs([client.get_experiment_by_name("ntk_convergence").experiment_id])
        children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
        assert len(runs) == 3 and len(children) == 2
        assert all("ntk_distance" in r.data.metrics for r in children)
        assert not (digits_dir / "mlflow.db").exists()  # nothing went to the default store
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)


def test_a_narrower_rerun_resumes_and_the_aggregate_drops_the_stale_records(digits_dir):
    common = [
        "study=ntk_convergence",
        "profile=smoke",
        "tracking=off",
        "model.depth=1",
        "model.activation=relu",
        "seed=0",
    ]
    first = pipeline("run", "-m", *common, "model.width=32,64,128", cwd=digits_dir)
    assert first.returncode == 0, first.stderr[-2000:]
    second = pipeline("run", "-m", *common, "model.width=32,64", cwd=digits_dir)
    assert second.returncode == 0, second.stderr[-2000:]
    assert "every one of 2 jobs is cached" in second.stdout  # nothing recomputed
    folder = digits_dir / "results" / "ntk_convergence"
    assert len(list((folder / "records" / "kernels").glob("*.json"))) == 3  # the old one is kept...
    agg = pipeline("aggregate", "study=ntk_convergence", "tracking=off", cwd=digits_dir)
    assert agg.returncode == 0, agg.stderr[-2000:]
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["n_jobs"] == 2  # ...but it is not part of the study any more
    stale = "kernels/model.activation=relu,model.depth=1,model.width=128,seed=0"
    assert summary["stale_records_ignored"] == [stale]
    assert "1 stale records ignored" in agg.stdout
