"""MLP: seeding, initialization statistics, the standard and NTK parameterizations, argument
checks (μP and mean-field: tests/test_parameterizations.py)."""

import math

import pytest
import torch

from widthlab.activations import get_activation
from widthlab.models.mlp import MLP

F64 = torch.float64


def test_same_seed_same_parameters_and_generator_equivalent():
    a = MLP(5, 16, 2, 3, seed=7, dtype=F64)
    b = MLP(5, 16, 2, 3, seed=7, dtype=F64)
    c = MLP(5, 16, 2, 3, seed=torch.Generator().manual_seed(7), dtype=F64)
    d = MLP(5, 16, 2, 3, seed=8, dtype=F64)
    for pa, pb, pc, pd in zip(
        a.parameters(), b.parameters(), c.parameters(), d.parameters(), strict=True
    ):
        assert torch.equal(pa, pb)
        assert torch.equal(pa, pc)
        assert not torch.equal(pa, pd)


def test_layers_shapes_dtype_and_parameter_count():
    model = MLP(5, 16, 3, 2, dtype=F64, seed=0)
    shapes = [(layer.weight.shape, layer.bias.shape) for layer in model.layers]
    assert shapes == [((16, 5), (16,)), ((16, 16), (16,)), ((16, 16), (16,)), ((2, 16), (2,))]
    assert all(p.dtype == F64 and p.device.type == "cpu" for p in model.parameters())
    assert model.num_parameters() == 16 * 6 + 2 * 16 * 17 + 2 * 17
    assert model(torch.zeros(4, 5, dtype=F64)).shape == (4, 2)


@pytest.mark.parametrize("parameterization", ["ntk", "standard"])
def test_initialization_statistics(parameterization):
    # Each check is mean ± 5 standard errors of the sample mean / variance of N i.i.d. normals.
    w_std, b_std = 1.7, 0.6
    model = MLP(300, 500, 2, 1, "relu", parameterization, w_std, b_std, seed=3, dtype=F64)
    for layer in model.layers[:-1]:
        fan_in = layer.in_features
        if parameterization == "ntk":
            weight_var, bias_var = 1.0, 1.0
            assert layer.weight_multiplier == pytest.approx(w_std / math.sqrt(fan_in), rel=1e-15)
            assert layer.bias_multiplier == b_std
        else:
            weight_var, bias_var = w_std**2 / fan_in, b_std**2
            assert layer.weight_multiplier == layer.bias_multiplier == 1.0
        for values, var in [(layer.weight, weight_var), (layer.bias, bias_var)]:
            n = values.numel()
            assert abs(values.mean().item()) < 5 * math.sqrt(var / n)
            assert abs(values.var().item() / var - 1) < 5 * math.sqrt(2 / n)


@pytest.mark.parametrize("activation", ["relu", "erf", "tanh", "gelu"])
def test_ntk_and_standard_compute_the_same_function(activation):
    ntk = MLP(4, 32, 3, 2, activation, "ntk", 1.4, 0.3, seed=11, dtype=F64)
    standard = MLP(4, 32, 3, 2, activation, "standard", 1.4, 0.3, seed=11, dtype=F64)
    for a, b in zip(ntk.layers, standard.layers, strict=True):
        torch.testing.assert_close(a.weight * a.weight_multiplier, b.weight, rtol=1e-15, atol=0)
        torch.testing.assert_close(a.bias * a.bias_multiplier, b.bias, rtol=1e-15, atol=0)
    x = torch.randn(10, 4, dtype=F64, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(ntk(x), standard(x), rtol=1e-12, atol=1e-12)


def test_forward_by_hand_and_cache():
    model = MLP(3, 8, 2, 1, "tanh", "ntk", 1.2, 0.5, seed=2, dtype=F64)
    x = torch.randn(6, 3, dtype=F64, generator=torch.Generator().manual_seed(1))
    h = x
    for index, layer in enumerate(model.layers):
        z = 1.2 / math.sqrt(h.shape[1]) * h @ layer.weight.T + 0.5 * layer.bias
        h = torch.tanh(z) if index < 2 else z
    torch.testing.assert_close(model(x), h, rtol=1e-13, atol=1e-13)
    cache = model.forward_with_cache(x)
    torch.testing.assert_close(cache.output, h, rtol=1e-13, atol=1e-13)
    assert len(cache.layer_inputs) == 3 and len(cache.pre_activations) == 2
    assert cache.layer_inputs[0] is x
    for z, h_next in zip(cache.pre_activations, cache.layer_inputs[1:], strict=True):
        torch.testing.assert_close(get_activation("tanh")(z), h_next, rtol=0, atol=0)


def test_output_variance_at_initialization_matches_the_relu_nngp_diagonal():
    # Over seeds, Var f(x) = w² E[relu(u)²] = w² · (w² |x|²/D)/2 exactly at any width (depth 1).
    x = torch.tensor([[1.0, -2.0, 0.5]], dtype=F64)
    w = 1.3
    outputs = torch.cat([MLP(3, 256, 1, w_std=w, seed=s, dtype=F64)(x) for s in range(400)])
    expected = w**2 * (w**2 * x.square().sum().item() / 3) / 2
    # Var of a sample variance of M ≈ Gaussian values is 2σ⁴/(M−1); allow 5 of those.
    assert abs(outputs.var().item() - expected) < 5 * expected * math.sqrt(2 / 399)


@pytest.mark.parametrize(
    ("kwargs", "argument"),
    [
        ({"width": 0}, "width"),
        ({"depth": 0}, "depth"),
        ({"in_features": 0}, "in_features"),
        ({"out_features": 0}, "out_features"),
        ({"width": 2.5}, "width"),
        ({"activation": "sigmoid"}, "activation"),
        ({"parameterization": "muP"}, "parameterization"),
        ({"w_std": -1.0}, "w_std"),
        ({"b_std": float("nan")}, "b_std"),
    ],
)
def test_bad_arguments_raise_naming_them(kwargs, argument):
    args = {"in_features": 3, "width": 4, "depth": 1} | kwargs
    with pytest.raises(ValueError, match=rf"{argument}=.*allowed") as info:
        MLP(**args)
    assert repr(kwargs[argument]) in str(info.value)


def test_centered_network_starts_at_zero_with_the_same_ntk_and_steps():
    from widthlab.empirical import empirical_ntk
    from widthlab.models.centered import CenteredNetwork

    x = torch.randn(6, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    network = MLP(4, 16, 2, 3, "relu", "ntk", 1.4, 0.1, seed=2, dtype=torch.float64)
    start = network(x).detach()
    centered = CenteredNetwork(network)
    assert torch.equal(centered(x), torch.zeros(6, 3, dtype=torch.float64))
    # The same trainable parameters, hence the same NTK (jacobian path: any nn.Module).
    assert sum(p.requires_grad for p in centered.parameters()) == len(list(network.parameters()))
    ntk = empirical_ntk(centered, x, method="jacobian")
    torch.testing.assert_close(ntk, empirical_ntk(network, x), rtol=1e-12, atol=0)
    # One gradient step moves the centered output as it moves the network's.
    loss = centered(x).square().sum() + centered(x).sum()
    loss.backward()
    with torch.no_grad():
        for p in network.parameters():
            p -= 0.01 * p.grad
    torch.testing.assert_close(centered(x), network(x) - start, rtol=0, atol=1e-14)
    assert not torch.equal(network(x), start)
