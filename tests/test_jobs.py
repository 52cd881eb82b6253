"""The job runner on the toy study: fixed record paths, resume by config and code, failures
recorded without stopping, and the tables every summary starts from."""

import json
import threading

import numpy as np
import pytest
import toy_study

from widthlab.runtime import jobs, usage
from widthlab.runtime.jobs import run_job, run_study_job
from widthlab.runtime.schemas import validate_config
from widthlab.runtime.study import load_study
from widthlab.runtime.tables import mean_std_curves, tidy_rows


def toy_cfg(compose_cfg, tmp_path, *overrides):
    return compose_cfg("study=toy", f"paths.results_dir={tmp_path}", *overrides)


def test_record_at_a_fixed_path_with_identity_hash_and_provenance(compose_cfg, tmp_path):
    rec = run_job(toy_cfg(compose_cfg, tmp_path, "study.width=256", "seed=2"))
    path = tmp_path / "toy" / "records" / "main" / "seed=2,study.width=256.json"
    assert json.loads(path.read_text()) == rec
    assert rec["status"] == "ok" and rec["job"] == {"study.width": 256, "seed": 2}
    assert rec["metrics"]["width"] == 256 and rec["config"]["profile"] == {"name": "smoke"}
    assert "paths" not in rec["config"] and "tracking" not in rec["config"]
    assert {"git_commit", "torch", "numpy", "widthlab"} <= set(rec["provenance"])
    assert rec["memory"]["estimate_mb"] == pytest.approx(1e6 / 2**20, abs=0.1)
    assert rec["timing"]["device"] == "cpu" and "process_gpu_peak_mb" not in rec["timing"]
    other = run_job(toy_cfg(compose_cfg, tmp_path, "study.width=512", "seed=2"))
    assert other["config_hash"] != rec["config_hash"]


def test_resume_reuses_a_record_only_for_the_same_config_and_code(
    compose_cfg, tmp_path, monkeypatch
):
    calls = []
    original = toy_study.measure

    def counting(cfg):
        calls.append(1)
        return original(cfg)

    monkeypatch.setitem(
        toy_study.ToyStudy.jobs, "main", toy_study.Job(counting, "distance", groups=("study",))
    )
    first = run_job(toy_cfg(compose_cfg, tmp_path))
    assert run_job(toy_cfg(compose_cfg, tmp_path)) == first and len(calls) == 1
    run_job(toy_cfg(compose_cfg, tmp_path, "seed=1"))  # another config
    assert len(calls) == 2
    monkeypatch.setattr(jobs, "study_code_hash", lambda study_type: "changed-code")
    again = run_job(toy_cfg(compose_cfg, tmp_path))  # same config, other code
    assert len(calls) == 3 and again["code_hash"] == "changed-code"
    run_job(toy_cfg(compose_cfg, tmp_path, "resume=false"))
    assert len(calls) == 4


def test_a_failing_job_is_recorded_and_does_not_raise(compose_cfg, tmp_path, monkeypatch):
    def diverge(cfg):
        raise FloatingPointError("loss is nan at step 3")

    monkeypatch.setitem(toy_study.ToyStudy.jobs, "main", toy_study.Job(diverge, groups=("study",)))
    rec = run_job(toy_cfg(compose_cfg, tmp_path))
    assert rec["status"] == "failed"
    assert rec["reason"] == "FloatingPointError: loss is nan at step 3"
    saved = json.loads((tmp_path / "toy/records/main/seed=0,study.width=64.json").read_text())
    assert saved["status"] == "failed"


def test_a_job_claimed_by_another_process_is_computed_once(compose_cfg, tmp_path, monkeypatch):
    calls, gate = [], threading.Event()
    original = toy_study.measure

    def slow(cfg):
        calls.append(1)
        gate.wait(5)
        return original(cfg)

    monkeypatch.setitem(toy_study.ToyStudy.jobs, "main", toy_study.Job(slow, groups=("study",)))
    cfg = toy_cfg(compose_cfg, tmp_path)
    study = load_study(cfg.study._target_)
    resolved = validate_config(cfg, ("study",), study)
    results = []
    threads = [
        threading.Thread(target=lambda: results.append(run_study_job(study, resolved)))
        for _ in range(2)
    ]
    for t in threads:
        t.start()
    threading.Timer(0.5, gate.set).start()
    for t in threads:
        t.join(10)
    assert len(calls) == 1 and len(results) == 2 and results[0] == results[1]


def fake_records(seeds=3):
    rng = np.random.default_rng(0)
    out = []
    for width in (64, 256):
        for seed in range(seeds):
            conditions = {
                f"width={width},ridge={r:g}": {"err": float(rng.random())} for r in (0.0, 1e-3)
            }
            out.append(
                {
                    "key": f"w{width}s{seed}",
                    "status": "ok",
                    "job": {"seed": seed},
                    "metrics": {"n_train": 10, **conditions},
                }
            )
    out.append(
        {"key": "broken", "status": "failed", "reason": "boom", "metrics": {}, "job": {"seed": 9}}
    )
    return out


def test_conditions_become_rows_and_curves_carry_sd_and_se():
    rows = tidy_rows(fake_records())
    ok = [r for r in rows if r["status"] == "ok"]
    assert len(ok) == 2 * 3 * 2 and {r["ridge"] for r in ok} == {0, 0.001}
    assert {(r["width"], r["n_train"]) for r in ok} == {(64, 10), (256, 10)}
    curves = mean_std_curves(rows, ("ridge",), "width", ["err"])
    cell = [r["err"] for r in ok if r["width"] == 256 and r["ridge"] == 0]
    entry = next(c for c in curves if c["width"] == 256 and c["ridge"] == 0)
    assert entry["err_mean"] == pytest.approx(np.mean(cell))
    assert entry["err_std"] == pytest.approx(np.std(cell, ddof=1))
    assert entry["err_se"] == pytest.approx(np.std(cell, ddof=1) / np.sqrt(3))
    assert entry["err_count"] == 3


def test_a_study_whose_every_job_failed_gets_a_summary_and_no_figures(
    compose_cfg, tmp_path, monkeypatch
):
    from widthlab.runtime.aggregate import aggregate

    def diverge(cfg):
        raise FloatingPointError("loss is nan")

    monkeypatch.setitem(toy_study.ToyStudy.jobs, "main", toy_study.Job(diverge, groups=("study",)))
    for seed in (0, 1):
        assert run_job(toy_cfg(compose_cfg, tmp_path, f"seed={seed}"))["status"] == "failed"
    summary = aggregate(toy_cfg(compose_cfg, tmp_path))
    assert summary["n_jobs"] == summary["n_failed"] == 2 and summary["figures"] == {}
    folder = tmp_path / "toy"
    assert json.loads((folder / "summary.json").read_text())["n_failed"] == 2
    assert json.loads((folder / "metrics.json").read_text())["failed_jobs"] == 2
    assert not list((folder / "figures").glob("*.png"))


def test_memory_check_counts_the_jobs_a_parallel_launcher_runs_side_by_side(monkeypatch):
    import os

    from widthlab.runtime.errors import ResourceError
    from widthlab.runtime.preflight import check_memory, concurrent_jobs

    configs = [{"max_memory_gb": 1.0, "need": gib} for gib in (0.2, 0.6, 0.5)]
    estimate = lambda cfg: cfg["need"] * 2**30  # noqa: E731
    keys = ["a", "b", "c"]
    check_memory(configs, estimate, keys)  # one at a time: each fits in 1 GiB
    message = (r"^2 jobs side by side .* about 1\.1 GiB together \(largest: `b`\), more than "
               r"the 1\.0 GiB of max_memory_gb=1\.0")  # fmt: skip
    with pytest.raises(ResourceError, match=message):
        check_memory(configs, estimate, keys, concurrent=2)
    with pytest.raises(ResourceError, match=r"^job `b` needs about 0\.6 GiB"):
        check_memory([{**c, "max_memory_gb": 0.55} for c in configs], estimate, keys, 2)
    joblib = "hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher"
    monkeypatch.setattr(os, "cpu_count", lambda: 8)
    assert concurrent_jobs({"_target_": joblib, "n_jobs": -1}) == 8
    assert concurrent_jobs({"_target_": joblib, "n_jobs": -2}) == 7
    assert concurrent_jobs({"_target_": joblib, "n_jobs": 3}) == 3
    assert concurrent_jobs({"_target_": "hydra._internal.core_plugins.basic_launcher"}) == 1
    assert concurrent_jobs(None) == 1


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:A worker stopped:UserWarning")
@pytest.mark.parametrize("keep", [False, True])
def test_a_loky_worker_keeps_its_caches_only_once_the_job_runner_allows_it(keep):
    """loky restarts a worker whose memory grew by 300 MB since its first task; after
    `keep_worker_caches` (which every job calls) the same worker keeps a 400 MB cache. The
    first case shows the guard is real, so the second can fail."""
    from joblib.externals.loky import get_reusable_executor, process_executor

    from widthlab.runtime.usage import keep_worker_caches

    guard = process_executor._MAX_MEMORY_LEAK_SIZE
    assert guard <= 4 * 10**8  # loky's guard, as described
    keep_worker_caches()  # outside a worker: no effect
    assert process_executor._MAX_MEMORY_LEAK_SIZE == guard

    def first_task(allow):
        import os

        if allow:
            from widthlab.runtime.usage import keep_worker_caches

            keep_worker_caches()
        return os.getpid()

    def cache_400_mb():
        import os
        import sys
        import time

        time.sleep(1.1)  # loky measures at most once a second
        sys.modules["builtins"]._widthlab_test_cache = bytearray(b"\1" * (400 * 2**20))
        return os.getpid()

    def pid():
        import os

        return os.getpid()

    executor = get_reusable_executor(max_workers=1, reuse=False)
    try:
        pids = [executor.submit(first_task, keep).result(timeout=60)]
        pids.append(executor.submit(cache_400_mb).result(timeout=60))
        pids.append(executor.submit(pid).result(timeout=60))
    finally:
        executor.shutdown(wait=True)
    assert pids[0] == pids[1]
    assert (pids[2] == pids[0]) is keep


class FakeCuda:
    """torch.cuda as `devices.where_computed` reads it: two initialized GPUs whose allocators
    count `allocations[i]` since the last reset, device i peaking at i + 2 MiB."""

    def __init__(self, allocations):
        self.allocations = allocations
        self.resets = []

    def is_initialized(self):
        return True

    def device_count(self):
        return len(self.allocations)

    def reset_accumulated_memory_stats(self, i):
        self.resets.append(i)

    def reset_peak_memory_stats(self, i):
        self.resets.append(i)

    def memory_stats(self, i):
        return {"allocation.all.allocated": self.allocations[i]}

    def get_device_name(self, i):
        return f"Fake GPU {i}"

    def max_memory_allocated(self, i):
        return (i + 2) * 2**20


def test_a_record_says_where_its_job_computed(monkeypatch):
    """The device is observed, not read from `device`: the GPU that allocated since the job's
    reset is named with its own peak (here the second of two); GPUs that only hold an earlier
    job's tensors are not."""
    from widthlab.runtime import devices

    assert devices.where_computed() == {"device": "cpu"}  # this machine: CUDA never initialized
    used = FakeCuda(allocations=[0, 5])
    monkeypatch.setattr(devices.torch, "cuda", used)
    usage.reset_peak_rss()
    assert sorted(used.resets) == [0, 0, 1, 1]
    assert devices.where_computed() == {"device": "cuda:1 (Fake GPU 1)", "process_gpu_peak_mb": 3.0}
    monkeypatch.setattr(devices.torch, "cuda", FakeCuda(allocations=[0, 0]))
    assert devices.where_computed() == {"device": "cpu"}


def test_on_a_gpu_the_memory_check_counts_the_workers_sharing_it(monkeypatch):
    """device=auto on a machine with a GPU: the jobs' estimates, side by side, must fit in its
    free memory as well as in the host's (here 64 GiB of host memory, 10 GiB free on the GPU)."""
    import torch

    from widthlab.runtime import preflight
    from widthlab.runtime.errors import ResourceError

    monkeypatch.setattr(preflight, "available_memory", lambda: 64 * 2**30)
    configs = [{"device": "auto", "need": gib} for gib in (4.0, 4.5, 2.5)]
    estimate = lambda cfg: cfg["need"] * 2**30  # noqa: E731
    keys = ["a", "b", "c"]
    assert preflight.gpu_free_memory(configs[0]) is None  # no GPU here: the host check alone
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device: (10 * 2**30, 80 * 2**30))
    gpu = preflight.gpu_free_memory(configs[0])
    assert gpu == (10 * 2**30, "the free memory of cuda (device=auto)")
    preflight.check_memory(configs, estimate, keys, concurrent=3)  # the host has room
    preflight.check_memory(configs, estimate, keys, concurrent=2, gpu=gpu)  # 8.5 of 10 GiB
    message = (r"^3 jobs side by side .* about 11\.0 GiB together \(largest: `b`\), more than "
               r"the 10\.0 GiB of the free memory of cuda \(device=auto\): set "
               r"hydra\.launcher\.n_jobs lower, .* or run them on the CPU")  # fmt: skip
    with pytest.raises(ResourceError, match=message):
        preflight.check_memory(configs, estimate, keys, concurrent=3, gpu=gpu)
