"""Networks trained as one stack end where each ends trained alone (`train_network`), in
float64, for every optimizer, loss, stopping rule and failure the studies use."""

import copy

import pytest
import torch
from omegaconf import OmegaConf

from widthlab.batched_mlp import BatchedMLP
from widthlab.models.centered import CenteredNetwork
from widthlab.models.mlp import MLP
from widthlab.runtime.batched_training import train_networks
from widthlab.runtime.training import TrainingDiverged, TrainingResult, train_network

GD = OmegaConf.to_container(
    OmegaConf.load(__file__.replace("tests/test_batched_training.py", "conf/train/gd.yaml"))
)
TOLERANCE = 1e-10  # relative, on every parameter and every loss


def job(seed, **train):
    return {
        "train": {**GD, "dtype": "float64", "log_every_n_epochs": 7, **train},
        "seed": seed,
        "tracking": {"enabled": False},
    }


def data(n=48, dim=5, classes=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, dim, generator=g, dtype=torch.float64)
    y = torch.nn.functional.one_hot(torch.randint(classes, (n,), generator=g), classes)
    return x, y.double()


def mlp(width, seed, depth=1, parameterization="standard", activation="relu", classes=3):
    return MLP(
        5, width, depth, classes, activation, parameterization, seed=seed, dtype=torch.float64
    )


def close(a, b) -> float:
    a, b = a.detach(), b.detach()
    return float((a - b).abs().max() / max(float(b.abs().max()), 1e-300))


def compare(jobs, nets, x, y, centered=False, **kwargs):
    """Train copies alone and the originals as a stack; assert the same end, each."""
    evaluation = {"train": (x, y)}
    alone = []
    for cfg, net in zip(jobs, nets, strict=True):
        model = copy.deepcopy(net)
        model = CenteredNetwork(model) if centered else model
        try:
            result = train_network(cfg, model, x, y, evaluation, True, **kwargs)
        except TrainingDiverged as error:
            result = error
        alone.append((model.network if centered else model, result))
    stacked = train_networks(jobs, nets, x, y, evaluation, True, centered=centered, **kwargs)
    for (model, result), net, batched in zip(alone, nets, stacked, strict=True):
        assert type(batched) is type(result), (batched, result)
        if isinstance(result, TrainingDiverged):
            assert str(batched) == str(result)
            continue
        assert (batched.steps, batched.stopped_at_threshold) == (
            result.steps,
            result.stopped_at_threshold,
        )
        assert batched.final_loss == pytest.approx(result.final_loss, rel=TOLERANCE)
        for p, q in zip(net.parameters(), model.parameters(), strict=True):
            assert close(p.detach(), q.detach()) <= TOLERANCE
    return stacked


def test_adam_on_the_squared_loss_each_network_stopped_at_its_own_step():
    """Widths 3, 30 and 60 (padded to 60), three seeds, Adam until the loss is below 0.02:
    the wide ones stop at their own steps and must not move while the narrow one goes on."""
    x, y = data()
    widths, seeds = [3, 30, 60], [0, 1, 2]
    jobs = [job(s, optimizer="adam", lr=0.03, max_steps=300, stop_loss=0.02) for s in seeds]
    nets = [mlp(w, s) for w, s in zip(widths, seeds, strict=True)]
    results = compare(jobs, nets, x, y)
    steps = [r.steps for r in results]
    assert len(set(steps)) == 3 and any(r.stopped_at_threshold for r in results), steps


def test_sgd_with_momentum_on_the_cross_entropy_with_each_networks_own_minibatches():
    x, y = data(n=40)
    jobs = [job(s, loss="cross_entropy", lr=0.05, momentum=0.9, batch_size=8, max_steps=60)
            for s in (0, 5)]  # fmt: skip
    nets = [mlp(6, 0, depth=2), mlp(11, 5, depth=2)]
    compare(jobs, nets, x, y)


def test_centered_ntk_networks_by_plain_gradient_descent():
    """finite_vs_infinite's networks: NTK parameterization (its multipliers depend on each
    network's width), centered, full-batch GD at a learning rate the study sets."""
    x, y = data(n=24)
    jobs = [job(s, loss="squared", optimizer="sgd", max_steps=120) for s in (0, 1, 2)]
    nets = [mlp(w, s, depth=2, parameterization="ntk") for w, s in ((16, 0), (32, 1), (64, 2))]
    compare(jobs, nets, x, y, centered=True, lr=0.3, lr_key="study.lr_fraction")


def test_a_network_that_diverges_fails_alone_while_the_others_train():
    """erf networks under Adam at a large learning rate: the wide one's loss grows past the
    divergence factor (a standard readout sums more units, each moved by up to lr), the
    narrow one's does not; each gets what it gets alone."""
    x, y = data(n=24)
    jobs = [job(s, optimizer="adam", lr=1.0, max_steps=40, divergence_factor=3.0)
            for s in (0, 1)]  # fmt: skip
    nets = [mlp(1, 0, activation="erf"), mlp(256, 1, activation="erf")]
    results = compare(jobs, nets, x, y)
    assert {type(r) for r in results} == {TrainingDiverged, TrainingResult}, results


def test_the_stack_pads_and_writes_each_network_back():
    nets = [mlp(3, 0, depth=2), mlp(7, 1, depth=2)]
    stack = BatchedMLP(nets)
    assert stack.weights[1].shape == (2, 7, 7)  # hidden layers padded to the widest
    x, _ = data(n=6)
    out = stack(x)
    for k, net in enumerate(nets):
        assert torch.equal(stack.network(k).layers[0].weight, net.layers[0].weight)
        assert close(out[k], net(x)) <= 1e-14
    with pytest.raises(ValueError, match="one depth"):
        BatchedMLP([mlp(3, 0, depth=1), mlp(3, 0, depth=2)])


def test_the_same_stack_trained_again_gives_the_same_bits():
    """float32: what makes a rerun of a sweep on one machine reproduce its records."""
    x, y = data(n=30)
    x, y = x.float(), y.float()

    def trained(seeds):
        jobs = [job(s, optimizer="adam", lr=0.01, max_steps=60, dtype="float32") for s in seeds]
        nets = [MLP(5, 9, 1, 3, seed=s) for s in seeds]
        train_networks(jobs, nets, x, y, {"train": (x, y)}, True)
        return nets

    first, again = trained([3, 4, 5]), trained([3, 4, 5])
    for a, b in zip(first, again, strict=True):
        for p, q in zip(a.parameters(), b.parameters(), strict=True):
            assert torch.equal(p, q)


def test_stacks_hold_the_seeds_of_one_width_and_leave_arithmetic_bound_networks_alone():
    from types import SimpleNamespace

    from widthlab.runtime.stacks import plan_stacks

    widths = [13, 13, 13, 47, 47, 1333, 1333]
    resolved = [
        {"model": {"width": w, "depth": 1}, "data": {"n_train": 1000}, "train": {},
         "study": {}, "seed": s, "max_memory_gb": 64}
        for s, w in enumerate(widths)
    ]  # fmt: skip
    job = SimpleNamespace(
        measure_batch=len, stack_keys=("model.width", "seed"), peak_memory=lambda cfg: 1e6
    )
    plan = SimpleNamespace(
        study=SimpleNamespace(job=lambda kind: job),
        plans=[SimpleNamespace(kind="train")] * len(widths),
        resolved=resolved,
    )
    stacks = plan_stacks(plan, list(range(len(widths))), workers=2)
    assert sorted(sorted(s) for s in stacks) == [[0, 1, 2], [3, 4], [5], [6]]
