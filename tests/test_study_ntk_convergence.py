"""ntk_convergence: the jobs against independent computations, and the verdicts on hand-made
records (slopes, the circle's ratio, the Monte-Carlo bias)."""

import math

import numpy as np
import pytest
import torch

from widthlab.empirical import empirical_ntk
from widthlab.kernels import nngp_and_ntk
from widthlab.models.mlp import MLP
from widthlab.runtime.datafiles import load_dataset
from widthlab.runtime.errors import ConfigError
from widthlab.runtime.jobs import run_job
from widthlab.studies.ntk_convergence.summary import circle_summary, mc_summary, summarize

SETTINGS = {
    "reference_slope": -0.5,
    "mc": {"resolved_factor": 2.0, "reference_slope": -1.0},
    "circle": {"bootstrap": 500, "seeds_drawn": 2},
}


def test_kernels_job_matches_an_independent_jacobian_ntk(compose_cfg, smoke_data, tmp_path):
    cfg = compose_cfg(
        "study=ntk_convergence",
        f"paths.data_dir={smoke_data}",
        f"paths.results_dir={tmp_path}",
        "model.width=64",
        "model.depth=2",
        "model.activation=erf",
        "seed=3",
    )
    metrics = run_job(cfg)["metrics"]
    x = torch.as_tensor(load_dataset("digits", smoke_data).x_train[: cfg.study.n_probe])
    net = MLP(x.shape[1], 64, 2, activation="erf", b_std=0.1, seed=3, dtype=torch.float64)
    theta = empirical_ntk(net, x, method="jacobian")
    _, ntk = nngp_and_ntk(x, depth=2, activation="erf", w_std=1.0, b_std=0.1)
    expected = float(torch.linalg.norm(theta - ntk) / torch.linalg.norm(ntk))
    assert metrics["ntk_distance"] == pytest.approx(expected, rel=1e-9)
    assert 0 < metrics["nngp_distance"] < 1


def test_consecutive_activations_share_the_draw_exactly(compose_cfg, smoke_data, tmp_path):
    common = [
        f"paths.data_dir={smoke_data}",
        f"paths.results_dir={tmp_path}",
        "model.width=64",
        "model.depth=2",
        "seed=1",
    ]
    relu = run_job(compose_cfg("study=ntk_convergence", "model.activation=relu", *common))
    erf = run_job(compose_cfg("study=ntk_convergence", "model.activation=erf", *common))
    x = torch.as_tensor(load_dataset("digits", smoke_data).x_train[:16])
    net = MLP(64, 64, 2, activation="erf", b_std=0.1, seed=1, dtype=torch.float64)  # a fresh draw
    _, ntk = nngp_and_ntk(x, depth=2, activation="erf", w_std=1.0, b_std=0.1)
    fresh = float(torch.linalg.norm(empirical_ntk(net, x) - ntk) / torch.linalg.norm(ntk))
    assert erf["metrics"]["ntk_distance"] == pytest.approx(fresh, rel=1e-12)
    assert relu["metrics"]["ntk_distance"] != erf["metrics"]["ntk_distance"]


def test_the_mc_job_finds_no_bias_at_depth_one(compose_cfg, smoke_data, tmp_path):
    cfg = compose_cfg(
        "study=ntk_convergence/mc",
        f"paths.data_dir={smoke_data}",
        f"paths.results_dir={tmp_path}",
        "model.width=8",
        "model.depth=1",
        "model.activation=relu",
        "study.mc.networks=512",
    )
    m = run_job(cfg)["metrics"]
    # Depth 1: E[f f'] is the limit exactly; the distance is Monte-Carlo noise of the floor's size.
    assert m["mc_distance"] < 2 * m["mc_floor"]
    assert m["mc_floor"] == pytest.approx(m["mc_distance"], rel=0.5)


def test_a_probe_larger_than_the_data_is_a_config_error(compose_cfg, smoke_data):
    cfg = compose_cfg(
        "study=ntk_convergence", f"paths.data_dir={smoke_data}", "study.n_probe=10000"
    )
    with pytest.raises(ConfigError, match=r"^study\.n_probe=10000"):
        run_job(cfg)


def kernel_records(slope, seeds=3):
    # Seed offsets of −5%, 0, +5% in log and seed slopes off by −0.01, 0, +0.01: the pooled
    # slope is exact, and the seeds' own slopes give its interval a width.
    out = []
    for width in (64, 128, 256, 512, 1024):
        for seed in range(seeds):
            d = 2.0 * width ** (slope + 0.01 * (seed - 1)) * math.exp(0.05 * (seed - 1))
            out.append(
                {
                    "key": f"w{width}s{seed}",
                    "status": "ok",
                    "job": {
                        "model.width": width,
                        "model.depth": 1,
                        "model.activation": "relu",
                        "seed": seed,
                    },
                    "metrics": {"ntk_distance": d, "nngp_distance": 2 * d},
                }
            )
    out.append(
        {
            "key": "broken",
            "status": "failed",
            "reason": "boom",
            "metrics": {},
            "job": {"model.width": 2048, "model.depth": 1, "model.activation": "relu", "seed": 0},
        }
    )
    return out


def test_a_slope_of_minus_one_half_agrees_and_one_of_minus_0_3_differs():
    good = summarize({"kernels": kernel_records(-0.5)}, SETTINGS)
    fit = good.summary["slopes"]["ntk_depth1_relu"]
    assert fit["slope"] == pytest.approx(-0.5, abs=0.05) and fit["verdict"] == "agrees"
    assert fit["n"] == 15 and fit["widths"] == [64, 128, 256, 512, 1024]
    assert fit["seeds"] == 3 and fit["dof"] == 2 and fit["family"] == "kernel slopes"
    bad = summarize({"kernels": kernel_records(-0.3)}, SETTINGS).summary
    assert bad["slopes"]["ntk_depth1_relu"]["verdict"] == "differs"
    assert bad["families"] == [
        {
            "family": "kernel slopes",
            "method": "holm",
            "alpha": 0.05,
            "size": 2,
            "first_level": 0.025,
            "differ": 2,
        }
    ]
    # A slope that still differs after the family is explained from the study's own numbers.
    assert [e["test"] for e in bad["explanations"]] == [
        "NTK slope, depth 1, relu",
        "NNGP slope, depth 1, relu",
    ]


def circle_records(sd_narrow, sd_wide, seeds=(200, 200)):
    rng = np.random.default_rng(5)
    gamma = np.linspace(-np.pi, np.pi, 21)
    limit = 1.0 + np.cos(gamma)
    out = []
    for width, sd, k in ((500, sd_narrow, seeds[0]), (10000, sd_wide, seeds[1])):
        curves = limit + sd * rng.standard_normal((k, gamma.size))
        out.append(
            {
                "key": f"w{width}",
                "status": "ok",
                "job": {"study.circle.width": width},
                "metrics": {
                    "width": width,
                    "seeds": k,
                    "gamma": gamma.tolist(),
                    "limit": limit.tolist(),
                    "ntk": curves.tolist(),
                },
            }
        )
    return out


def test_the_circle_ratio_interval_contains_sqrt_of_the_width_ratio_when_it_should():
    expected = math.sqrt(10000 / 500)
    agree = circle_summary(circle_records(0.2, 0.2 / expected), n_boot=500)
    assert agree["sd_ratio"] == pytest.approx(expected, rel=0.15)
    assert agree["ci_low"] < expected < agree["ci_high"] and agree["verdict"] == "agrees"
    differ = circle_summary(circle_records(0.2, 0.2 / 1.5), n_boot=500)  # ratio 1.5, not 4.47
    assert differ["verdict"] == "differs" and differ["ci_high"] < expected


def test_a_width_split_into_parts_gives_the_numbers_of_the_unsplit_width():
    """The circle sweep's parts (blocks of seeds, one job each, finishing in any order) join
    into the same summary and tables, bit for bit, as one job holding every seed."""
    from widthlab.studies.ntk_convergence.job import part_seeds
    from widthlab.studies.ntk_convergence.summary import circle_tables

    whole = circle_records(0.2, 0.05, seeds=(11, 7))
    for n in (7, 11, 20):
        for parts in (1, 2, 3):
            blocks = [list(part_seeds(n, p, parts)) for p in range(parts)]
            assert [s for block in blocks for s in block] == list(range(n))
            assert max(map(len, blocks)) - min(map(len, blocks)) <= 1
    split = []
    for rec in whole:
        m = rec["metrics"]
        for p in (2, 0, 1):  # any order
            seeds = part_seeds(m["seeds"], p, 3)
            curves = m["ntk"][seeds.start : seeds.stop]
            part = {**m, "seeds": len(seeds), "first_seed": seeds.start, "ntk": curves}
            split.append({**rec, "key": f"{rec['key']}p{p}", "metrics": part})
    split.append({"key": "failed", "status": "failed", "metrics": {}})
    assert circle_summary(split, n_boot=300) == circle_summary(whole, n_boot=300)
    assert circle_tables(split, 3) == circle_tables(whole, 3)
    assert circle_summary(split, n_boot=300)["widths"]["10000"]["seeds"] == 7


def test_the_mc_bias_is_resolved_only_deeper_and_falls_like_one_over_width():
    rows = []
    for depth in (1, 2):
        for w in (8, 16, 32, 64, 128):
            floor = 0.05 / math.sqrt(w)
            bias = 0.0 if depth == 1 else 1.0 / w
            rows.append(
                {
                    "status": "ok",
                    "depth": depth,
                    "activation": "relu",
                    "width": w,
                    "mc_distance": math.hypot(floor, bias),
                    "mc_floor": floor,
                    "mc_bias": bias,
                    "mc_networks": 1024,
                }
            )
    out = mc_summary(rows, factor=2.0, reference=-1.0)
    assert out["depth1_relu"]["resolved_widths"] == [] and out["depth1_relu"]["verdict"] == "agrees"
    fit = out["depth2_relu"]["bias_slope"]
    assert fit["slope"] == pytest.approx(-1.0, abs=1e-6) and fit["verdict"] == "agrees"
