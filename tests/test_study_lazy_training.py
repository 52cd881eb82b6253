"""lazy_training: the job against its own predictions, its checks, and its verdicts on
hand-made records with known slopes."""

import math

import numpy as np
import pytest

from widthlab.runtime.errors import ConfigError
from widthlab.runtime.jobs import run_job
from widthlab.studies.lazy_training import LazyTraining
from widthlab.studies.lazy_training.summary import summarize

SETTINGS = {
    "references": {
        "first_layer": -0.5,
        "hidden_layers": -1.0,
        "last_layer": -0.5,
        "ntk_change": -1.0,
    },
    "bounds": {"param_change": -0.5, "linearization_gap": -0.5, "limit_gap": -0.5},
}


def test_lazy_training_moves_less_at_larger_width(compose_cfg, smoke_data, tmp_path):
    out = {}
    for width in (32, 1024):
        cfg = compose_cfg(
            "study=lazy_training",
            f"model.width={width}",
            "model.depth=1",
            f"paths.data_dir={smoke_data}",
            f"paths.results_dir={tmp_path}",
        )
        record = run_job(cfg)
        assert record["status"] == "ok", record.get("reason")
        out[width] = record["metrics"]
    narrow, wide = out[32], out[1024]
    assert narrow["steps"] == wide["steps"] == 50
    assert 0.5 < wide["lr_stability"] < 2  # η·λ_max(Θ̂₀)/n near lr_fraction = 1
    # 32× the width: every change shrinks (width^-1/2 predicts 5.7×; allow seed noise)
    for metric in (
        "ntk_change",
        "linearization_gap",
        "limit_gap",
        "param_change",
        "weight_change_layer_1",
        "weight_change_layer_2",
    ):
        assert wide[metric] < narrow[metric] / 2, metric
    assert wide["linearization_gap"] < 0.05


def test_one_hot_targets_follow_the_exact_multi_output_linearization(
    compose_cfg, smoke_data, tmp_path
):
    # data=mnist1d by config alone: 10 outputs, one-hot targets. One small step (η = 0.01·n/
    # λ_max): the network moves as its linearization up to O(η), so the gap is ~1e-3 with the
    # kernel's output blocks; without them (an output-averaged kernel ⊗ I) it would be the
    # blocks' relative size at width 32, O(width^-1/2) ≈ 0.2.
    cfg = compose_cfg(
        "study=lazy_training",
        "data=mnist1d",
        "model.width=32",
        "model.depth=2",
        "study.steps=1",
        "study.lr_fraction=0.01",
        f"paths.data_dir={smoke_data}",
        f"paths.results_dir={tmp_path}",
    )
    record = run_job(cfg)
    assert record["status"] == "ok", record.get("reason")
    m = record["metrics"]
    assert m["n_outputs"] == 10 and m["steps"] == 1
    assert m["linearization_gap_train"] < 1e-2 and m["linearization_gap"] < 1e-2
    assert 0.002 < m["lr_stability"] < 0.05  # η·λ_max(Θ̂₀)/n near lr_fraction = 0.01


@pytest.mark.parametrize(
    "override",
    [
        "train=adam",
        "model.parameterization=standard",
        "train.momentum=0.9",
        "train.batch_size=16",
        "train.loss=cross_entropy",
    ],
)
def test_settings_outside_the_closed_form_are_refused(compose_cfg, override):
    from widthlab.runtime.schemas import validate_config

    key = override.split("=")[0]
    key = "train.optimizer" if key == "train" else key
    with pytest.raises(ConfigError, match=rf"^{key}=.* is not allowed: expected .* in this study"):
        validate_config(
            compose_cfg("study=lazy_training", override), ("data", "model", "train"), LazyTraining()
        )


def lazy_records(slopes: dict[str, float], depth=2, seeds=3, noise=0.03):
    """Records whose every quantity follows c · width^slope (with log-normal noise)."""
    rng = np.random.default_rng(1)
    out = []
    for width in (64, 128, 256, 512, 1024):
        for seed in range(seeds):
            metrics = {
                k: 0.7 * width**v * math.exp(noise * rng.standard_normal())
                for k, v in slopes.items()
            }
            out.append(
                {
                    "key": f"w{width}s{seed}",
                    "status": "ok",
                    "metrics": metrics,
                    "job": {"model.width": width, "model.depth": depth, "seed": seed},
                }
            )
    return out


LEE = {
    "weight_change_layer_1": -0.5,
    "weight_change_layer_2": -1.0,
    "weight_change_layer_3": -0.5,
    "ntk_change": -1.0,
    "param_change": -0.7,
    "linearization_gap": -0.8,
    "limit_gap": -0.5,
    "linearization_gap_train": -0.8,
}


def test_slopes_that_follow_the_paper_agree():
    results = summarize({"train": lazy_records(LEE)}, SETTINGS)
    fits = results.summary["slopes"]["depth2"]
    assert fits["ntk_change"]["slope"] == pytest.approx(-1.0, abs=0.03)
    assert fits["weight_change_layer_2"]["role"] == "hidden_layers"
    assert all(f.get("verdict") in (None, "agrees") for f in fits.values())
    assert results.metrics["agree"] == results.metrics["comparisons"] == 7


def test_a_slope_outside_the_papers_value_is_flagged_differs():
    slower = {**LEE, "ntk_change": -0.7, "linearization_gap": -0.3}
    fits = summarize({"train": lazy_records(slower)}, SETTINGS).summary["slopes"]["depth2"]
    assert fits["ntk_change"]["verdict"] == "differs"  # −0.7 against Lee et al.'s −1
    assert fits["linearization_gap"]["verdict"] == "differs"  # slower than the −1/2 bound
    assert fits["weight_change_layer_1"]["verdict"] == "agrees"


def activation_records(exponents: dict[str, float], seeds=5, noise=0.03):
    """The activation sweep's records: the NTK change ∝ width^exponent per activation."""
    rng = np.random.default_rng(7)
    out = []
    for activation, exponent in exponents.items():
        for width in (64, 128, 256, 512, 1024, 2048):
            for seed in range(seeds):
                value = 3.0 * width**exponent * math.exp(noise * rng.standard_normal())
                out.append(
                    {
                        "key": f"{activation}w{width}s{seed}",
                        "status": "ok",
                        "metrics": {"ntk_change": value},
                        "job": {
                            "model.width": width,
                            "model.activation": activation,
                            "seed": seed,
                        },
                    }
                )
    return out


def test_the_activation_sweep_tells_a_relu_exponent_from_a_shared_one():
    """A ReLU exponent of −0.75 held steady against erf's −1: ReLU differs, steadily
    ("real"), and differs from erf; the same −0.75 for both: they share it."""
    own = summarize(
        {"train": lazy_records(LEE), "activations": activation_records({"relu": -0.75, "erf": -1})},
        SETTINGS,
    ).summary
    fits = own["activations"]["fits"]
    assert fits["relu"]["verdict"] == "differs" and fits["erf"]["verdict"] == "agrees"
    assert own["activations"]["explained"]["relu"]["verdict"] == "real"
    assert own["activations"]["relu_minus_erf"]["p"] < 0.05
    assert "ReLU's own" in own["activations"]["relu_minus_erf"]["finding"]
    assert any(e["test"].endswith("relu (activation sweep)") for e in own["explanations"])
    shared = summarize(
        {"activations": activation_records({"relu": -0.75, "erf": -0.75})}, SETTINGS
    ).summary["activations"]
    assert shared["relu_minus_erf"]["p"] > 0.05 and "share" in shared["relu_minus_erf"]["finding"]
