"""The loop after the first run: a change recomputes only the jobs that read it, a dry run
lists a sweep without running it, a cached job is not launched, a sweep shows one progress
bar, and a stage's outputs are replaced only as a whole set."""

import json
import os
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from widthlab.runtime.records import atomic_write_set

SMOKE = ["profile=smoke", "tracking=off", "paths.data_dir=data"]


def records(folder: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(folder)): p.read_bytes()
        for p in sorted(folder.glob("results/*/records/*/*.json"))
        if p.parent.name != "sweeps"
    }


def use_data(tmp_path: Path, smoke_data: Path) -> None:
    (tmp_path / "data").symlink_to(smoke_data)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("study", "change", "recomputed"),
    [
        # max_margin's 10 smoke jobs in five sweeps: only the separability sweep's 2 read
        # the number of random labelings (the case: 4 of the laptop's 17 jobs).
        ("max_margin", "study.separability.draws=30", "separability/"),
        # ntk_convergence's 34: only the 8 Monte Carlo NNGP jobs read the number of networks.
        ("ntk_convergence", "study.mc.networks=48", "mc_nngp/"),
    ],
)
def test_a_change_recomputes_exactly_the_jobs_that_read_it(
    run_pipeline, tmp_path, smoke_data, study, change, recomputed
):
    use_data(tmp_path, smoke_data)
    first = run_pipeline("stage", f"study={study}", *SMOKE)
    assert first.returncode == 0, first.stderr[-2000:]
    before = records(tmp_path)
    again = run_pipeline("stage", f"study={study}", *SMOKE, change)
    assert again.returncode == 0, again.stderr[-2000:]
    after = records(tmp_path)
    changed = {k for k in after if after[k] != before.get(k)}
    assert changed and changed == {k for k in after if f"/records/{recomputed}" in k}
    assert set(after) == set(before)
    # The others were not launched at all: their sweeps say so, in one line each.
    computed = sum(int(w.split()[0]) for w in again.stdout.split("jobs, ")[1:] if "computed" in w)
    assert computed == len(changed), again.stdout


def test_a_dry_run_lists_the_jobs_and_writes_nothing(run_pipeline, tmp_path, smoke_data):
    use_data(tmp_path, smoke_data)
    sweep = ["-m", "study=max_margin/separability", "profile=smoke", "paths.data_dir=data"]
    listed = run_pipeline("run", *sweep, "dry_run=true")
    assert listed.returncode == 0, listed.stderr
    assert "max_margin/separability: 2 jobs, 0 cached, 2 to run" in listed.stdout
    assert "seed=0  runs" in listed.stdout and "seed=1  runs" in listed.stdout
    # Nothing computed, logged or written: no records, no MLflow store, no Hydra folders.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]

    assert run_pipeline("run", *sweep, "tracking=off").returncode == 0
    listed = run_pipeline("run", *sweep, "dry_run=true", "study.separability.draws=30")
    assert "2 jobs, 0 cached, 2 to run" in listed.stdout  # what a change would recompute
    listed = run_pipeline("run", *sweep, "dry_run=true")
    assert "2 jobs, 2 cached, 0 to run" in listed.stdout and "seed=0  cached" in listed.stdout

    # Hydra's own --cfg cannot show a sweep: one line says what can.
    refused = run_pipeline("run", *sweep, "--cfg", "job")
    assert refused.returncode == 2 and "dry_run=true" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1


def test_a_sweep_shows_one_bar_and_no_line_per_job(run_pipeline, tmp_path, smoke_data):
    use_data(tmp_path, smoke_data)
    ran = run_pipeline("run", "-m", "study=ntk_convergence", *SMOKE)
    assert ran.returncode == 0, ran.stderr
    out = ran.stdout + ran.stderr
    assert "#0 :" not in out and "model.width=" not in out  # Hydra's launch lines
    assert "ntk_convergence ntk_convergence: 24 jobs, 24 computed (0 failed), 0 cached" in out
    launch = next(tmp_path.glob("outputs/multirun/run/*/launch.log")).read_text()
    assert launch.count("#") >= 24  # they went to the sweep folder's log instead
    again = run_pipeline("run", "-m", "study=ntk_convergence", *SMOKE)
    assert "every one of 24 jobs is cached" in again.stdout


def fake_plan(tmp_path: Path, sizes: list[float], past: list[float | None]):
    """A plan of jobs of the given memory sizes, with a record of `past` seconds where given."""
    plans, resolved = [], []
    for i, (size, seconds) in enumerate(zip(sizes, past, strict=True)):
        path = tmp_path / f"job{i}.json"
        if seconds is not None:
            path.write_text(json.dumps({"status": "ok", "timing": {"seconds": seconds}}))
        plans.append(SimpleNamespace(kind="k", key=f"job{i}", path=path))
        resolved.append({"size": size})
    job = SimpleNamespace(peak_memory=lambda cfg: cfg["size"])
    study = SimpleNamespace(job=lambda kind: job)
    return SimpleNamespace(
        study=study,
        study_name="s",
        sweep="s",
        plans=plans,
        resolved=resolved,
        cached=[False] * len(plans),
    )


def test_estimates_fit_a_fixed_cost_and_a_cost_per_byte_to_the_timed_jobs(tmp_path):
    from widthlab.runtime.progress import estimates

    plan = fake_plan(tmp_path, [1e6, 3e6, 4e6, 8e6], [3.0, 7.0, None, None])
    seconds, weights = estimates(plan)
    assert seconds == pytest.approx([3.0, 7.0, 9.0, 17.0])  # 1 s + 2 s per MB
    assert weights == pytest.approx(seconds)
    seconds, weights = estimates(fake_plan(tmp_path / "..", [1e6, 4e6], [None, None]))
    assert seconds == [None, None]
    assert weights == pytest.approx([3.5e6, 6.5e6])  # a fixed cost of the mean size each


def test_the_time_left_counts_each_jobs_fixed_cost_and_size(tmp_path):
    """The widest jobs start first. Once two sizes have finished, the rest is priced by the
    cost model they fit: here 1 s + 2 s per MB, so the three 1-MB jobs left are 9 s of work
    against the 20 s done, and the 80 wall seconds spent give 36 s left (counting jobs, 3 of
    5 left would say 120 s; scaling by size alone, 3/11 of the work, 30 s)."""
    from widthlab.runtime.progress import SweepProgress

    plan = fake_plan(tmp_path, [8e6, 1e6, 1e6, 1e6, 1e6], [None] * 5)
    progress = SweepProgress(plan, launched=[0, 1, 2, 3, 4])
    progress.bar = SimpleNamespace(show=lambda done, status: None, close=lambda: None)
    progress.started = time.time() - 80.0
    progress.start_ns = time.time_ns() - 1
    for i, seconds, status in ((0, 17.0, "ok"), (1, 3.0, "failed")):
        record = {"status": status, "timing": {"seconds": seconds}}
        plan.plans[i].path.write_text(json.dumps(record))
    progress.poll()
    assert progress.computed == 2 and progress.failed == 1 and progress.pending == [2, 3, 4]
    assert progress.eta() == pytest.approx(80.0 * 9 / 20, rel=0.01)


def test_a_rerun_prices_each_job_left_by_its_own_past_seconds(tmp_path):
    """Every job has a record of an earlier run (the loop of changing a value and rerunning):
    the time left is those seconds, even while only one size has finished (no cost model
    yet). The four 1-MB jobs took 5 s each last time; the 8-MB job took 20 s now, as the
    80 wall seconds spent: 20 s of work left at that rate."""
    from widthlab.runtime.progress import SweepProgress

    plan = fake_plan(tmp_path, [8e6, 1e6, 1e6, 1e6, 1e6], [30.0, 5.0, 5.0, 5.0, 5.0])
    progress = SweepProgress(plan, launched=[0, 1, 2, 3, 4])
    progress.bar = SimpleNamespace(show=lambda done, status: None, close=lambda: None)
    progress.started = time.time() - 80.0
    progress.start_ns = time.time_ns() - 1
    plan.plans[0].path.write_text(json.dumps({"status": "ok", "timing": {"seconds": 20.0}}))
    progress.poll()
    assert progress.pending == [1, 2, 3, 4]
    assert progress.eta() == pytest.approx(80.0 * 20 / 20, rel=0.01)


def test_a_set_of_outputs_that_cannot_be_written_whole_leaves_the_old_set(tmp_path, monkeypatch):
    old = {tmp_path / "summary.json": b"old summary", tmp_path / "figures" / "a.png": b"old a"}
    atomic_write_set(old)
    real_fsync, calls = os.fsync, []

    def full_disk(fd):  # the second file of the set does not fit
        calls.append(fd)
        if len(calls) == 2:
            raise OSError(28, "No space left on device")
        return real_fsync(fd)

    monkeypatch.setattr(os, "fsync", full_disk)
    new = {tmp_path / "summary.json": b"new summary", tmp_path / "figures" / "a.png": b"new a"}
    with pytest.raises(OSError, match="No space"):
        atomic_write_set(new)
    assert {p: p.read_bytes() for p in old} == old  # not even the first file is new
    # and no temporary file is left beside them
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == ["a.png", "summary.json"]
