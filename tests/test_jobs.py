"""The study-job runner: fixed record paths, failures recorded without stopping, summaries."""

import json
import math

import numpy as np
import pytest
from omegaconf import OmegaConf

from widthlab.jobs import run_study_job
from widthlab.summaries import mean_std_curves, summarize_ntk_convergence, tidy_rows


def study_cfg(tmp_path, **job):
    return OmegaConf.create({
        "paths": {"results_dir": str(tmp_path)},
        "tracking": {"enabled": False},
        "profile": {"name": "smoke", "data": {"x": {"n": 1}}},
        "study": {"name": "demo", "job_keys": ["model.width", "seed"]},
        "model": {"width": job.get("width", 8)},
        "seed": job.get("seed", 0),
    })  # fmt: skip


def test_record_at_a_fixed_path_with_identity_hash_and_provenance(tmp_path):
    rec = run_study_job(study_cfg(tmp_path, width=16, seed=2), lambda cfg: {"d": 0.5})
    path = tmp_path / "demo" / "records" / "model.width=16,seed=2.json"
    assert json.loads(path.read_text()) == rec
    assert rec["status"] == "ok" and rec["metrics"] == {"d": 0.5}
    assert rec["job"] == {"model.width": 16, "seed": 2}
    assert rec["config"]["profile"] == {"name": "smoke"}
    assert "paths" not in rec["config"] and "tracking" not in rec["config"]
    assert {"git_commit", "torch", "numpy", "widthlab"} <= set(rec["provenance"])
    other = run_study_job(study_cfg(tmp_path, width=32, seed=2), lambda cfg: {"d": 0.5})
    assert other["config_hash"] != rec["config_hash"]


def test_resume_reuses_a_record_only_for_the_same_config_and_code(tmp_path, monkeypatch):
    calls = []

    def measure(cfg):
        calls.append(1)
        return {"d": 0.5}

    first = run_study_job(study_cfg(tmp_path), measure)
    assert run_study_job(study_cfg(tmp_path), measure) == first and len(calls) == 1
    run_study_job(study_cfg(tmp_path, seed=1), measure)  # another config
    assert len(calls) == 2
    monkeypatch.setattr("widthlab.jobs.code_hash", lambda *files: "changed-code")
    again = run_study_job(study_cfg(tmp_path), measure)  # same config, other code
    assert len(calls) == 3 and again["code_hash"] == "changed-code"


def test_a_failing_job_is_recorded_and_does_not_raise(tmp_path):
    def diverge(cfg):
        raise FloatingPointError("loss is nan at step 3")

    rec = run_study_job(study_cfg(tmp_path), diverge)
    assert rec["status"] == "failed"
    assert rec["reason"] == "FloatingPointError: loss is nan at step 3"
    saved = json.loads((tmp_path / "demo" / "records" / "model.width=8,seed=0.json").read_text())
    assert saved["status"] == "failed"


def fake_ntk_records(slope=-0.5, seeds=3):
    rng = np.random.default_rng(0)
    records = []
    for width in (64, 128, 256, 512, 1024):
        for seed in range(seeds):
            d = 2.0 * width**slope * math.exp(0.05 * rng.standard_normal())
            records.append({
                "key": f"w{width}s{seed}", "status": "ok",
                "job": {"model.width": width, "model.depth": 1, "model.activation": "relu",
                        "seed": seed},
                "metrics": {"ntk_distance": d, "nngp_distance": 2 * d},
                "timing": {"seconds": 0.1},
            })  # fmt: skip
    records.append({
        "key": "broken", "status": "failed", "reason": "boom", "metrics": {},
        "job": {"model.width": 2048, "model.depth": 1, "model.activation": "relu", "seed": 0},
    })  # fmt: skip
    return records


def test_ntk_summary_recovers_the_slope_and_lists_failures():
    summary = summarize_ntk_convergence(fake_ntk_records(slope=-0.5))
    fit = summary["slopes"]["ntk_depth1_relu"]
    assert fit["slope"] == pytest.approx(-0.5, abs=0.05)
    assert fit["ci_low"] < fit["slope"] < fit["ci_high"]
    assert fit["n"] == 15 and fit["widths"] == [64, 128, 256, 512, 1024]
    assert summary["n_failed"] == 1 and summary["failed"] == [{"key": "broken", "reason": "boom"}]
    assert "mc_nngp_depth1_relu" not in summary["slopes"]


def test_curves_are_mean_and_sample_sd_over_seeds():
    rows = tidy_rows(fake_ntk_records())
    curves = mean_std_curves(rows, ("depth", "activation"), "width", ["ntk_distance"])
    assert [c["width"] for c in curves] == [64, 128, 256, 512, 1024]  # failed 2048 left out
    values = [r["ntk_distance"] for r in rows if r["width"] == 256]
    assert curves[2]["ntk_distance_mean"] == pytest.approx(np.mean(values))
    assert curves[2]["ntk_distance_std"] == pytest.approx(np.std(values, ddof=1))
    assert curves[2]["ntk_distance_count"] == 3
