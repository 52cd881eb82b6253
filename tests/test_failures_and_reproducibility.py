"""End to end through the entry points: fail fast and write nothing, identical reruns,
concurrent workers on a brand-new tracking store."""

import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest
from conftest import REPO
from mlflow import MlflowClient

pytestmark = pytest.mark.slow

# (entry point, arguments, the start of the message on stderr's last line)
BAD_RUNS = [
    ("data", ["data=teacher", "data.noise=-1.0"], "error: data.noise=-1.0 is not allowed"),
    ("ntk_convergence", ["study=ntk_convergence", "model.depth=0"],
     "error: model.depth=0 is not allowed"),
    ("random_features", ["study=double_descent_rf", "study.ridges=[-1.0]"],
     "error: study.ridges[0]=-1.0 is not allowed"),
    # A sweep whose third job is bad: caught before the first job runs.
    ("ntk_convergence", ["-m", "study=ntk_convergence", "model.width=16,32,0"],
     "error: model.width=0 is not allowed"),
    ("double_descent_mlp", ["study=double_descent_mlp", "train.lr=0"],
     "error: train.lr=0 is not allowed"),
    ("double_descent_mlp", ["study=double_descent_mlp", "train.optimizer=lbfgs"],
     "error: train.optimizer='lbfgs' is not allowed"),
    ("double_descent_mlp", ["study=double_descent_mlp", "data.label_noise=1.5"],
     "error: data.label_noise=1.5 is not allowed"),
    ("lazy_training", ["study=lazy_training", "train=adam"],
     "error: train.optimizer='adam' is not allowed"),
    ("lazy_training", ["-m", "study=lazy_training", "model.width=64,0"],
     "error: model.width=0 is not allowed"),
    ("aggregate", ["study=no_such_study"], None),  # Hydra lists the available options
]  # fmt: skip


@pytest.mark.parametrize(("job", "args", "expected"), BAD_RUNS)
def test_bad_input_stops_at_once_and_writes_nothing(run_pipeline, tmp_path, job, args, expected):
    proc = run_pipeline(job, *args, "profile=smoke", f"tracking.uri=sqlite:///{tmp_path}/s.db")
    assert proc.returncode != 0
    if expected:
        assert proc.returncode == 2
        assert proc.stderr.strip().splitlines()[-1].startswith(expected), proc.stderr
    else:
        assert "no_such_study" in proc.stderr and "ntk_convergence" in proc.stderr
    written = {p.name for p in tmp_path.iterdir()} - {"outputs"}  # Hydra's own logs
    assert written == set(), written


def run(args, cwd, env=None):
    import os

    full_env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    return subprocess.run([sys.executable, *args], cwd=cwd, env={**full_env, **(env or {})},
                          capture_output=True, text=True, timeout=600)  # fmt: skip


def test_same_config_twice_gives_identical_records(tmp_path):
    data = tmp_path / "data"
    assert run([str(REPO / "pipelines" / "data.py"), "-m", "data=sphere_linear,digits,digits_noisy",
                "profile=smoke", "tracking=off", f"paths.data_dir={data}"],
               tmp_path).returncode == 0  # fmt: skip
    jobs = [
        ("random_features", ["study=double_descent_rf", "study.width_ratio=2", "seed=1"]),
        ("ntk_convergence", ["study=ntk_convergence", "model.width=64", "model.depth=2"]),
        # Lightning training, minibatch SGD: the init and the minibatch order from the seed
        (
            "double_descent_mlp",
            [
                "study=double_descent_mlp",
                "model.width=20",
                "train=sgd",
                "train.max_steps=40",
                "seed=1",
            ],
        ),
    ]
    for attempt in ("a", "b"):
        for job, args in jobs:
            proc = run([str(REPO / "pipelines" / f"{job}.py"), *args, "profile=smoke",
                        "tracking=off", f"paths.data_dir={data}",
                        f"paths.results_dir={tmp_path / attempt}"], tmp_path)  # fmt: skip
            assert proc.returncode == 0, proc.stderr
    records = sorted((tmp_path / "a").rglob("*.json"))
    assert len(records) == 3
    for path in records:
        a = json.loads(path.read_text())
        b = json.loads((tmp_path / "b" / path.relative_to(tmp_path / "a")).read_text())
        a.pop("timing"), b.pop("timing")
        assert json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)
        assert a["status"] == "ok" and a["provenance"]["git_commit"]
        assert a["config"]["seed"] == b["config"]["seed"]


def test_four_workers_on_a_brand_new_sqlite_store_lose_no_run(tmp_path):
    uri = f"sqlite:///{tmp_path}/fresh.db"

    def worker(i):
        return run([str(REPO / "pipelines" / "data.py"), "data=teacher", "profile=smoke",
                    f"data.seed={i}", f"paths.data_dir={tmp_path / str(i)}",
                    f"tracking.uri={uri}"], tmp_path)  # fmt: skip

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(worker, range(4)))
    assert [r.returncode for r in results] == [0] * 4, [r.stderr[-500:] for r in results]
    client = MlflowClient(tracking_uri=uri)
    runs = client.search_runs([client.get_experiment_by_name("data").experiment_id])
    assert sorted(r.data.params["data.seed"] for r in runs) == ["0", "1", "2", "3"]
    assert {r.info.status for r in runs} == {"FINISHED"}


def test_a_missing_data_file_stops_the_sweep_and_names_the_stage(run_pipeline, tmp_path):
    uri = f"sqlite:///{tmp_path}/s.db"
    proc = run_pipeline("random_features", "-m", "study=double_descent_rf", "profile=smoke",
                        f"paths.data_dir={tmp_path}/nowhere", f"tracking.uri={uri}")  # fmt: skip
    assert proc.returncode == 2
    last = proc.stderr.strip().splitlines()[-1]
    assert (
        last.startswith("error: data set 'sphere_linear' not found") and "dvc repro data@" in last
    )
    client = MlflowClient(tracking_uri=uri)
    runs = client.search_runs([client.get_experiment_by_name("double_descent_rf").experiment_id])
    # The sweep stopped at its first job: one FAILED child, the parent closed as KILLED.
    statuses = sorted((r.data.tags.get("widthlab.stage"), r.info.status) for r in runs)
    assert statuses == [("double_descent_rf", "FAILED"), ("sweep", "KILLED")]
