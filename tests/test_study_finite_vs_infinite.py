"""finite_vs_infinite: the kernels job against a direct solve, the networks against their
NTK predictor as they widen, the checks, and the verdicts on hand-made records."""

import numpy as np
import pytest
import torch

from widthlab.kernels import nngp_and_ntk
from widthlab.runtime.datafiles import load_dataset
from widthlab.runtime.errors import ConfigError
from widthlab.runtime.jobs import run_job
from widthlab.runtime.schemas import validate_config
from widthlab.studies.finite_vs_infinite import FiniteVsInfinite
from widthlab.studies.finite_vs_infinite.summary import first_width_within_se, summarize

SETTINGS = {"gap_bound": -0.5}


def job(compose_cfg, smoke_data, tmp_path, *overrides):
    cfg = compose_cfg(*overrides, f"paths.data_dir={smoke_data}", f"paths.results_dir={tmp_path}")
    record = run_job(cfg)
    assert record["status"] == "ok", record.get("reason")
    return record["metrics"]


def test_kernel_regression_and_the_ntk_predictor_against_direct_solves(
    compose_cfg, smoke_data, tmp_path
):
    m = job(compose_cfg, smoke_data, tmp_path, "study=finite_vs_infinite/kernels", "model.depth=2")
    ds = load_dataset("mnist1d", smoke_data)
    n = m["n_train"]  # smoke: 32, the last 8 of them the validation split
    assert m["n_val"] == 8
    x, y = torch.as_tensor(ds.x_train[:n]), ds.y_train[:n]
    kw = dict(depth=2, activation="relu", w_std=2**0.5, b_std=0.1)
    nngp, ntk = (k.numpy() for k in nngp_and_ntk(x, None, **kw))
    nngp_test, ntk_test = (k.numpy() for k in nngp_and_ntk(torch.as_tensor(ds.x_test), x, **kw))
    labels = ds.extras["labels_test"]
    for name, k, k_test in (("nngp", nngp, nngp_test), ("ntk", ntk, ntk_test)):
        chosen = m[f"kernel={name}"]
        lam = chosen["ridge"] * np.trace(k) / n
        f = k_test @ np.linalg.solve(k + n * lam * np.eye(n), y) if lam > 0 else None
        if f is None:
            f = k_test @ np.linalg.lstsq(k, y, rcond=None)[0]
        assert chosen["test_accuracy"] == pytest.approx(np.mean(f.argmax(1) == labels))
        assert chosen["test_loss"] == pytest.approx(
            0.5 * np.mean(np.sum((f - ds.y_test) ** 2, 1)), rel=1e-6
        )
    # The NTK predictor of T steps of GD, step by step on the outputs: f ← f − (η/n)Θ(f − y).
    gd = m["kernel=ntk_gd"]
    f_train, f_test = np.zeros_like(y), np.zeros_like(ds.y_test)
    for _ in range(gd["steps"]):
        residual = f_train - y
        f_test -= gd["lr"] / n * ntk_test @ residual
        f_train -= gd["lr"] / n * ntk @ residual
    assert gd["test_loss"] == pytest.approx(0.5 * np.mean(np.sum((f_test - ds.y_test) ** 2, 1)))
    assert gd["test_accuracy"] == pytest.approx(np.mean(f_test.argmax(1) == labels))


def test_wider_networks_are_closer_to_their_ntk_predictor(compose_cfg, smoke_data, tmp_path):
    kernels = job(
        compose_cfg, smoke_data, tmp_path, "study=finite_vs_infinite/kernels", "model.depth=1"
    )
    out = {}
    for width in (64, 2048):
        out[width] = job(
            compose_cfg,
            smoke_data,
            tmp_path,
            "study=finite_vs_infinite",
            f"model.width={width}",
            "model.depth=1",
        )
    narrow, wide = out[64], out[2048]
    # Both jobs compare with the same predictor, the kernels job's.
    for m in (narrow, wide):
        assert m["limit_test_loss"] == pytest.approx(kernels["kernel=ntk_gd"]["test_loss"])
        assert m["loss_gap"] == pytest.approx(m["test_loss"] - m["limit_test_loss"])
        assert m["steps"] == 50
    # 32× the width: width^-1/2 predicts a 5.7× smaller gap; allow the seed's noise.
    assert wide["function_gap"] < narrow["function_gap"] / 3
    assert wide["agreement"] > narrow["agreement"]


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("train=adam", "train.optimizer"),
        ("model.parameterization=standard", "model.parameterization"),
        ("train.loss=cross_entropy", "train.loss"),
        ("data=teacher", "data"),
        ("study.val_fraction=0.0", "study.val_fraction"),
        ("study.n_train=5000", "study.n_train"),
    ],
)
def test_settings_outside_the_limit_are_refused(compose_cfg, override, key):
    with pytest.raises(ConfigError, match=rf"^{key}=.* is not allowed"):
        validate_config(
            compose_cfg("study=finite_vs_infinite", override),
            ("data", "model", "train"),
            FiniteVsInfinite(),
        )


def network_records(gap_slope: float, loss_gap_slope: float, seeds=3, noise=0.03):
    """Network records whose gaps follow c·width^slope (log-normal noise) below a fixed
    asymptote, and one kernels record."""
    rng = np.random.default_rng(2)
    out = []
    for width in (64, 128, 256, 512, 1024):
        for seed in range(seeds):
            wobble = float(np.exp(noise * rng.standard_normal()))
            loss_gap = 0.2 * (width / 64) ** loss_gap_slope * wobble
            metrics = {
                "test_accuracy": 0.4 - loss_gap / 4,
                "test_loss": 0.5 + loss_gap,
                "limit_test_accuracy": 0.4,
                "limit_test_loss": 0.5,
                "loss_gap": loss_gap,
                "accuracy_gap": -loss_gap / 4,
                "function_gap": 0.8 * (width / 64) ** gap_slope * wobble,
                "agreement": 0.9,
                "steps": 1000,
                "n_train": 256,
            }
            out.append(
                {
                    "key": f"w{width}s{seed}",
                    "status": "ok",
                    "metrics": metrics,
                    "config": {"data": {"name": "mnist1d"}},
                    "job": {"model.width": width, "model.depth": 2, "seed": seed},
                }
            )
    kernel = {
        "key": "depth2",
        "status": "ok",
        "metrics": {
            "kernel=ntk": {"ridge": 1e-4, "test_accuracy": 0.41, "test_loss": 0.45},
            "kernel=ntk_gd": {"test_accuracy": 0.4, "test_loss": 0.5},
        },
        "job": {"model.depth": 2},
    }
    return {"train": out, "kernels": [kernel]}


def test_gaps_shrinking_like_the_bound_agree():
    result = summarize(network_records(-0.5, -0.5), SETTINGS)
    depth = result.summary["depths"]["depth2"]
    function, loss = depth["slopes"]["function_gap"], depth["slopes"]["abs_loss_gap"]
    assert function["ci_low"] < -0.5 < function["ci_high"] and function["verdict"] == "agrees"
    assert loss["verdict"] == "agrees"
    assert depth["asymptote"] == {"test_accuracy": 0.4, "test_loss": 0.5}
    assert depth["kernels"]["ntk"]["test_loss"] == 0.45
    assert result.metrics == {
        "comparisons": 2,
        "agree": 2,
        "inconclusive": 0,
        "fvi_function_gap_slope_deepest": pytest.approx(-0.5, abs=0.05),
        "fvi_first_width_within_se_deepest": None,  # a 3% noise never reaches the gap's SE
    }


def test_gaps_that_shrink_too_slowly_or_not_at_all_differ():
    depth = summarize(network_records(-0.2, 0.0), SETTINGS).summary["depths"]["depth2"]
    assert depth["slopes"]["function_gap"]["verdict"] == "differs"
    assert depth["slopes"]["abs_loss_gap"]["verdict"] == "differs"


def test_first_width_within_one_se_holds_from_there_on():
    curve = [
        {"width": 64, "test_loss_mean": 0.70, "test_loss_se": 0.01},
        {"width": 128, "test_loss_mean": 0.505, "test_loss_se": 0.01},  # within, but
        {"width": 256, "test_loss_mean": 0.53, "test_loss_se": 0.01},  # not from here on
        {"width": 512, "test_loss_mean": 0.509, "test_loss_se": 0.01},
        {"width": 1024, "test_loss_mean": 0.495, "test_loss_se": 0.01},
    ]
    assert first_width_within_se(curve, "test_loss", 0.5) == 512
    assert first_width_within_se(curve[:3], "test_loss", 0.5) is None
