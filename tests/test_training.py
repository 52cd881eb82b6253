"""Lightning training against plain torch loops written out here, step for step."""

import math

import pytest
import torch
from omegaconf import OmegaConf

from widthlab.losses import evaluate, loss_value
from widthlab.models.mlp import MLP
from widthlab.runtime.training import (
    MLPTask,
    TensorBatches,
    TrainingDiverged,
    build_trainer,
    dead_hidden_layer,
    fit,
    initial_loss,
    train_network,
)

CONF_PATH = __file__.replace("tests/test_training.py", "conf/train/gd.yaml")
CONF = OmegaConf.load(CONF_PATH)


def train_cfg(**changes):
    cfg = OmegaConf.to_container(CONF)
    cfg.update(changes)
    return cfg


def problem(n=40, dim=5, outputs=3, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, dim, generator=g, dtype=dtype)
    y = torch.nn.functional.one_hot(torch.randint(outputs, (n,), generator=g), outputs)
    return x, y.to(dtype)


def net(width=16, depth=2, outputs=3, activation="relu", seed=3):
    return MLP(
        5, width, depth, out_features=outputs, activation=activation, seed=seed, dtype=torch.float64
    )


def test_squared_loss_is_half_the_summed_square_averaged_over_points():
    out = torch.tensor([[1.0, 2.0], [0.0, -1.0]])
    y = torch.tensor([[0.0, 1.0], [1.0, 0.0]])
    # points: ½(1 + 1) = 1 and ½(1 + 1) = 1 → mean 1
    assert float(loss_value(out, y, "squared")) == pytest.approx(1.0)
    ce = float(loss_value(out, y, "cross_entropy"))
    by_hand = 0.5 * (
        -(2.0 - math.log(math.exp(1) + math.exp(2))) - (0.0 - math.log(1 + math.exp(-1)))
    )
    assert ce == pytest.approx(by_hand)
    with pytest.raises(ValueError, match="loss='hinge'"):
        loss_value(out, y, "hinge")


def test_minibatches_cover_every_point_once_per_epoch_in_a_seeded_order():
    x = torch.arange(10.0)[:, None]
    batches = TensorBatches(x, x, batch_size=4, seed=7)
    assert len(batches) == 3
    epoch1 = torch.cat([b[0] for b in batches]).flatten()
    epoch2 = torch.cat([b[0] for b in batches]).flatten()
    assert sorted(epoch1.tolist()) == list(range(10)) == sorted(epoch2.tolist())
    assert not torch.equal(epoch1, epoch2)  # reshuffled every epoch
    again = TensorBatches(x, x, batch_size=4, seed=7)
    assert torch.equal(torch.cat([b[0] for b in again]).flatten(), epoch1)
    (full,) = list(TensorBatches(x, x, batch_size=None))
    assert full[0] is x


@pytest.mark.parametrize(
    ("optimizer", "lr", "batch_size", "momentum"),
    [("sgd", 0.3, None, 0.0), ("adam", 1e-2, None, 0.0), ("sgd", 0.05, 16, 0.9)],
)
def test_lightning_training_equals_a_plain_torch_loop(optimizer, lr, batch_size, momentum):
    x, y = problem()
    steps = 25
    model = net()
    task = MLPTask(model, "squared", optimizer, lr, momentum=momentum)
    batches = TensorBatches(x, y, batch_size, seed=5)
    result = fit(task, batches, build_trainer(train_cfg(max_steps=steps, dtype="float64")))
    assert result.steps == steps and not result.stopped_at_threshold

    reference = net()
    params = list(reference.parameters())
    opt = (
        torch.optim.Adam(params, lr=lr)
        if optimizer == "adam"
        else torch.optim.SGD(params, lr=lr, momentum=momentum)
    )
    order = TensorBatches(x, y, batch_size, seed=5)
    done = 0
    while done < steps:
        for xb, yb in order:
            if done == steps:
                break
            opt.zero_grad()
            (0.5 * (reference(xb) - yb).pow(2).sum(1).mean()).backward()
            opt.step()
            done += 1
    for a, b in zip(model.parameters(), reference.parameters(), strict=True):
        torch.testing.assert_close(a.detach().cpu(), b.detach(), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_lightning_trains_mup_with_its_per_layer_learning_rates(optimizer):
    # Width 16 on base width 8 (m = 2), depth 2: parameters W1, b1, W2, b2, W3, b3. The
    # scales typed from Yang et al. (2022), Table 8 / microsoft/mup: SGD multiplies the rate
    # of the input weights, the hidden biases and the readout weights by m; Adam divides
    # that of the hidden matrix by m.
    scales = {"sgd": [2, 2, 1, 2, 2, 1], "adam": [1, 1, 0.5, 1, 1, 1]}[optimizer]
    lr = 0.2 if optimizer == "sgd" else 1e-2
    x, y = problem()
    steps = 15

    def mup():
        return MLP(5, 16, 2, 3, "relu", "mup", 1.2, 0.3, seed=4, dtype=torch.float64, base_width=8)

    model = mup()
    task = MLPTask(model, "squared", optimizer, lr)
    fit(
        task,
        TensorBatches(x, y, 16, seed=2),
        build_trainer(train_cfg(max_steps=steps, dtype="float64")),
    )

    reference = mup()
    params = list(reference.parameters())
    groups = [{"params": [p], "lr": lr * s} for p, s in zip(params, scales, strict=True)]
    adam = torch.optim.Adam(groups)
    order = TensorBatches(x, y, 16, seed=2)  # reshuffled every epoch, as Lightning sees it
    done = 0
    while done < steps:
        for xb, yb in order:
            if done == steps:
                break
            grads = torch.autograd.grad(0.5 * (reference(xb) - yb).pow(2).sum(1).mean(), params)
            if optimizer == "sgd":
                with torch.no_grad():
                    for p, g, s in zip(params, grads, scales, strict=True):
                        p.sub_(lr * s * g)
            else:
                for p, g in zip(params, grads, strict=True):
                    p.grad = g
                adam.step()
            done += 1
    for a, b in zip(model.parameters(), reference.parameters(), strict=True):
        torch.testing.assert_close(a.detach().cpu(), b.detach(), rtol=1e-12, atol=1e-12)


def test_full_batch_gd_step_is_theta_minus_lr_times_gradient():
    x, y = problem()
    model, start = net(), net()
    fit(
        MLPTask(model, "squared", "sgd", 0.5),
        TensorBatches(x, y),
        build_trainer(train_cfg(max_steps=1, dtype="float64")),
    )
    loss = 0.5 * (start(x) - y).pow(2).sum(1).mean()
    grads = torch.autograd.grad(loss, list(start.parameters()))
    for p, p0, g in zip(model.parameters(), start.parameters(), grads, strict=True):
        torch.testing.assert_close(p.detach(), p0.detach() - 0.5 * g, rtol=1e-13, atol=1e-13)


def test_training_stops_once_the_loss_is_below_the_threshold():
    x, y = problem(n=12)
    model = net(width=256, depth=1)
    task = MLPTask(model, "squared", "adam", 1e-2, max_steps=3000, stop_loss=1e-3)
    trainer = build_trainer(train_cfg(max_steps=3000, dtype="float64"))
    result = fit(task, TensorBatches(x, y), trainer)
    assert result.stopped_at_threshold and result.steps < 3000
    # The loss that stopped it was measured before the last step; after it, still below.
    assert evaluate(model, x, y, "squared", True)["loss"] < 1e-3


def test_a_diverging_run_raises_training_diverged():
    # erf: a huge step cannot kill every unit (as it can with relu, whose dead network has a
    # finite loss), so the outputs grow without bound.
    x, y = problem()
    task = MLPTask(net(activation="erf"), "squared", "sgd", 1e6)
    with pytest.raises(
        TrainingDiverged,
        match=r"the train loss became (nan|inf) after \d+ "
        r"steps \(lr=1e\+06; lower train.lr\)",
    ):
        fit(task, TensorBatches(x, y), build_trainer(train_cfg(max_steps=200, dtype="float64")))


def test_a_loss_that_explodes_but_stays_finite_fails_by_the_divergence_factor():
    # Adam's steps are bounded by lr, so at lr 1e4 the loss grows huge but finite; a run
    # that ends far above where it started is a failure, not a result.
    x, y = problem()
    model = net(activation="erf")
    task = MLPTask(model, "squared", "adam", 1e4, divergence_factor=1000.0)
    assert initial_loss(model, x, y, "squared") < 5  # a few units of loss at initialization
    trainer = build_trainer(train_cfg(max_steps=50, dtype="float64"))
    with pytest.raises(TrainingDiverged, match=r"grew from .* more than train.divergence_factor"):
        fit(task, TensorBatches(x, y), trainer)


def test_a_dead_relu_network_fails_instead_of_passing_as_a_result():
    x, y = problem()
    model = net(width=8, depth=2)
    with torch.no_grad():  # every first-layer unit negative on every input: a dead network
        model.layers[0].bias.fill_(-1e3)
        model.layers[0].bias_multiplier = 1.0
    assert dead_hidden_layer(model, x) == 1
    task = MLPTask(model, "squared", "sgd", 0.1)
    with pytest.raises(TrainingDiverged, match=r"dead network: every unit of hidden layer 1"):
        fit(task, TensorBatches(x, y), build_trainer(train_cfg(max_steps=3, dtype="float64")))
    assert dead_hidden_layer(net(width=8, depth=2), x) is None


def test_train_network_logs_curves_into_the_jobs_run(tmp_path):
    from mlflow import MlflowClient

    from widthlab.runtime import jobs
    from widthlab.runtime.tracking import JobRun

    uri = f"sqlite:///{tmp_path}/t.db"
    client = MlflowClient(uri)
    run = client.create_run(client.create_experiment("t"))
    x, y = problem()
    cfg = {
        "train": train_cfg(max_steps=30, log_every_n_epochs=10, dtype="float64"),
        "tracking": {"uri": uri},
        "seed": 0,
    }
    token = jobs.ACTIVE_RUN.set(JobRun(client, run.info.run_id))
    try:
        train_network(cfg, net(), x, y, {"train": (x, y), "test": (x[:5], y[:5])}, True)
    finally:
        jobs.ACTIVE_RUN.reset(token)
    history = client.get_metric_history(run.info.run_id, "epoch/test_error")
    # at initialization, every 10 full-batch steps, and the final point after step 30
    assert [m.step for m in history] == [0, 10, 20, 30]
    assert client.get_metric_history(run.info.run_id, "epoch/train_loss")


def test_a_backward_hook_anywhere_sends_each_step_through_manual_backward():
    # With full precision on one device and no backward hooks, the block's steps call
    # loss.backward() directly; a callback with an on_after_backward hook must still see
    # every step, and both paths must end at the same parameters.
    import pytorch_lightning as pl

    class CountBackward(pl.Callback):
        calls = 0

        def on_after_backward(self, trainer, pl_module):
            CountBackward.calls += 1

    x, y = problem()
    ends, direct = [], []
    for callbacks in ([], [CountBackward()]):
        task = MLPTask(net(), "squared", "adam", 1e-2)
        trainer = build_trainer(train_cfg(max_steps=25, dtype="float64"), extra_callbacks=callbacks)
        fit(task, TensorBatches(x, y), trainer)
        ends.append(list(task.model.parameters()))
        direct.append(task.direct_backward())
    assert direct == [True, False]
    assert CountBackward.calls == 25
    for a, b in zip(*ends, strict=True):
        assert torch.equal(a.detach(), b.detach())


def test_a_failed_run_still_gets_the_curve_points_it_reached(tmp_path):
    # The curves are written in batches once training ends; a run that fails must not lose
    # them. The first point is the loss at initialization, computed here independently.
    from mlflow import MlflowClient

    from widthlab.runtime import jobs
    from widthlab.runtime.tracking import JobRun

    uri = f"sqlite:///{tmp_path}/t.db"
    client = MlflowClient(uri)
    run = client.create_run(client.create_experiment("t"))
    x, y = problem()
    model = net(activation="erf")
    start = initial_loss(model, x, y, "squared")
    cfg = {
        "train": train_cfg(max_steps=200, lr=1e6, log_every_n_epochs=1, dtype="float64"),
        "tracking": {"uri": uri},
        "seed": 0,
    }
    token = jobs.ACTIVE_RUN.set(JobRun(client, run.info.run_id))
    try:
        with pytest.raises(TrainingDiverged):
            train_network(cfg, model, x, y, {"train": (x, y)}, True)
    finally:
        jobs.ACTIVE_RUN.reset(token)
    history = client.get_metric_history(run.info.run_id, "epoch/train_loss")
    assert history and history[0].step == 0
    assert history[0].value == pytest.approx(start, rel=1e-12)


def test_a_machine_with_slurm_installed_trains_without_lightnings_srun_warning(tmp_path):
    """A job is one process: with an `srun` on PATH (a cluster's login node, or a machine with
    the slurm-wlm package) Lightning's warning that srun is not used is noise on every job.
    In a fresh interpreter (pytest's own warning filters would hide the module's)."""
    import os
    import subprocess
    import sys

    srun = tmp_path / "srun"
    srun.write_text("#!/bin/sh\nexit 0\n")
    srun.chmod(0o755)
    code = (
        "import torch\n"
        "from omegaconf import OmegaConf\n"
        "from widthlab.models.mlp import MLP\n"
        "from widthlab.runtime.training import MLPTask, TensorBatches, build_trainer, fit\n"
        f"cfg = OmegaConf.to_container(OmegaConf.load({str(CONF_PATH)!r}))\n"
        "cfg.update(max_steps=2, dtype='float64')\n"
        "x = torch.randn(12, 5, dtype=torch.float64); y = torch.randn(12, 3, dtype=torch.float64)\n"
        "model = MLP(5, 8, 1, out_features=3, seed=0, dtype=torch.float64)\n"
        "fit(MLPTask(model, 'squared', 'sgd', 1e-2, max_steps=2, stop_loss=None),\n"
        "    TensorBatches(x, y), build_trainer(cfg))\n"
    )
    env = {**os.environ, "PATH": f"{tmp_path}:{os.environ['PATH']}"}
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "srun" not in proc.stderr, proc.stderr[-2000:]
