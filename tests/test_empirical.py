"""Empirical NTK (structured, torch.func, finite differences) and empirical NNGP."""

import math

import numpy as np
import pytest
import torch
from torch import nn

from widthlab.empirical import empirical_ntk, empirical_ntk_by_output, release_workspace
from widthlab.models.mlp import MLP
from widthlab.network_nngp import empirical_nngp, network_nngp, network_seed

F64 = torch.float64


def _points(n: int, d: int, seed: int) -> torch.Tensor:
    return torch.randn(n, d, dtype=F64, generator=torch.Generator().manual_seed(seed))


def _rel_max(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).abs().max() / b.abs().max()).item()


def _finite_difference_ntk(
    model: nn.Module, x1: torch.Tensor, x2: torch.Tensor, eps: float = 1e-5
) -> torch.Tensor:
    """Θ = Σ_o J_o(x1) J_o(x2)ᵀ with J by central differences, one parameter entry at a time."""
    x = torch.cat([x1, x2])
    columns = []
    with torch.no_grad():
        for p in model.parameters():
            flat = p.view(-1)
            for i in range(flat.numel()):
                saved = flat[i].item()
                flat[i] = saved + eps
                plus = model(x)
                flat[i] = saved - eps
                minus = model(x)
                flat[i] = saved
                columns.append((plus - minus) / (2 * eps))
    jac = torch.stack(columns, dim=-1)  # [n1 + n2, k, P]
    j1, j2 = jac[: len(x1)], jac[len(x1) :]
    return torch.einsum("akp,bkp->ab", j1, j2)


# Central differences in float64 with eps = 1e-5 err by ≈ eps²·|f'''|/6 (truncation, ~1e-11)
# plus ≈ 1e-16·|f|/eps (rounding, ~1e-11) per Jacobian entry, so Θ's relative error is ~1e-10;
# relu is piecewise linear, exact unless a kink lies within eps (not for these seeds).
# 1e-6 leaves that margin while any wrong multiplier or missing term errs at O(1).
FD_RTOL = 1e-6


@pytest.mark.parametrize("b_std", [0.0, 0.5])
@pytest.mark.parametrize("parameterization", ["ntk", "standard"])
@pytest.mark.parametrize("activation", ["relu", "erf", "tanh", "gelu"])
@pytest.mark.parametrize("depth", [1, 2, 3])
def test_structured_matches_torch_func_and_finite_differences(
    depth, activation, parameterization, b_std
):
    model = MLP(3, 5, depth, 1, activation, parameterization, 1.3, b_std, seed=depth, dtype=F64)
    x1, x2 = _points(6, 3, 0), _points(4, 3, 1)
    for other in [None, x2]:
        structured = empirical_ntk(model, x1, other, method="structured")
        generic = empirical_ntk(model, x1, other, method="jacobian")
        finite = _finite_difference_ntk(model, x1, x1 if other is None else other)
        assert structured.shape == (6, 6 if other is None else 4)
        assert _rel_max(structured, generic) < 1e-10
        assert _rel_max(structured, finite) < FD_RTOL


def test_several_outputs_give_the_trace_over_outputs():
    model = MLP(3, 6, 2, 3, "erf", "ntk", 1.1, 0.4, seed=5, dtype=F64)
    x1, x2 = _points(5, 3, 2), _points(3, 3, 3)
    for other in [None, x2]:
        structured = empirical_ntk(model, x1, other)
        finite = _finite_difference_ntk(model, x1, x1 if other is None else other)
        assert _rel_max(structured, empirical_ntk(model, x1, other, method="jacobian")) < 1e-10
        assert _rel_max(structured, finite) < FD_RTOL


@pytest.mark.parametrize(("depth", "activation"), [(1, "relu"), (2, "erf"), (3, "relu")])
def test_output_blocks_match_the_explicit_jacobian_and_trace_to_the_ntk(depth, activation):
    model = MLP(3, 7, depth, 4, activation, "ntk", 1.2, 0.3, seed=depth, dtype=F64)
    x1, x2 = _points(5, 3, 7), _points(3, 3, 8)
    params = {name: p.detach() for name, p in model.named_parameters()}

    def jacobian(x):  # [n·k, P]: every parameter's column, rows (point, output)
        jac = torch.func.jacrev(lambda ps: torch.func.functional_call(model, ps, (x,)))(params)
        return torch.cat([j.reshape(x.shape[0] * 4, -1) for j in jac.values()], dim=1)

    for other in [None, x2]:
        blocks = empirical_ntk_by_output(model, x1, other)
        j2 = jacobian(x1 if other is None else other)
        assert _rel_max(blocks, jacobian(x1) @ j2.T) < 1e-12
        n2 = j2.shape[0] // 4
        traced = blocks.view(5, 4, n2, 4).diagonal(dim1=1, dim2=3).sum(-1)
        assert _rel_max(traced, empirical_ntk(model, x1, other)) < 1e-12


def test_symmetric_and_positive_semidefinite():
    """Θ is symmetric bit for bit: the blocks below the block diagonal and each diagonal
    block's lower triangle are mirrored from the upper triangle (a diagonal block's GEMM need
    not sum (i, j) and (j, i) in the same order: on an AMD EPYC it did not, by 1.3e-16)."""
    from widthlab.empirical import _mirror_upper_, _row_blocks

    model = MLP(4, 64, 2, 1, "relu", "ntk", 1.0, 0.2, seed=1, dtype=F64)
    x = _points(300, 4, 4)  # n ≥ 256 so that the blocked symmetric Gram is exercised
    theta = empirical_ntk(model, x)
    assert len(_row_blocks(len(x))) == 2
    assert torch.equal(theta, theta.T)
    # The tiled mirror keeps the upper triangle and mirrors it, for tiles that do and do not
    # divide the size.
    a = torch.randn(7, 7, dtype=F64)
    for tile in (1, 3, 7, 256):
        b = a.clone()
        _mirror_upper_(b, tile)
        assert torch.equal(b.triu(), a.triu()) and torch.equal(b, b.T)
    eigenvalues = torch.linalg.eigvalsh(theta)
    assert eigenvalues.min() > -1e-10 * eigenvalues.max()
    # The block-triangular symmetric path agrees with the general two-set path.
    assert _rel_max(theta, empirical_ntk(model, x, x.clone())) < 1e-12


def test_reused_buffers_never_leak_between_calls():
    """The structured path keeps its scratch buffers between calls: results already returned
    stay put, and a call after other models, sizes and point sets gives what a fresh one does."""
    x, y = _points(300, 4, 7), _points(9, 4, 8)
    first = MLP(4, 32, 2, 1, "relu", "ntk", 1.0, 0.2, seed=1, dtype=F64)
    second = MLP(4, 32, 2, 1, "relu", "ntk", 1.4, 0.1, seed=2, dtype=F64)
    theta_first = empirical_ntk(first, x)
    kept = theta_first.clone()
    theta_second = empirical_ntk(second, x)
    assert torch.equal(theta_first, kept)
    assert _rel_max(theta_second, empirical_ntk(second, x, method="jacobian")) < 1e-10
    cross = empirical_ntk(first, x, y)
    narrower = empirical_ntk(MLP(4, 16, 2, 1, "tanh", seed=3, dtype=F64), y)
    release_workspace()
    assert torch.equal(empirical_ntk(first, x), kept)  # bitwise: same buffers or fresh ones
    assert _rel_max(cross, empirical_ntk(first, x, y, method="jacobian")) < 1e-10
    assert narrower.shape == (9, 9) and torch.equal(theta_first, kept)


def test_generic_path_on_a_non_mlp_and_chunking():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 7), nn.Tanh(), nn.Linear(7, 2)).to(F64)
    x1, x2 = _points(7, 3, 5), _points(5, 3, 6)
    whole = empirical_ntk(model, x1)
    assert _rel_max(whole, _finite_difference_ntk(model, x1, x1)) < FD_RTOL
    chunked = empirical_ntk(model, x1, chunk_size=3)
    assert _rel_max(chunked, whole) < 1e-13
    assert torch.equal(whole, whole.T) and torch.equal(chunked, chunked.T)
    cross = empirical_ntk(model, x1, x2, chunk_size=2)
    assert _rel_max(cross, _finite_difference_ntk(model, x1, x2)) < FD_RTOL
    with pytest.raises(ValueError, match="method='structured'"):
        empirical_ntk(model, x1, method="structured")
    with pytest.raises(ValueError, match=r"method=.*allowed"):
        empirical_ntk(model, x1, method="exact")


def test_network_nngp_by_hand():
    for parameterization in ["ntk", "standard"]:
        model = MLP(3, 16, 2, 1, "gelu", parameterization, 1.5, 0.4, seed=9, dtype=F64)
        x1, x2 = _points(5, 3, 7), _points(4, 3, 8)
        hidden = []
        for x in (x1, x2):
            h = x
            for layer in model.layers[:-1]:
                z = (
                    h @ layer.weight.T * layer.weight_multiplier
                    + layer.bias * layer.bias_multiplier
                )
                h = torch.nn.functional.gelu(z)
            hidden.append(h)
        expected = 1.5**2 / 16 * hidden[0] @ hidden[1].T + 0.4**2
        torch.testing.assert_close(network_nngp(model, x1, x2), expected, rtol=1e-12, atol=0)
        torch.testing.assert_close(
            network_nngp(model, x1),
            1.5**2 / 16 * hidden[0] @ hidden[0].T + 0.16,
            rtol=1e-12,
            atol=0,
        )


@pytest.mark.parametrize("estimator", ["outputs", "readout"])
def test_empirical_nngp_equals_a_loop_of_single_networks(estimator):
    x1, x2 = _points(4, 3, 10), _points(3, 3, 11)
    kwargs = {"width": 8, "depth": 2, "activation": "tanh", "w_std": 1.2, "b_std": 0.3}
    # batch_size 3 with 7 networks: uneven batches exercise the pairwise mean/variance merge.
    mean, se = empirical_nngp(
        x1, x2, n_networks=7, seed=4, batch_size=3, estimator=estimator, **kwargs
    )
    samples = []
    for m in range(7):
        model = MLP(3, 8, 2, 1, "tanh", "ntk", 1.2, 0.3, seed=network_seed(4, m), dtype=F64)
        if estimator == "outputs":
            samples.append(model(x1) @ model(x2).T)
        else:
            samples.append(network_nngp(model, x1, x2))
    samples = torch.stack(samples).detach()
    torch.testing.assert_close(mean, samples.mean(0), rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(se, samples.std(0) / math.sqrt(7), rtol=1e-10, atol=1e-14)


def test_independent_monte_carlo_runs_agree_within_their_errors():
    x = _points(5, 4, 12)
    kwargs = {"width": 64, "depth": 2, "activation": "erf", "w_std": 1.4, "b_std": 0.3}
    m0, se0 = empirical_nngp(x, n_networks=300, seed=0, **kwargs)
    m1, se1 = empirical_nngp(x, n_networks=300, seed=1, **kwargs)
    z = (m0 - m1) / torch.sqrt(se0**2 + se1**2)
    assert z.abs().max() < 4.5  # 15 distinct entries, P(|z| > 4.5) ≈ 7e-6 each


def _relu_closed_forms(x: torch.Tensor, w: float) -> tuple[torch.Tensor, ...]:
    """Depth-1 relu, b_std = 0: Σ¹ = w² x·x'/D, E[φφ] and E[φ'φ'] over (u, v) ~ N(0, Σ¹)."""
    sigma1 = w**2 * x @ x.T / x.shape[1]
    norms = torch.sqrt(torch.diag(sigma1))
    cos = (sigma1 / torch.outer(norms, norms)).clamp(-1.0, 1.0)
    theta = torch.arccos(cos)
    e_phi_phi = (
        torch.outer(norms, norms) / (2 * math.pi) * (torch.sin(theta) + (math.pi - theta) * cos)
    )
    e_dphi_dphi = (math.pi - theta) / (2 * math.pi)
    return sigma1, e_phi_phi, e_dphi_dphi


def test_empirical_nngp_matches_the_arc_cosine_kernel():
    x = _points(6, 5, 13)
    w = 1.3
    _, e_phi_phi, _ = _relu_closed_forms(x, w)
    nngp = w**2 * e_phi_phi
    kwargs = {"width": 1024, "depth": 1, "activation": "relu", "w_std": w, "b_std": 0.0}
    mean, se = empirical_nngp(x, n_networks=1000, seed=0, **kwargs)
    assert ((mean - nngp).abs() <= 4 * se).all()
    # The readout estimator is unbiased here too (depth 1) and precise enough that the test
    # has teeth: dropping the readout's w² would be many standard errors off.
    mean, se = empirical_nngp(x, n_networks=50, seed=1, estimator="readout", **kwargs)
    assert ((mean - nngp).abs() <= 4 * se).all()
    assert ((nngp / w**2 - nngp).abs() > 20 * se).all()


def test_empirical_ntk_approaches_the_depth_one_relu_ntk_as_width_grows():
    x = _points(10, 4, 14)
    w = 1.2
    sigma1, e_phi_phi, e_dphi_dphi = _relu_closed_forms(x, w)
    theta_infinite = w**2 * e_phi_phi + w**2 * e_dphi_dphi * sigma1
    widths = [64, 256, 1024, 4096]
    log_distances = np.zeros((5, len(widths)))
    for seed in range(5):
        for j, width in enumerate(widths):
            model = MLP(4, width, 1, 1, "relu", "ntk", w, 0.0, seed=100 * seed + j, dtype=F64)
            theta = empirical_ntk(model, x)
            distance = torch.linalg.norm(theta - theta_infinite) / torch.linalg.norm(theta_infinite)
            log_distances[seed, j] = math.log(distance.item())
    slope = np.polyfit(np.log(widths), log_distances.mean(0), 1)[0]
    assert -0.7 <= slope <= -0.35, slope  # fluctuations are O(width^{-1/2})


def test_empirical_nngp_bad_arguments():
    x = _points(3, 2, 0)
    with pytest.raises(ValueError, match="n_networks=1"):
        empirical_nngp(x, width=4, depth=1, activation="relu", n_networks=1)
    with pytest.raises(ValueError, match="activation='sin'"):
        empirical_nngp(x, width=4, depth=1, activation="sin", n_networks=4)
    with pytest.raises(ValueError, match="estimator="):
        empirical_nngp(x, width=4, depth=1, activation="relu", n_networks=4, estimator="x")


@pytest.mark.parametrize("activation", ["relu", "erf"])
def test_empirical_ntk_and_nngp_of_wide_nets_match_the_analytic_kernels(activation):
    # The finite-width NTK and NNGP fluctuate by O(width^-1/2) around the analytic limit
    # (widthlab.kernels) and are biased by O(1/width) at depth ≥ 2: at width 2048 over 8
    # seeds the standard error (~0.7%) dwarfs the bias (~0.05%), so 4.5 standard errors is a
    # fair bound; a wrong σ_b² or a missing layer term moves the mean by ≫ 10 standard errors.
    from widthlab.kernels import nngp_and_ntk

    x = torch.randn(6, 5, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    spec = dict(depth=2, activation=activation, w_std=1.2, b_std=0.5)
    nngp, ntk = nngp_and_ntk(x, **spec)
    thetas, nngps = [], []
    for seed in range(8):
        net = MLP(5, 2048, seed=seed, dtype=torch.float64, **spec)
        thetas.append(empirical_ntk(net, x))
        nngps.append(network_nngp(net, x))
    for samples, limit in ((torch.stack(thetas), ntk), (torch.stack(nngps), nngp)):
        se = samples.std(dim=0) / np.sqrt(len(samples))
        z = (samples.mean(dim=0) - limit) / se
        assert z.abs().max() < 4.5, z
