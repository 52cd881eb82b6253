"""Networks trained side by side (`widthlab.stacked_mlp`) against each network trained alone:
torch.optim on autograd gradients, Lightning's `train_network`, and microsoft/mup's own
coordinate check."""

import math

import pytest
import torch
from omegaconf import OmegaConf

from widthlab.losses import loss_value
from widthlab.models.mlp import MLP
from widthlab.runtime.training import TensorBatches, train_network
from widthlab.stacked_mlp import StackedMLP, coordinate_check, train_stacked

F64 = torch.float64


@pytest.fixture(autouse=True)
def one_thread():
    """One torch thread: on a shared 2-core machine a second one only adds contention."""
    from widthlab.runtime.devices import fixed_threads

    with fixed_threads(1):
        yield


D, C = 5, 3
PARAMETERIZATIONS = ("standard", "ntk", "mean_field", "mup")


def problem(n=40, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, D, dtype=F64, generator=g)
    y = torch.nn.functional.one_hot(torch.randint(C, (n,), generator=g), C).to(F64)
    return x, y


def net(parameterization, seed=3, width=32, activation="relu"):
    return MLP(
        D, width, 2, C, activation, parameterization, 1.4, 0.3, seed=seed, dtype=F64, base_width=8
    )


def alone(model, batches, loss, optimizer, lr, steps):
    """One network, torch.optim with the model's parameter groups, autograd gradients."""
    groups = model.param_groups(lr, optimizer)
    opt = torch.optim.Adam(groups, lr=lr) if optimizer == "adam" else torch.optim.SGD(groups, lr=lr)
    done = 0
    while done < steps:
        for xb, yb in batches:
            if done == steps:
                break
            opt.zero_grad()
            loss_value(model(xb), yb, loss).backward()
            opt.step()
            done += 1
    return model


@pytest.mark.parametrize("parameterization", PARAMETERIZATIONS)
@pytest.mark.parametrize(
    ("optimizer", "loss", "lrs"),
    [
        ("sgd", "squared", (0.05, 0.2)),
        ("sgd", "cross_entropy", (0.1, 0.4)),
        ("adam", "cross_entropy", (1e-3, 1e-2)),
    ],
)
def test_each_network_of_a_stack_trains_as_it_would_alone(parameterization, optimizer, loss, lrs):
    x, y = problem()
    batches = [(x[:16], y[:16]), (x[16:32], y[16:32]), (x[32:], y[32:])]
    stack = StackedMLP.copies(net(parameterization), len(lrs))
    scales = net(parameterization).lr_scales(optimizer)
    train_stacked(stack, batches, loss, optimizer, lrs, scales, 10)
    for k, lr in enumerate(lrs):
        reference = alone(net(parameterization), batches, loss, optimizer, lr, 10)
        for a, b in zip(stack.network(k).parameters(), reference.parameters(), strict=True):
            torch.testing.assert_close(a.detach(), b.detach(), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(
    ("parameterization", "optimizer"), [("mup", "sgd"), ("mean_field", "adam")]
)
def test_a_stack_reproduces_train_network(parameterization, optimizer):
    # The Lightning path the other studies use, minibatches in TensorBatches' seeded order.
    x, y = problem(n=50)
    lr = 0.3 if optimizer == "sgd" else 3e-3
    cfg = {
        "train": {
            **OmegaConf.to_container(OmegaConf.load("conf/train/gd.yaml")),
            "loss": "cross_entropy",
            "optimizer": optimizer,
            "batch_size": 16,
            "max_steps": 12,
            "dtype": "float64",
        },
        "tracking": {"uri": None},
        "seed": 7,
    }
    lightning = net(parameterization)
    train_network(cfg, lightning, x, y, {}, classification=True, lr=lr)

    stack = StackedMLP.copies(net(parameterization), 2)
    model = net(parameterization)
    train_stacked(
        stack,
        TensorBatches(x, y, 16, seed=7),
        "cross_entropy",
        optimizer,
        [lr / 2, lr],
        model.lr_scales(optimizer),
        12,
    )
    for a, b in zip(stack.network(1).parameters(), lightning.parameters(), strict=True):
        torch.testing.assert_close(a.detach(), b.detach().cpu(), rtol=1e-11, atol=1e-11)


def test_a_diverged_network_is_dropped_and_the_others_do_not_notice():
    x, y = problem()
    lrs = [0.1, 1e4, 0.3]
    stack = StackedMLP.copies(net("standard", activation="tanh"), 3)
    scales = [1.0] * 6
    result = train_stacked(
        stack,
        [(x, y)],
        "squared",
        "sgd",
        lrs,
        scales,
        15,
        divergence_factor=1e3,
        drop_diverged=True,
    )
    assert result.diverged.tolist() == [False, True, False] and result.kept == [0, 2]
    assert stack.size == 2 and math.isnan(result.batch_losses[-1, 1])
    for row, lr in enumerate((0.1, 0.3)):
        reference = alone(net("standard", activation="tanh"), [(x, y)], "squared", "sgd", lr, 15)
        for a, b in zip(stack.network(row).parameters(), reference.parameters(), strict=True):
            torch.testing.assert_close(a.detach(), b.detach(), rtol=1e-12, atol=1e-12)


def test_coordinate_check_at_step_zero_is_the_forward_pass():
    x, y = problem()
    models = [net("mup", seed=s) for s in range(3)]
    sizes = coordinate_check(
        StackedMLP.from_models(models), x, y, "cross_entropy", "sgd", [0.5] * 3,
        models[0].lr_scales("sgd"), 4,
    )  # fmt: skip
    assert set(sizes) == {"h1", "h2", "output", "output_change"}
    assert all(v.shape == (5, 3) for v in sizes.values())
    for k, model in enumerate(models):
        with torch.no_grad():
            cache = model.forward_with_cache(x)
        assert float(sizes["h2"][0, k]) == pytest.approx(float(cache.layer_inputs[2].abs().mean()))
        assert float(sizes["output"][0, k]) == pytest.approx(float(cache.output.abs().mean()))
    assert torch.all(sizes["output_change"][0] == 0) and torch.all(sizes["output_change"][1:] > 0)


@pytest.mark.parametrize(("optimizer", "lr"), [("sgd", 0.3), ("adam", 1e-2)])
def test_coordinate_check_equals_microsoft_mups_own(optimizer, lr):
    """mup's `get_coord_data` on the same network built from its MuReadout, its base shapes
    and its MuSGD / MuAdam: every layer's mean |activation| at every step agrees."""
    torch_nn = torch.nn
    # Not skipped when missing: this oracle is part of the suite (install: pyproject.toml).
    from mup import MuReadout, set_base_shapes
    from mup.coord_check import get_coord_data

    x, _ = problem(n=32, seed=1)
    labels = torch.randint(C, (32,), generator=torch.Generator().manual_seed(2))
    y = torch_nn.functional.one_hot(labels, C).to(F64)

    def sequential(width):
        layers = [torch_nn.Linear(D, width), torch_nn.ReLU(), torch_nn.Linear(width, width)]
        layers += [torch_nn.ReLU(), MuReadout(width, C)]
        return torch_nn.Sequential(*layers).to(F64)

    ours, theirs = {}, {}
    for width in (16, 64, 256):
        model = MLP(
            D, width, 2, C, "relu", "mup", math.sqrt(2), 0.5, seed=width, dtype=F64, base_width=16
        )
        network = sequential(width)
        set_base_shapes(network, sequential(16), delta=sequential(32), rescale_params=False)
        with torch.no_grad():
            for index, layer in zip((0, 2, 4), model.layers, strict=True):
                network[index].weight.copy_(layer.weight)
                network[index].bias.copy_(layer.bias)
        theirs[width] = lambda network=network: network
        ours[width] = coordinate_check(
            StackedMLP.copies(model, 1), x, y, "cross_entropy", optimizer, [lr],
            model.lr_scales(optimizer), 5,
        )  # fmt: skip
    data = get_coord_data(
        theirs, [(x, labels)], optimizer=optimizer, lr=lr, mup=True, nsteps=6, cuda=False,
        show_progress=False, lossfn="xent",
    )  # fmt: skip
    for width, sizes in ours.items():
        for module, name in (("1", "h1"), ("3", "h2"), ("4", "output")):
            for step in range(6):  # mup counts its steps from 1
                row = data[(data.width == width) & (data.module == module) & (data.t == step + 1)]
                assert float(row.l1.item()) == pytest.approx(float(sizes[name][step, 0]), rel=1e-12)
    # The check has something to agree on: the networks moved.
    assert float(ours[256]["output_change"][5, 0]) > 0.1
