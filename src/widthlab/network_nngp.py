"""The NNGP of finite networks: one network's readout covariance and the Monte Carlo mean
over initializations.

Conventions (n1, n2 points):

* Network NNGP, the output covariance of one network over its readout's random draw with the
  hidden layers fixed: K(x, x') = (w_std²/n_L) Σ_i φ(z_i(x)) φ(z_i(x')) + b_std², n_L the last
  hidden width. The same for every output.
* Empirical NNGP, the Monte Carlo mean of f(x) f(x') over independent initializations.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import torch

from widthlab.activations import get_activation
from widthlab.checks import check_choice, check_int, check_nonnegative
from widthlab.empirical import as_inputs
from widthlab.models.mlp import MLP

NNGP_ESTIMATORS = ("outputs", "readout")


def network_nngp(model: MLP, x1: torch.Tensor, x2: torch.Tensor | None = None) -> torch.Tensor:
    """K(x, x') = (w_std²/n_L) Σ_i φ(z_i(x)) φ(z_i(x')) + b_std², [n1, n2].

    The covariance of any one output over the readout's initialization distribution, the hidden
    layers held at their current values: in the ntk parameterization the readout is
    (w_std/√n_L)·ξ_W h + b_std·ξ_b with ξ ~ N(0, 1); in the standard one W ~ N(0, w_std²/n_L),
    b ~ N(0, b_std²) — the same variances, hence the same formula for both. For depth 1 (ntk,
    b_std = 0) it is the random-features kernel (w_std²/n) Σ_k φ(w_std α_kᵀx/√D) φ(…x'…).
    """
    x1 = as_inputs(model, x1)
    x2 = as_inputs(model, x2)
    with torch.no_grad():
        h1 = model.forward_with_cache(x1).layer_inputs[-1]
        h2 = h1 if x2 is None else model.forward_with_cache(x2).layer_inputs[-1]
        kernel = (h1 @ h2.T).mul_(model.w_std**2 / model.width)
        return kernel.add_(model.b_std**2)


def network_seed(seed: int, index: int) -> int:
    """The seed of network `index` in `empirical_nngp(seed=seed)`: independent streams.

    numpy's SeedSequence(seed, spawn_key=(index,)), so runs with different `seed` share no
    network and a run with more networks extends one with fewer.
    """
    state = np.random.SeedSequence(seed, spawn_key=(index,)).generate_state(1, dtype=np.uint64)
    return int(state[0] >> np.uint64(1))


def empirical_nngp(
    x1: torch.Tensor,
    x2: torch.Tensor | None = None,
    *,
    width: int,
    depth: int,
    activation: str,
    n_networks: int,
    w_std: float = 1.0,
    b_std: float = 0.0,
    seed: int = 0,
    batch_size: int | None = None,
    estimator: str = "outputs",
    dtype: torch.dtype = torch.float64,
    device: torch.device | str | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Monte Carlo NNGP: (mean, standard error) over M = n_networks initializations, [n1, n2].

    Network m is exactly `MLP(D, width, depth, 1, activation, "ntk", w_std, b_std,
    seed=network_seed(seed, m), dtype=dtype)`; `batch_size` of them (default: as many as fit
    ~256 MiB of activations) run at once through batched matmuls. Per network the sample is
    `estimator`="outputs": f(x) f(x'), or "readout": its `network_nngp`, the same expectation
    (the readout integrated out exactly) with less variance. Returns the mean over networks
    and its elementwise standard error std(ddof=1)/√M.
    """
    width = check_int("width", width)
    depth = check_int("depth", depth)
    n_networks = check_int("n_networks", n_networks, 2)
    w_std, b_std = check_nonnegative("w_std", w_std), check_nonnegative("b_std", b_std)
    phi = get_activation(activation)
    check_choice("estimator", estimator, NNGP_ESTIMATORS)
    n1 = x1.shape[0]
    x = x1 if x2 is None else torch.cat([x1, x2])
    x = x.to(dtype=dtype, device=device)
    n, d = x.shape
    if batch_size is None:
        # Activations (3 buffers of n × width) and weights (held twice: the draws and their
        # stacked copy) of one network, so that a batch stays within about 256 MiB.
        n_weights = sum(a * b for a, b in itertools.pairwise([d] + [width] * depth + [1]))
        per_network = (3 * n * width + 2 * n_weights) * torch.finfo(dtype).bits // 8
        batch_size = max(1, min(n_networks, (256 << 20) // max(per_network, 1)))
    batch_size = check_int("batch_size", batch_size)
    fans = [d] + [width] * depth + [1]

    count, mean, m2 = 0, None, None
    for start in range(0, n_networks, batch_size):
        seeds = range(start, min(start + batch_size, n_networks))
        # Drawn network by network in MLP's order so that network m is reproducible alone.
        draws: list[list[torch.Tensor]] = [[] for _ in range(2 * len(fans) - 2)]
        for m in seeds:
            generator = torch.Generator().manual_seed(network_seed(seed, m))
            for i, (fan_in, fan_out) in enumerate(itertools.pairwise(fans)):
                draws[2 * i].append(torch.randn(fan_out, fan_in, generator=generator, dtype=dtype))
                draws[2 * i + 1].append(torch.randn(fan_out, generator=generator, dtype=dtype))
        stacked = [torch.stack(d).to(device) for d in draws]
        h = x.expand(len(seeds), n, d)
        for i, fan_in in enumerate(fans[:-1]):
            xi_w, xi_b = stacked[2 * i], stacked[2 * i + 1]
            if i == len(fans) - 2 and estimator == "readout":
                break
            z = torch.baddbmm(
                xi_b.unsqueeze(1),
                h,
                xi_w.transpose(1, 2),
                beta=b_std,
                alpha=w_std / math.sqrt(fan_in),
            )
            h = phi(z) if i < len(fans) - 2 else z
        if estimator == "readout":
            sample = torch.bmm(
                h[:, :n1], h[:, n1:].transpose(1, 2) if x2 is not None else h.transpose(1, 2)
            )
            sample.mul_(w_std**2 / width).add_(b_std**2)
        else:
            sample = h[:, :n1] * (h[:, n1:] if x2 is not None else h).transpose(1, 2)
        # Chan et al.'s pairwise update of the mean and the sum of squared deviations.
        b = sample.shape[0]
        batch_mean = sample.mean(0)
        batch_m2 = (sample - batch_mean).square_().sum(0)
        if mean is None:
            count, mean, m2 = b, batch_mean, batch_m2
        else:
            delta = batch_mean - mean
            total = count + b
            mean = mean + delta * (b / total)
            m2 = m2 + batch_m2 + delta.square() * (count * b / total)
            count = total
    standard_error = torch.sqrt(m2 / (count - 1) / count)
    return mean, standard_error
