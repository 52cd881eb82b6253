"""The four abc-parameterizations of the MLP: standard and NTK unchanged against values
computed here from the documented draws, μP and mean-field against the exponents of Yang et
al. (2022, Table 3), their base-width identities, the learning-rate groups and the kernel
weighted by them."""

import itertools
import math

import pytest
import torch

from widthlab.empirical import empirical_ntk
from widthlab.models.mlp import MLP

F64 = torch.float64


@pytest.fixture(autouse=True)
def one_thread():
    """One torch thread: on a shared 2-core machine a second one only adds contention."""
    from widthlab.runtime.devices import fixed_threads

    with fixed_threads(1):
        yield


D, C = 5, 3


def draws(fans, seed):
    """The standard normals ξ of every layer in the documented order W_1, b_1, W_2, …"""
    g = torch.Generator().manual_seed(seed)
    out = []
    for fan_in, fan_out in itertools.pairwise(fans):
        xi_w = torch.randn(fan_out, fan_in, generator=g, dtype=F64)
        out.append((xi_w, torch.randn(fan_out, generator=g, dtype=F64)))
    return out


def by_hand(parameterization, width, depth, w_std, b_std, seed):
    """(stored parameters, f(stored, x)) written out from the module docstring."""
    fans = [D] + [width] * depth + [C]
    xi = draws(fans, seed)
    scales = [w_std / math.sqrt(fan_in) for fan_in in fans[:-1]]
    if parameterization == "ntk":
        stored = [p for pair in xi for p in pair]
        mults = [(s, b_std) for s in scales]
    else:
        stored = [p for (xw, xb), s in zip(xi, scales, strict=True) for p in (xw * s, xb * b_std)]
        mults = [(1.0, 1.0)] * len(scales)

    def forward(params, x):
        h = x
        for index, (c, beta) in enumerate(mults):
            w, b = params[2 * index], params[2 * index + 1]
            z = c * (h @ w.T) + beta * b
            h = torch.relu(z) if index < len(mults) - 1 else z
        return h

    return stored, forward


@pytest.mark.parametrize("parameterization", ["standard", "ntk"])
@pytest.mark.parametrize("b_std", [0.0, 0.4])
def test_standard_and_ntk_keep_their_draws_forward_gradients_and_kernel(parameterization, b_std):
    width, depth, w_std, seed = 24, 3, 1.3, 4
    model = MLP(D, width, depth, C, "relu", parameterization, w_std, b_std, seed=seed, dtype=F64)
    stored, forward = by_hand(parameterization, width, depth, w_std, b_std, seed)
    for p, q in zip(model.parameters(), stored, strict=True):
        assert torch.equal(p.detach(), q)  # the same draws, bit for bit
    x = torch.randn(7, D, dtype=F64, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(model(x), forward(stored, x), rtol=1e-13, atol=1e-13)

    params = [q.clone().requires_grad_(True) for q in stored]
    expected = torch.autograd.grad(forward(params, x).square().sum(), params)
    got = torch.autograd.grad(model(x).square().sum(), list(model.parameters()))
    for a, b in zip(got, expected, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)

    # Θ = Σ_o J_o J_oᵀ from the Jacobian of the hand-written function.
    jac = torch.autograd.functional.jacobian(lambda *ps: forward(list(ps), x), tuple(stored))
    flat = torch.cat([j.reshape(7 * C, -1) for j in jac], dim=1).reshape(7, C, -1)
    theta = torch.einsum("aop,bop->ab", flat, flat)
    torch.testing.assert_close(empirical_ntk(model, x), theta, rtol=1e-11, atol=1e-11)
    assert model.lr_scales("sgd") == model.lr_scales("adam") == [1.0] * len(stored)
    (group,) = model.param_groups(0.37, "sgd")
    assert group["lr"] == 0.37 and group["params"] == list(model.parameters())


@pytest.mark.parametrize(("scaled", "plain"), [("mup", "standard"), ("mean_field", "ntk")])
def test_scaled_parameterizations_equal_their_plain_form_at_the_base_width(scaled, plain):
    a = MLP(D, 32, 2, C, "relu", scaled, 1.4, 0.3, seed=2, dtype=F64, base_width=32)
    b = MLP(D, 32, 2, C, "relu", plain, 1.4, 0.3, seed=2, dtype=F64)
    for la, lb in zip(a.layers, b.layers, strict=True):
        assert torch.equal(la.weight, lb.weight) and torch.equal(la.bias, lb.bias)
        assert (la.weight_multiplier, la.bias_multiplier) == pytest.approx(
            (lb.weight_multiplier, lb.bias_multiplier), rel=1e-15
        )
    for optimizer in ("sgd", "adam"):
        assert a.lr_scales(optimizer) == pytest.approx([1.0] * 6, rel=1e-15)


# Yang et al. (2022), Table 3: exponents of width n of the effective weights c·W of the input,
# hidden and readout layers: (initial variance, SGD learning rate c²λ, Adam learning rate cλ).
TABLE_3 = {
    "standard": [(0, 0, 0), (-1, 0, 0), (-1, 0, 0)],
    "ntk": [(0, 0, 0), (-1, -1, -0.5), (-1, -1, -0.5)],
    "mean_field": [(0, 1, 0), (-1, 0, -1), (-2, -1, -1)],
    "mup": [(0, 1, 0), (-1, 0, -1), (-2, -1, -1)],
}


@pytest.mark.parametrize("parameterization", list(TABLE_3))
def test_effective_weights_scale_with_width_as_table_3_says(parameterization):
    def effective(width):
        model = MLP(
            D, width, 2, 4, "relu", parameterization, 1.0, 0.0, seed=1, dtype=F64, base_width=64
        )
        sgd, adam = model.lr_scales("sgd"), model.lr_scales("adam")
        out = []
        for i, layer in enumerate(model.layers):
            c = layer.weight_multiplier
            variance = float((c * layer.weight.detach()).var())  # ≥ 1024 entries: ±9% at most
            out.append((variance, c**2 * sgd[2 * i], c * adam[2 * i]))
        return out

    small, large = effective(256), effective(4096)
    for role, (a, b, expected) in enumerate(
        zip(small, large, TABLE_3[parameterization], strict=True)
    ):
        exponents = [math.log(y / x) / math.log(16) for x, y in zip(a, b, strict=True)]
        assert exponents[0] == pytest.approx(expected[0], abs=0.06), (role, "variance")
        assert exponents[1:] == pytest.approx(list(expected[1:]), abs=1e-12), role


def test_mup_learning_rate_groups_follow_microsoft_mup():
    # width 64 on base 16: m = 4. MuSGD multiplies the rate of every tensor with one
    # width-like dimension (input W, hidden biases, readout W) by m; MuAdam divides that of
    # the hidden matrices by m.
    model = MLP(D, 64, 2, C, "relu", "mup", 1.0, 0.2, seed=0, dtype=F64, base_width=16)
    assert model.lr_scales("sgd") == [4.0, 4.0, 1.0, 4.0, 4.0, 1.0]
    assert model.lr_scales("adam") == [1.0, 1.0, 0.25, 1.0, 1.0, 1.0]
    groups = model.param_groups(0.1, "sgd")
    assert [g["lr"] for g in groups] == pytest.approx([0.4, 0.1])
    params = list(model.parameters())
    assert groups[0]["params"] == [params[i] for i in (0, 1, 3, 4)]
    assert model.layers[-1].weight_multiplier == 0.25
    # The readout's weights keep the base width's variance w_std²/n₀ (MuReadout's init).
    assert float(model.layers[-1].weight.detach().var()) == pytest.approx(1 / 16, rel=0.5)


def test_scaled_parameterizations_need_a_base_width():
    with pytest.raises(ValueError, match=r"base_width=None is not allowed"):
        MLP(D, 8, 1, parameterization="mup")
    assert MLP(D, 8, 1, parameterization="standard", base_width=None).base_width is None


@pytest.mark.parametrize("parameterization", ["mup", "mean_field"])
def test_learning_rate_weighted_kernel_by_hand_and_by_jacobians(parameterization):
    model = MLP(D, 16, 2, C, "tanh", parameterization, 1.2, 0.5, seed=5, dtype=F64, base_width=4)
    x = torch.randn(6, D, dtype=F64, generator=torch.Generator().manual_seed(3))
    weights = model.lr_scales("sgd")
    params = list(model.parameters())
    jac = torch.autograd.functional.jacobian(
        lambda *ps: torch.func.functional_call(
            model, dict(zip([n for n, _ in model.named_parameters()], ps, strict=True)), (x,)
        ),
        tuple(p.detach() for p in params),
    )
    theta = sum(
        w * torch.einsum("aop,bop->ab", j.reshape(6, C, -1), j.reshape(6, C, -1))
        for w, j in zip(weights, jac, strict=True)
    )
    structured = empirical_ntk(model, x, parameter_weights=weights)
    jacobian = empirical_ntk(model, x, parameter_weights=weights, method="jacobian")
    torch.testing.assert_close(structured, theta, rtol=1e-11, atol=1e-11)
    torch.testing.assert_close(jacobian, theta, rtol=1e-11, atol=1e-11)
    assert not torch.allclose(structured, empirical_ntk(model, x))  # the weights matter
    with pytest.raises(ValueError, match="parameter_weights has 2 entries"):
        empirical_ntk(model, x, parameter_weights=[1.0, 1.0])
