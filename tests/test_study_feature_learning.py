"""feature_learning: its jobs against Lightning and a forward pass by hand, the three claims
of issue 17 on real (small) networks, its checks, and its verdicts on hand-made records with
known answers."""

import math

import numpy as np
import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from widthlab.data import digits
from widthlab.distances import relative_distance
from widthlab.models.mlp import MLP
from widthlab.runtime.errors import ConfigError
from widthlab.runtime.jobs import run_job
from widthlab.runtime.schemas import validate_config
from widthlab.runtime.training import train_network
from widthlab.stacked_mlp import StackedMLP, batch_losses, coordinate_check, train_stacked
from widthlab.stats import grid_minimum, loglog_slope
from widthlab.studies.feature_learning import FeatureLearning
from widthlab.studies.feature_learning.summary import summarize

GROUPS = ("data", "model", "train", "study")


@pytest.fixture
def data():
    """Digits (1000 training images) on one thread: these tests train networks of up to
    2048 units, and a second thread only competes for a shared machine's memory bus."""
    from widthlab.runtime.devices import fixed_threads

    ds = digits(n_train=1000)
    x = torch.as_tensor(ds.x_train, dtype=torch.float32)
    with fixed_threads(1):
        yield x, torch.as_tensor(ds.y_train, dtype=torch.float32)


def settings(compose_cfg):
    return OmegaConf.to_container(compose_cfg("study=feature_learning").study, resolve=True)


# ----------------------------------------------------------------------------------- jobs
def test_transfer_job_trains_each_rate_as_train_network_does(compose_cfg, smoke_data, tmp_path):
    cfg = compose_cfg(
        "study=feature_learning",
        "model.parameterization=mup",
        "model.width=128",
        f"paths.data_dir={smoke_data}",
        f"paths.results_dir={tmp_path}",
    )
    record = run_job(cfg)
    assert record["status"] == "ok", record.get("reason")
    metrics = record["metrics"]
    rates = [k for k in metrics if k.startswith("log2_lr=")]
    assert len(rates) == cfg.study.transfer.n_lr == 12
    movement = metrics[f"log2_lr={cfg.study.movement.log2_lr.mup}"]
    assert movement["diverged"] == 0 and movement["ntk_change"] > 0
    assert metrics["log2_lr=3"]["diverged"] == 1  # 8 is far past the edge of stability

    # The same network trained alone by Lightning at one rate of the grid.
    from widthlab.runtime.datafiles import load_job_data

    ds = load_job_data(cfg)
    x = torch.as_tensor(ds.x_train, dtype=torch.float32)
    y = torch.as_tensor(ds.y_train, dtype=torch.float32)
    model = instantiate(cfg.model, in_features=64, out_features=10, seed=0)
    probe = x[: cfg.study.n_probe]
    with torch.no_grad():
        start = model.forward_with_cache(probe).layer_inputs[1:]
    train_network(cfg, model, x, y, {}, classification=True, lr=2.0**-4)
    with torch.no_grad():
        loss = float(batch_losses(model(x).unsqueeze(0), y, "cross_entropy")[0])
        moved = model.forward_with_cache(probe).layer_inputs[1:]
    entry = metrics["log2_lr=-4"]
    # float32 training, 20 steps: the two loops agree to rounding.
    assert entry["train_loss"] == pytest.approx(loss, rel=1e-4)
    for layer, (a, b) in enumerate(zip(moved, start, strict=True), start=1):
        assert entry[f"feature_movement_layer_{layer}"] == pytest.approx(
            relative_distance(a, b), rel=1e-3
        )


def test_coord_job_records_every_width_seed_and_step(compose_cfg, smoke_data, tmp_path):
    cfg = compose_cfg(
        "study=feature_learning/coord",
        "model.parameterization=ntk",
        f"paths.data_dir={smoke_data}",
        f"paths.results_dir={tmp_path}",
    )
    record = run_job(cfg)
    assert record["status"] == "ok", record.get("reason")
    c = cfg.study.coord
    conditions = [k for k in record["metrics"] if k.startswith("width=")]
    assert len(conditions) == len(c.widths) * c.seeds * (c.steps + 1)
    from widthlab.runtime.datafiles import load_job_data

    x = torch.as_tensor(load_job_data(cfg).x_train[: c.batch], dtype=torch.float32)
    model = instantiate(cfg.model, in_features=64, out_features=10, seed=1, width=c.widths[-1])
    with torch.no_grad():
        h2 = model.forward_with_cache(x).layer_inputs[2]
    entry = record["metrics"][f"width={c.widths[-1]},seed=1,step=0"]
    assert entry["h2"] == pytest.approx(float(h2.abs().mean()), rel=1e-6)
    assert entry["output_change"] == 0.0


# ------------------------------------------------------------------ the claims, measured
def coordinate_slopes(data, parameterization, widths=(64, 128, 256, 512, 1024, 2048)):
    """Slopes against width of each mean |coordinate| after 3 steps (2 seeds per width)."""
    x, y = data
    values: dict[str, list] = {}
    for width in widths:
        models = [
            MLP(
                64, width, 2, 10, "relu", parameterization, math.sqrt(2), 0.0, seed=s, base_width=64
            )
            for s in (0, 1)
        ]
        sizes = coordinate_check(
            StackedMLP.from_models(models), x[:64], y[:64], "cross_entropy", "sgd",
            [0.25, 0.25], models[0].lr_scales("sgd"), 3,
        )  # fmt: skip
        for name, v in sizes.items():
            values.setdefault(name, []).extend((width, float(s)) for s in v[3])
    return {
        name: loglog_slope(np.array([w for w, _ in pts]), np.array([s for _, s in pts])).slope
        for name, pts in values.items()
    }


def test_mup_coordinate_check_is_flat_and_standard_is_not(data):
    mup, standard = coordinate_slopes(data, "mup"), coordinate_slopes(data, "standard")
    assert abs(mup["h1"]) <= 0.1 and abs(mup["h2"]) <= 0.1, mup
    assert max(abs(standard["h1"]), abs(standard["h2"])) > 0.1, standard
    assert standard["output_change"] > 0.3  # the output's update grows with width


def test_ntk_feature_movement_falls_like_width_to_the_minus_half(data):
    x, y = data
    points = {1: [], 2: []}
    for width in (64, 128, 256, 512, 1024):
        models = [MLP(64, width, 2, 10, "relu", "ntk", math.sqrt(2), seed=s) for s in (0, 1)]
        stack = StackedMLP.from_models(models)
        with torch.no_grad():
            start = stack.forward_with_cache(x[:128]).hidden
        batches = [(x[i : i + 16], y[i : i + 16]) for i in range(0, 1000, 16)]
        train_stacked(stack, batches, "cross_entropy", "sgd", [4.0, 4.0], [1.0] * 6, 150)
        with torch.no_grad():
            moved = stack.forward_with_cache(x[:128]).hidden
        for layer in (1, 2):
            for k in (0, 1):
                change = relative_distance(moved[layer - 1][k], start[layer - 1][k])
                points[layer].append((width, change))
    for layer, pts in points.items():
        fit = loglog_slope(np.array([w for w, _ in pts]), np.array([c for _, c in pts]))
        assert fit.ci_low <= -0.5 <= fit.ci_high, (layer, fit)


def test_mup_best_learning_rate_moves_at_most_one_grid_step_over_16x(data):
    x, y = data
    grid = list(range(-7, 5))
    batches = [(x[i : i + 16], y[i : i + 16]) for i in range(0, 1000, 16)]
    best = {}
    for width in (32, 128, 512):
        scores = np.full((3, len(grid)), np.inf)
        for seed in range(3):
            model = MLP(64, width, 2, 10, "relu", "mup", math.sqrt(2), seed=seed, base_width=32)
            stack = StackedMLP.copies(model, len(grid))
            run = train_stacked(
                stack, batches, "cross_entropy", "sgd", [2.0**e for e in grid],
                model.lr_scales("sgd"), 100, divergence_factor=1e3, drop_diverged=True,
            )  # fmt: skip
            with torch.no_grad():
                losses = batch_losses(stack(x), y, "cross_entropy")
            for row, k in enumerate(run.kept):
                scores[seed, k] = math.log(float(losses[row]))
        best[width] = grid_minimum(scores)
    assert all(b.interior for b in best.values())
    indices = [b.index for b in best.values()]
    assert max(indices) - min(indices) <= 1, best


# --------------------------------------------------------------------------------- checks
@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("train.momentum=0.9", "train.momentum"),
        ("data=teacher", "data"),
        ("study.movement.log2_lr.mup=5", "study.movement.log2_lr.mup"),
        ("study.coord.check_step=9", "study.coord.check_step"),
        ("study.transfer.moves=[mup]", "study.transfer.moves"),
        ("study.coord.log2_lr.mup=0.5", "study.coord.log2_lr"),
        ("study.n_probe=100000", "study.n_probe"),
    ],
)
def test_settings_the_study_cannot_run_are_refused(compose_cfg, override, key):
    with pytest.raises(ConfigError, match=rf"^{key}=.* is not allowed"):
        validate_config(compose_cfg("study=feature_learning", override), GROUPS, FeatureLearning())


@pytest.mark.parametrize("study", ["ntk_convergence", "lazy_training"])
@pytest.mark.parametrize("parameterization", ["mean_field", "mup"])
def test_analytic_kernel_studies_refuse_parameterizations_without_a_kernel_limit(
    compose_cfg, study, parameterization
):
    from widthlab.runtime.study import load_study

    for extra in ([], ["+model.base_width=64"]):
        cfg = compose_cfg(f"study={study}", f"model.parameterization={parameterization}", *extra)
        with pytest.raises(
            ConfigError,
            match=rf"^model.parameterization='{parameterization}' is not allowed: expected "
            "'ntk' in this study",
        ):
            study_ = load_study(cfg.study._target_)
            validate_config(cfg, study_.job(cfg.study.job).groups, study_)


def test_a_scaled_parameterization_without_a_base_width_is_refused(compose_cfg):
    from widthlab.studies.double_descent_mlp import DoubleDescentMLP

    cfg = compose_cfg("study=double_descent_mlp", "model.parameterization=mup")
    with pytest.raises(ConfigError, match=r"^model.base_width=None is not allowed"):
        validate_config(cfg, GROUPS, DoubleDescentMLP())
    validate_config(
        compose_cfg(
            "study=double_descent_mlp", "model.parameterization=mup", "+model.base_width=8"
        ),
        GROUPS,
        DoubleDescentMLP(),
    )


# ------------------------------------------------------------- verdicts on hand-made records
WIDTHS = (64, 128, 256, 512, 1024)
LAYERS = ("h1", "h2", "output_change")


def coord_records(slopes: dict[str, float], noise=0.01):
    """Every mean |coordinate| ∝ width^slope of its parameterization (log-normal noise)."""
    rng = np.random.default_rng(0)
    out = []
    for p, slope in slopes.items():
        metrics = {}
        for width in WIDTHS:
            for seed in range(2):
                for step in range(6):
                    value = 0.5 * (width / 64) ** slope
                    metrics[f"width={width},seed={seed},step={step}"] = {
                        q: value * math.exp(noise * rng.standard_normal())
                        for q in (*LAYERS, "output")
                    }
        out.append(
            {"key": p, "status": "ok", "job": {"model.parameterization": p}, "metrics": metrics}
        )
    return out


def transfer_records(optimum, movement, loss_scale=None, grid_min=-6, n_lr=12):
    """Training loss exp(0.3 (e − e*(width))² − 4) · loss_scale(width), noisy, for every
    rate e; feature movement ∝ width^movement[p]; e ≥ e* + 4 diverges."""
    rng = np.random.default_rng(2)
    out = []
    for p, best in optimum.items():
        for width in WIDTHS:
            for seed in range(3):
                metrics = {}
                for e in range(grid_min, grid_min + n_lr):
                    star = best(width)
                    if e >= star + 4:
                        metrics[f"log2_lr={e}"] = {"diverged": 1}
                        continue
                    scale = loss_scale(width) if loss_scale else 1.0
                    loss = math.exp(0.3 * (e - star) ** 2 - 4 + 0.02 * rng.standard_normal())
                    change = (width / 64) ** movement[p] * math.exp(0.02 * rng.standard_normal())
                    metrics[f"log2_lr={e}"] = {
                        "diverged": 0,
                        "train_loss": loss * scale,
                        "feature_movement_layer_1": change,
                        "feature_movement_layer_2": change,
                        "ntk_change": change**2,
                    }
                out.append(
                    {
                        "key": f"{p}{width}{seed}",
                        "status": "ok",
                        "job": {"model.parameterization": p, "model.width": width, "seed": seed},
                        "metrics": metrics,
                    }
                )
    return out


def hand_settings(compose_cfg):
    s = settings(compose_cfg)
    s["transfer"]["log2_lr_min"] = dict.fromkeys(s["transfer"]["log2_lr_min"], -6)
    s["movement"]["log2_lr"] = dict.fromkeys(s["movement"]["log2_lr"], -2)
    return s


def test_verdicts_agree_where_the_records_follow_the_papers(compose_cfg):
    s = hand_settings(compose_cfg)
    optimum = {
        "standard": lambda w: -math.log2(w / 64) - 1,  # drifts like 1/width
        "ntk": lambda w: -1,
        "mean_field": lambda w: -1,
        "mup": lambda w: -1,
    }
    movement = {"standard": 0.3, "ntk": -0.5, "mean_field": 0.0, "mup": 0.0}
    records = {
        "coord": coord_records({"standard": 0.5, "ntk": 0.0, "mean_field": 0.0, "mup": 0.02}),
        "transfer": transfer_records(optimum, movement, loss_scale=lambda w: (w / 64) ** -0.2),
    }
    results = summarize(records, s)
    summary = results.summary
    assert {p: e["verdict"] for p, e in summary["coord"].items()} == dict.fromkeys(
        ("standard", "ntk", "mean_field", "mup"), "agrees"
    )
    ntk = summary["movement"]["ntk"]["fits"]["feature_movement_layer_1"]
    assert ntk["slope"] == pytest.approx(-0.5, abs=0.02) and ntk["verdict"] == "agrees"
    assert summary["movement"]["ntk"]["fits"]["ntk_change"]["verdict"] == "agrees"  # −1
    assert summary["movement"]["mup"]["fits"]["feature_movement_layer_2"]["verdict"] == "agrees"
    mup, standard = summary["transfer"]["mup"], summary["transfer"]["standard"]
    assert mup["shift_steps"] == 0 and mup["verdict"] == "agrees"
    assert standard["shift_steps"] == -4 and standard["verdict"] == "agrees"
    assert standard["refined_shift_ci"][1] < 0
    assert mup["wider_is_better"]["verdict"] == "agrees"
    assert results.metrics["comparisons"] == results.metrics["agree"] > 10
    assert results.metrics["mup_best_lr_shift_steps"] == 0
    assert len(results.metrics) <= 5


def test_verdicts_differ_where_the_records_contradict_the_papers(compose_cfg):
    s = hand_settings(compose_cfg)
    optimum = {
        "standard": lambda w: -1,  # stays put
        "ntk": lambda w: -1,
        "mean_field": lambda w: -1,
        "mup": lambda w: -math.log2(w / 64) / 2,  # moves two steps over 16×
    }
    movement = {"standard": 0.0, "ntk": -0.2, "mean_field": 0.0, "mup": -0.5}
    records = {
        "coord": coord_records({"standard": 0.0, "ntk": 0.0, "mean_field": 0.0, "mup": 0.3}),
        "transfer": transfer_records(optimum, movement, loss_scale=lambda w: (w / 64) ** 0.2),
    }
    summary = summarize(records, s).summary
    assert summary["coord"]["mup"]["verdict"] == "differs"
    assert summary["coord"]["standard"]["verdict"] == "differs"  # flat, predicted not to be
    assert summary["movement"]["ntk"]["fits"]["feature_movement_layer_1"]["verdict"] == "differs"
    assert summary["movement"]["mup"]["fits"]["feature_movement_layer_1"]["verdict"] == "differs"
    assert summary["transfer"]["mup"]["shift_steps"] == -2
    assert summary["transfer"]["mup"]["verdict"] == "differs"
    assert summary["transfer"]["standard"]["verdict"] == "differs"
    wider = summary["transfer"]["mean_field"]["wider_is_better"]
    assert wider["rates_narrower_better"] > 0 and wider["verdict"] == "differs"


def test_figures_draw_every_parameterization_and_width(compose_cfg):
    s = hand_settings(compose_cfg)
    optimum = dict.fromkeys(("standard", "ntk", "mean_field", "mup"), lambda w: -1)
    movement = {"standard": 0.3, "ntk": -0.5, "mean_field": 0.0, "mup": 0.0}
    records = {
        "coord": coord_records(dict.fromkeys(optimum, 0.0)),
        "transfer": transfer_records(optimum, movement),
    }
    results = summarize(records, s)
    specs = FeatureLearning().figures(results)
    assert set(specs) == {"coordinate_check", "feature_movement", "learning_rate_transfer"}
    transfer = specs["learning_rate_transfer"].figure
    gids = {line.get_gid() for ax in transfer.axes for line in ax.get_lines()}
    assert {f"loss:mup:{w}" for w in WIDTHS} <= gids
    movement_gids = {
        line.get_gid() for ax in specs["feature_movement"].figure.axes for line in ax.get_lines()
    }
    assert {"ntk_change:ntk", "feature_movement_layer_2:mup"} <= movement_gids
