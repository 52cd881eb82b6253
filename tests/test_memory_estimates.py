"""Each study's memory estimate against the peak resident memory its job really reaches,
at two sizes, each job alone in a fresh process: within a factor of 2."""

import json

import pytest

pytestmark = pytest.mark.slow

# (study config, overrides): two sizes per job kind, large enough that the job's own memory
# (≥ ~100 MB) dominates the noise of the process's baseline.
SIZES = [
    ("ntk_convergence", ["model.width=2048", "model.depth=3"]),
    ("ntk_convergence", ["model.width=4096", "model.depth=3"]),
    ("ntk_convergence/mc", ["model.width=128", "model.depth=3", "study.mc.networks=512"]),
    ("ntk_convergence/mc", ["model.width=512", "model.depth=3", "study.mc.networks=512"]),
    ("ntk_convergence/circle", ["study.circle.width=4000", "study.circle.seeds={4000: 1}"]),
    ("ntk_convergence/circle", ["study.circle.width=6000", "study.circle.seeds={6000: 1}"]),
    ("double_descent_rf/digits", ["study.width_ratios=[0.5,2,20]"]),
    ("double_descent_rf/digits", ["study.width_ratios=[0.5,2,60]"]),
    ("double_descent_mlp", ["model.width=8192", "train.max_steps=5"]),
    ("double_descent_mlp", ["model.width=32768", "train.max_steps=5"]),
    ("lazy_training", ["model.width=2048", "model.depth=2", "study.steps=3"]),
    ("lazy_training", ["model.width=4096", "model.depth=2", "study.steps=3"]),
]


@pytest.mark.parametrize(("study", "overrides"), SIZES, ids=[f"{s}-{o[0]}" for s, o in SIZES])
def test_the_estimate_is_within_2x_of_the_measured_peak(
    run_pipeline, smoke_data, tmp_path, study, overrides
):
    proc = run_pipeline(
        "run",
        f"study={study}",
        *overrides,
        "profile=smoke",
        "tracking=off",
        f"paths.data_dir={smoke_data}",
        "paths.results_dir=out",
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    (path,) = (tmp_path / "out").rglob("records/*/*.json")
    record = json.loads(path.read_text())
    assert record["status"] == "ok", record.get("reason")
    estimate = record["memory"]["estimate_mb"]
    measured = record["timing"]["process_peak_rss_mb"] - record["timing"]["baseline_rss_mb"]
    assert measured > 50, "too small a job to compare"
    assert 0.5 <= estimate / measured <= 2.0, (estimate, measured)
