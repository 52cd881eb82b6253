"""Scale-out on a real scheduler and tracking server (tests/cluster.py: one-node SLURM without
accounting, an MLflow server on PostgreSQL): a smoke sweep through submitit under load, and a
cluster's faults: a cancelled job, a job at its time limit, a tracking server restarted
mid-sweep or gone past MLflow's retries."""

import json
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import REPO, SEARCH_PATH, subprocess_env
from mlflow import MlflowClient

pytestmark = pytest.mark.slow

# 50 smoke jobs of `ntk_convergence` (each reads the digits data set): 5 widths x 2
# activations x 5 seeds, one hidden layer.
LOAD_SWEEP = [
    "-m", "study=ntk_convergence", "profile=smoke", "model.width=16,32,64,128,256",
    "model.depth=1", "seed=0,1,2,3,4",
]  # fmt: skip
LOAD_JOBS = 50
# The slurm_cpu preset as a user runs it, with 1 GB a job: the node's memory then admits all
# of its 16 CPUs' jobs at once.
ON_CLUSTER = ["hydra/launcher=slurm_cpu", "hydra.launcher.mem_gb=1"]


def pipeline(job, *args, cwd, env=None, background=False):
    cmd = [sys.executable, str(REPO / "pipelines" / f"{job}.py"), *args]
    if background:
        return subprocess.Popen(
            cmd,
            cwd=cwd,
            env=subprocess_env(env),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
    return subprocess.run(cmd, cwd=cwd, env=subprocess_env(env), capture_output=True, text=True)


@pytest.fixture(scope="module")
def shared_dir(tmp_path_factory):
    """The folder every job and the submitting process share (a cluster's shared file
    system): the smoke digits data set, results, Hydra's and submitit's outputs."""
    folder = tmp_path_factory.mktemp("shared")
    proc = pipeline("data", "data=digits", "profile=smoke", "tracking=off", cwd=folder)
    assert proc.returncode == 0, proc.stderr
    return folder


def records(folder: Path, kind: str) -> dict:
    out = {}
    for path in sorted(folder.rglob(f"records/{kind}/*.json")):
        record = json.loads(path.read_text())
        record.pop("timing")
        out[path.name] = record
    return out


def child_runs(client, experiment: str) -> list:
    exp = client.get_experiment_by_name(experiment)
    runs = client.search_runs([exp.experiment_id], max_results=5000) if exp else []
    return [r for r in runs if "widthlab.key" in r.data.tags]


def most_at_once(intervals) -> int:
    """The largest number of (start, end) intervals that overlap at one instant."""
    events = sorted([(s, 1) for s, _ in intervals] + [(e, -1) for _, e in intervals])
    now = best = 0
    for _, step in events:
        now += step
        best = max(best, now)
    return best


def test_a_smoke_sweep_of_50_jobs_on_slurm_logs_each_once_and_aggregates(cluster, shared_dir):
    proc = pipeline(
        "run", *LOAD_SWEEP, *ON_CLUSTER, "paths.results_dir=res_cluster",
        cwd=shared_dir, env=cluster.env(),
    )  # fmt: skip
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-3000:]
    assert f"{LOAD_JOBS} jobs, {LOAD_JOBS} computed (0 failed), 0 cached" in log, log[-3000:]
    assert "Bypassing sacct" not in log
    basic = pipeline(
        "run", *LOAD_SWEEP, "tracking=off", "paths.results_dir=res_basic", cwd=shared_dir
    )
    assert basic.returncode == 0, basic.stderr[-2000:]
    expected = records(shared_dir / "res_basic", "kernels")
    assert len(expected) == LOAD_JOBS
    assert records(shared_dir / "res_cluster", "kernels") == expected

    # Each job one FINISHED child run of the sweep's parent, whose params, metrics and
    # dataset input arrived once: no duplicate row in the server's PostgreSQL database.
    client = MlflowClient(tracking_uri=cluster.tracking_uri)
    children = child_runs(client, "ntk_convergence")
    assert len(children) == LOAD_JOBS and {r.info.status for r in children} == {"FINISHED"}
    assert len({r.data.tags["widthlab.key"] for r in children}) == LOAD_JOBS
    assert len({r.data.tags["mlflow.parentRunId"] for r in children}) == 1
    import psycopg

    with psycopg.connect(cluster.database_uri) as db:
        ids = [r.info.run_id for r in children]
        rows = db.execute(
            "select run_uuid, key, count(*) from metrics where run_uuid = any(%s) "
            "group by run_uuid, key",
            (ids,),
        ).fetchall()
        inputs = db.execute(
            "select destination_id, count(*) from inputs where destination_id = any(%s) "
            "and destination_type = 'RUN' group by destination_id",
            (ids,),
        ).fetchall()
        params = db.execute(
            "select run_uuid, count(*) from params where run_uuid = any(%s) group by run_uuid",
            (ids,),
        ).fetchall()
    assert {count for _, _, count in rows} == {1}  # every metric of every run, once
    assert {key for _, key, _ in rows} >= {"ntk_distance", "nngp_distance", "seconds"}
    assert len({run for run, _, _ in rows}) == LOAD_JOBS
    assert sorted(count for _, count in inputs) == [1] * LOAD_JOBS  # one dataset input each
    assert len({count for _, count in params}) == 1 and len(params) == LOAD_JOBS
    assert {r.data.params["model.width"] for r in children} == {"16", "32", "64", "128", "256"}
    # Jobs logged side by side: at least 8 runs open (created, not yet ended) at one instant.
    spans = [(r.info.start_time, r.info.end_time) for r in children]
    assert most_at_once(spans) >= 8, spans
    # Every record says what its tracking calls took.
    folder = shared_dir / "res_cluster" / "ntk_convergence" / "records" / "kernels"
    tracking = [
        json.loads(p.read_text())["timing"]["tracking_seconds"] for p in folder.glob("*.json")
    ]
    assert len(tracking) == LOAD_JOBS and min(tracking) > 0
    alone = shared_dir / "res_basic" / "ntk_convergence" / "records" / "kernels"
    seconds = [json.loads(p.read_text())["timing"]["seconds"] for p in alone.glob("*.json")]
    print(
        f"\n{LOAD_JOBS} jobs on SLURM, up to {most_at_once(spans)} logging at once: tracking "
        f"calls {statistics.median(tracking):.2f} s a job (median; max {max(tracking):.2f}); "
        f"a job computes in {statistics.median(seconds):.2f} s (median, basic launcher, alone)"
    )

    # The aggregate, from the submitting machine, finds every record and logs the study's
    # figures to the sweep's parent, into the server's artifact folder.
    agg = pipeline(
        "aggregate", "study=ntk_convergence", "paths.results_dir=res_cluster",
        cwd=shared_dir, env=cluster.env(),
    )  # fmt: skip
    assert agg.returncode == 0, agg.stderr[-2000:]
    summary = json.loads((folder.parent.parent / "summary.json").read_text())
    assert summary["n_jobs"] == LOAD_JOBS and not summary.get("missing_jobs")
    assert list(cluster.artifacts.rglob("*.png"))


def toy_sweep(experiment: str, seconds: float, *extra: str, seeds: str = "0,1,2,3") -> list:
    """A sweep of the toy study (tests/studies): a job per seed, each waiting `seconds`."""
    return [
        "-m", "study=toy", SEARCH_PATH, "study.width=64", f"seed={seeds}",
        f"study.seconds={seconds}", f"tracking.experiment={experiment}",
        f"paths.results_dir=res_{experiment}", *ON_CLUSTER, *extra,
    ]  # fmt: skip


def wait_until(condition, what: str, *sweeps: subprocess.Popen) -> None:
    """Poll `condition()` while `sweeps` (commands in the background) run; fail, with their
    output, if one of them ends first. No deadline: a slow machine only waits longer."""
    while not condition():
        for sweep in sweeps:
            if sweep.poll() is not None:
                out, err = sweep.communicate()
                pytest.fail(f"a sweep ended before {what}:\n{out[-2000:]}\n{err[-2000:]}")
        time.sleep(0.5)


def running(client, experiment: str, key_part: str = "") -> list:
    """The RUNNING child runs of `experiment` whose job key holds `key_part`."""
    runs = child_runs(client, experiment)
    return [
        r for r in runs if r.info.status == "RUNNING" and key_part in r.data.tags["widthlab.key"]
    ]


def test_jobs_slurm_ends_early_a_cancel_and_a_time_limit(cluster, shared_dir):
    """Two sweeps side by side. In one, `scancel` of a running job, with accounting off (`sacct`
    fails, as on a cluster without slurmdbd): the sweep waits for its
    other jobs, names the cancelled one in one line, ends its run KILLED and exits with 1; the
    same command again computes that job alone. In the other, a job reaches its time limit:
    submitit signals it `signal_delay_s` before, and the job records itself failed with that
    reason, its run FAILED, the sweep counting it failed."""
    # SLURM sends submitit's signal at the first of its checks (every 30 s) that finds less
    # than `signal_delay_s` plus that period left: 60-90 s into a two-minute limit, while the
    # job waits its 600 s. (With a one-minute limit it can come before submitit's handler is
    # in place, and the job dies of it without a result: then it is reported lost.)
    limited = toy_sweep(
        "timeout", 600, "hydra.launcher.timeout_min=2", "hydra.launcher.signal_delay_s=30",
        "hydra.launcher.name=limited", seeds="0",
    )  # fmt: skip
    timed = pipeline("run", *limited, cwd=shared_dir, env=cluster.env(), background=True)
    env = cluster.env()
    probe = subprocess.run(["sacct"], env=subprocess_env(env), capture_output=True, text=True)
    assert probe.returncode != 0 and "accounting storage is disabled" in probe.stderr
    client = MlflowClient(tracking_uri=cluster.tracking_uri)
    args = toy_sweep("cancel", 12)
    first = pipeline("run", *args, cwd=shared_dir, env=env, background=True)
    wait_until(lambda: running(client, "cancel", "seed=1"), "the job of seed=1 ran", first)
    queue = cluster.slurm("squeue", "-h", "-r", "-o", "%i %j").split("\n")
    array = next(line.split()[0] for line in queue if line.endswith(" run"))
    cancelled = array.split("_")[0] + "_1"  # the job of seed=1: the sweep's second
    cluster.slurm("scancel", cancelled)
    out, err = first.communicate()
    assert first.returncode == 1, out + err
    assert f"error: SLURM job {cancelled} (study.width=64 seed=1 " in err, err
    assert "ended CANCELLED without its result" in err
    assert "4 jobs, 3 computed (0 failed), 0 cached" in out
    assert "Bypassing sacct" not in out + err and "Traceback" not in err
    runs = child_runs(client, "cancel")
    assert sorted(r.info.status for r in runs) == ["FINISHED"] * 3 + ["KILLED"]
    killed = next(r for r in runs if r.info.status == "KILLED")
    assert "seed=1" in killed.data.tags["widthlab.key"]
    assert "CANCELLED" in killed.data.tags["widthlab.failure"]

    again = pipeline("run", *args, cwd=shared_dir, env=cluster.env())
    assert again.returncode == 0, again.stderr[-2000:]
    assert "4 jobs, 1 computed (0 failed), 3 cached" in again.stdout, again.stdout
    runs = child_runs(client, "cancel")
    finished = [r.data.tags["widthlab.key"] for r in runs if r.info.status == "FINISHED"]
    assert len(finished) == len(set(finished)) == 4
    assert not [r for r in runs if r.info.status == "RUNNING"]
    assert len(list((shared_dir / "res_cancel").rglob("records/main/*.json"))) == 4
    print(
        f"\nscancel {cancelled} mid-sweep: exit 1 naming it, its run KILLED, 3 of 4 jobs "
        "FINISHED; the same command again: 1 computed, 3 cached, 4 FINISHED runs, none RUNNING"
    )

    out, err = timed.communicate()
    assert timed.returncode == 0, out + err
    assert "1 job, 1 computed (1 failed), 0 cached" in out, out
    record = json.loads(
        (shared_dir / "res_timeout/toy/records/main/seed=0,study.width=64.json").read_text()
    )
    assert record["status"] == "failed" and "timed-out" in record["reason"], record["reason"]
    (run,) = child_runs(client, "timeout")
    assert run.info.status == "FAILED" and "timed-out" in run.data.tags["widthlab.failure"]
    print(
        f"a job at timeout_min=2 (signal_delay_s=30), signalled by SLURM: recorded failed "
        f"({record['reason']}), its run FAILED"
    )


def job_logs(output: str, cwd: Path) -> str:
    """The jobs' own logs of the sweep whose output is `output`."""
    sweep = cwd / re.search(r"logs in (\S+?)/?$", output, re.M).group(1)
    return "".join(p.read_text() for p in sweep.glob("*/*.log"))


def test_a_tracking_server_stopped_mid_sweep_loses_no_result(cluster, shared_dir):
    """Two sweeps side by side when the server stops while all their jobs run, and starts
    again some 20 s later. In one, the jobs' calls wait (MLflow's client retries, backing off
    4, 8, 16 … s) and every job logs everything, once; the jobs' logs and their records'
    `tracking_seconds` show the wait. In the other, the jobs' client retries no more
    (MLFLOW_HTTP_REQUEST_MAX_RETRIES=0: a server down longer than the retries' four minutes):
    each job keeps its result in its record, which says its tracking was lost; the sweep
    warns and ends their runs KILLED; the same command again computes and logs those jobs."""
    client = MlflowClient(tracking_uri=cluster.tracking_uri)
    gone_args = toy_sweep("gone", 12, "++hydra.job.env_set.MLFLOW_HTTP_REQUEST_MAX_RETRIES=0")
    waits = pipeline("run", *toy_sweep("restart", 12), cwd=shared_dir, env=cluster.env(),
                     background=True)  # fmt: skip
    gone = pipeline("run", *gone_args, cwd=shared_dir, env=cluster.env(), background=True)
    both = lambda: len(running(client, "restart")) + len(running(client, "gone")) == 8  # noqa: E731
    wait_until(both, "eight jobs ran at once", waits, gone)
    cluster.stop_tracking_server()
    stopped = time.time()
    folder = shared_dir / "res_gone" / "toy" / "records" / "main"
    wait_until(lambda: len(list(folder.glob("*.json"))) == 4, "`gone` wrote its records", gone)
    cluster.start_tracking_server()
    down = time.time() - stopped

    out, err = waits.communicate()
    assert waits.returncode == 0, out + err
    assert "4 jobs, 4 computed (0 failed), 0 cached" in out, out
    runs = child_runs(client, "restart")
    assert sorted(r.info.status for r in runs) == ["FINISHED"] * 4
    for run in runs:
        history = [client.get_metric_history(run.info.run_id, k) for k in run.data.metrics]
        assert sorted(run.data.metrics) == ["distance", "seconds", "width"]
        assert [len(h) for h in history] == [1, 1, 1]
    restarted = shared_dir / "res_restart" / "toy" / "records" / "main"
    saved = [json.loads(p.read_text()) for p in restarted.glob("*.json")]
    assert len(saved) == 4 and not [r for r in saved if "tracking_lost" in r]
    waited = sorted(r["timing"]["tracking_seconds"] for r in saved)
    assert waited[0] > 10  # each waited
    print(
        f"\ntracking server down {down:.0f} s: 4 jobs waited {waited[0]:.0f}-{waited[-1]:.0f} s "
        "in MLflow's retries and logged everything once;",
        end=" ",
    )
    assert "Retrying" in job_logs(out, shared_dir)  # urllib3's lines, from MLflow's client

    out, err = gone.communicate()
    assert gone.returncode == 0, out + err
    assert "4 jobs, 4 computed (0 failed), 0 cached" in out, out
    assert "warning: 4 jobs could not log to MLflow (tracking lost" in err, err
    saved = [json.loads(p.read_text()) for p in folder.glob("*.json")]
    assert {r["status"] for r in saved} == {"ok"} and all(r["tracking_lost"] for r in saved)
    assert sorted(r.info.status for r in child_runs(client, "gone")) == ["KILLED"] * 4
    print(
        "4 jobs without retries kept their results, records say tracking_lost, runs KILLED;",
        end=" ",
    )
    again = pipeline("run", *gone_args, cwd=shared_dir, env=cluster.env())
    assert again.returncode == 0, again.stderr[-2000:]
    assert "4 jobs, 4 computed (0 failed), 0 cached" in again.stdout, again.stdout
    statuses = sorted(r.info.status for r in child_runs(client, "gone"))
    assert statuses == ["FINISHED"] * 4 + ["KILLED"] * 4
    assert not [p for p in folder.glob("*.json") if "tracking_lost" in p.read_text()]
    print("the same command again computed and logged those 4")
