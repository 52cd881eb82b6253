"""The same config gives the same records; concurrent writers lose nothing and duplicate
nothing: four workers on a brand-new SQLite store, two identical sweeps racing on one
records folder."""

import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest
from conftest import REPO, subprocess_env
from mlflow import MlflowClient

pytestmark = pytest.mark.slow


def run(args, cwd, env=None):
    return subprocess.run(
        [sys.executable, *args],
        cwd=cwd,
        env=subprocess_env(env),
        capture_output=True,
        text=True,
        timeout=900,
    )


def entry(name: str) -> str:
    return str(REPO / "pipelines" / f"{name}.py")


def records(folder):
    out = {}
    for path in sorted(folder.rglob("records/*/*.json")):
        if path.parent.name == "sweeps":
            continue
        record = json.loads(path.read_text())
        record.pop("timing")
        out[str(path.relative_to(folder))] = record
    return out


def test_same_config_twice_gives_identical_records(tmp_path, smoke_data):
    jobs = [
        ["study=double_descent_rf", "seed=1"],
        ["study=ntk_convergence", "model.width=64", "model.depth=2"],
        # Lightning training, minibatch SGD: the init and the minibatch order from the seed
        ["study=double_descent_mlp", "model.width=20", "train=sgd", "train.max_steps=40", "seed=1"],
    ]
    for attempt in ("a", "b"):
        for args in jobs:
            proc = run(
                [
                    entry("run"),
                    *args,
                    "profile=smoke",
                    "tracking=off",
                    f"paths.data_dir={smoke_data}",
                    f"paths.results_dir={tmp_path / attempt}",
                ],
                tmp_path,
            )
            assert proc.returncode == 0, proc.stderr[-2000:]
    a, b = records(tmp_path / "a"), records(tmp_path / "b")
    assert len(a) == 3 and a == b
    assert all(r["status"] == "ok" and r["provenance"]["git_commit"] for r in a.values())


def test_four_workers_on_a_brand_new_sqlite_store_lose_no_run(tmp_path):
    uri = f"sqlite:///{tmp_path}/fresh.db"

    def worker(i):
        return run(
            [
                entry("data"),
                "data=teacher",
                "profile=smoke",
                f"data.seed={i}",
                f"paths.data_dir={tmp_path / str(i)}",
                f"tracking.uri={uri}",
            ],
            tmp_path,
        )

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(worker, range(4)))
    assert [r.returncode for r in results] == [0] * 4, [r.stderr[-500:] for r in results]
    client = MlflowClient(tracking_uri=uri)
    runs = client.search_runs([client.get_experiment_by_name("data").experiment_id])
    assert sorted(r.data.params["data.seed"] for r in runs) == ["0", "1", "2", "3"]
    assert {r.info.status for r in runs} == {"FINISHED"}


def test_two_identical_concurrent_sweeps_finish_each_job_once(tmp_path, smoke_data):
    uri = f"sqlite:///{tmp_path}/s.db"
    sweep = [
        entry("run"),
        "-m",
        "study=lazy_training",
        "profile=smoke",
        f"tracking.uri={uri}",
        f"paths.data_dir={smoke_data}",
    ]
    # The store exists before the race (its creation is serialized anyway).
    assert (
        run(
            [
                entry("data"),
                "data=teacher",
                "profile=smoke",
                f"tracking.uri={uri}",
                f"paths.data_dir={tmp_path}/scratch",
            ],
            tmp_path,
        ).returncode
        == 0
    )
    with ThreadPoolExecutor(2) as pool:
        results = list(
            pool.map(lambda _: run([*sweep, "paths.results_dir=shared"], tmp_path), range(2))
        )
    assert [r.returncode for r in results] == [0, 0], [r.stderr[-1000:] for r in results]
    alone = run([*sweep, "paths.results_dir=alone", "tracking=off"], tmp_path)
    assert alone.returncode == 0, alone.stderr[-1000:]
    shared, single = records(tmp_path / "shared"), records(tmp_path / "alone")
    assert len(shared) == 12
    assert {k.replace("shared", ""): v for k, v in shared.items()} == {
        k.replace("alone", ""): v for k, v in single.items()
    }
    client = MlflowClient(tracking_uri=uri)
    runs = client.search_runs(
        [client.get_experiment_by_name("lazy_training").experiment_id], max_results=1000
    )
    children = [r for r in runs if "widthlab.key" in r.data.tags]
    keys = [r.data.tags["widthlab.key"] for r in children if r.info.status == "FINISHED"]
    assert sorted(keys) == sorted(set(keys)) and len(keys) == 12  # one finished run per job
    assert not [r for r in runs if r.info.status == "RUNNING"]
    # A parent left without children (the loser of the race) is deleted, not left empty.
    parents = [r for r in runs if r.data.tags.get("widthlab.role") == "sweep"]
    assert all(
        any(c.data.tags.get("mlflow.parentRunId") == p.info.run_id for c in children)
        for p in parents
    )
