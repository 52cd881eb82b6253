"""The jobs of `ntk_convergence`: finite-width kernels against their infinite-width limits.

Networks are `widthlab.models.mlp.MLP` in the NTK parameterization (`model.*`: w_std,
b_std), float64, on `device`; the probe set is the first `study.n_probe` training inputs
of `data` (digits). Distances are relative Frobenius distances ‖K̂ − K‖_F/‖K‖_F to the
analytic limit K (`widthlab.kernels`), diagonal errors ‖diag K̂ − diag K‖/‖diag K‖.

`kernels` — one job = (width, depth, activation, seed): one network's
  (a) empirical NTK Θ̂ = Σ_p ∂f/∂p ∂f/∂p, and
  (b) NNGP given its hidden layers, (w_std²/width) Σ_k φ(z_k(x)) φ(z_k(x')) + b_std², the
      covariance of the output over the readout's init with the hidden layers fixed.
  Networks of the same width, depth and seed share their parameters across activations
  (the same seed draws the same ξ), so consecutive jobs reuse the last draw.

`mc_nngp` — one job = (width, depth, activation): the Monte-Carlo mean over M =
  `study.mc.networks` independent networks of the readout estimator of (b), whose
  expectation is the *finite-width* NNGP E[f(x) f(x')]. It differs from the limit by a bias,
  exactly 0 at depth 1 (the first layer's pre-activations are exactly Gaussian) and
  O(1/width) deeper. Its distance d to the limit mixes that bias with the Monte-Carlo noise,
  whose expected size is the floor ‖SE‖_F/‖K‖_F (SE the elementwise standard error over
  the M networks); bias² ≈ d² − floor², resolved where d exceeds the floor clearly.

`circle` — one job = (width, part): Jacot et al. (2018), Fig. 1. Θ̂(x₀, x(γ)) for x(γ) =
  (cos γ, sin γ), γ ∈ [−π, π] (`study.circle.points` values), x₀ = (1, 0), for networks of
  `study.circle.depth` hidden layers (float32: a spread over seeds, not a distance), beside
  the analytic Θ(x₀, x(γ)) in float64. D = 2, so the first layer sees x·x'/2 = cos(γ)/2.
  A width's `study.circle.seeds[width]` networks (seeds 0, 1, …) are split into
  `study.circle.parts` contiguous blocks of seeds, one job each (`part_seeds`), so one wide
  width does not keep a core busy alone; the summary joins a width's parts in seed order.
  Network `seed` is the same draw in whichever part computes it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

import torch
from omegaconf import DictConfig

from widthlab.distances import relative_diagonal_error, relative_distance
from widthlab.empirical import empirical_ntk
from widthlab.kernels import nngp_and_ntk, ntk_kernel
from widthlab.models.mlp import MLP
from widthlab.network_nngp import empirical_nngp, network_nngp
from widthlab.runtime.datafiles import load_job_data
from widthlab.runtime.devices import resolve_device

F64 = 8  # bytes


@lru_cache(maxsize=1)
def _network(
    in_features: int, width: int, depth: int, w_std: float, b_std: float, seed: int, device: str
) -> MLP:
    return MLP(
        in_features,
        width,
        depth,
        activation="relu",
        parameterization="ntk",
        w_std=w_std,
        b_std=b_std,
        seed=seed,
        dtype=torch.float64,
        device=device,
    )


def network(cfg: DictConfig, in_features: int, device: torch.device) -> MLP:
    """The job's network; its parameters come from the last job's draw when that one had
    the same width, depth, stds and seed (only the activation differs)."""
    m = cfg.model
    net = _network(
        in_features,
        int(m.width),
        int(m.depth),
        float(m.w_std),
        float(m.b_std),
        int(cfg.seed),
        str(device),
    )
    return net.set_activation(m.activation)


def probe_inputs(cfg: DictConfig, device: torch.device) -> torch.Tensor:
    """The first `study.n_probe` training inputs, float64 on `device`."""
    ds = load_job_data(cfg)
    return torch.as_tensor(ds.x_train[: cfg.study.n_probe], dtype=torch.float64, device=device)


def kernel_args(m: Mapping[str, Any]) -> dict[str, Any]:
    """The model settings the analytic kernels take."""
    return dict(depth=m["depth"], activation=m["activation"], w_std=m["w_std"], b_std=m["b_std"])


def measure_kernels(cfg: DictConfig) -> dict[str, float]:
    """One width, depth, activation and seed: distances of the empirical NTK and NNGP to their
    limits."""
    device = resolve_device(cfg.device)
    x = probe_inputs(cfg, device)
    nngp_limit, ntk_limit = nngp_and_ntk(x, **kernel_args(cfg.model))
    net = network(cfg, x.shape[1], device)
    ntk_hat = empirical_ntk(net, x)
    nngp_hat = network_nngp(net, x)
    return {
        "ntk_distance": relative_distance(ntk_hat, ntk_limit),
        "ntk_diagonal_error": relative_diagonal_error(ntk_hat, ntk_limit),
        "nngp_distance": relative_distance(nngp_hat, nngp_limit),
        "nngp_diagonal_error": relative_diagonal_error(nngp_hat, nngp_limit),
        "n_probe": x.shape[0],
        "n_parameters": net.num_parameters(),
    }


def kernels_memory(cfg: Mapping[str, Any]) -> float:
    """Bytes beyond the process baseline: the float64 weights (kept for the next job too),
    the forward caches and NTK backward buffers, the kernels."""
    w, depth, n = cfg["model"]["width"], cfg["model"]["depth"], cfg["study"]["n_probe"]
    weights = (depth - 1) * w * w + 100 * w
    return F64 * (weights + 8 * depth * n * w + 8 * n * n)


def measure_mc_nngp(cfg: DictConfig) -> dict[str, float]:
    """One width, depth, activation and seed: the mean NNGP over M networks against its limit and
    noise floor."""
    device = resolve_device(cfg.device)
    x = probe_inputs(cfg, device)
    m, mc = cfg.model, cfg.study.mc
    limit = nngp_and_ntk(x, **kernel_args(m))[0]
    mean, se = empirical_nngp(
        x,
        width=int(m.width),
        depth=int(m.depth),
        activation=m.activation,
        n_networks=int(mc.networks),
        w_std=m.w_std,
        b_std=m.b_std,
        seed=int(cfg.seed),
        estimator="readout",
        device=device,
    )
    distance = relative_distance(mean, limit)
    floor = float(torch.linalg.norm(se) / torch.linalg.norm(limit))
    return {
        "mc_distance": distance,
        "mc_floor": floor,
        "mc_bias": math.sqrt(max(distance**2 - floor**2, 0.0)),
        "mc_networks": int(mc.networks),
        "n_probe": x.shape[0],
    }


def mc_memory(cfg: Mapping[str, Any]) -> float:
    """A batch of networks within `empirical_nngp`'s 256 MiB budget, held once more while
    its draws are stacked (so about 384 MiB), and the running mean and squared deviations
    of n × n kernels."""
    n = cfg["study"]["n_probe"]
    return 384 * 2**20 + F64 * 6 * n * n


def part_seeds(n_seeds: int, part: int, parts: int) -> range:
    """The seeds of part `part` (0-based) of `parts`: contiguous blocks of 0 … n_seeds − 1
    whose sizes differ by at most one, together every seed once."""
    return range(part * n_seeds // parts, (part + 1) * n_seeds // parts)


def measure_circle(cfg: DictConfig) -> dict[str, Any]:
    """One part of a width's seeds: Θ̂(x₀, x(γ)) on the unit circle (Jacot et al. 2018, Fig. 1)."""
    c, m = cfg.study.circle, cfg.model
    width = int(c.width)
    seeds = part_seeds(int(c.seeds[width]), int(c.part), int(c.parts))
    device = resolve_device(cfg.device)
    gamma = torch.linspace(-math.pi, math.pi, int(c.points), dtype=torch.float64, device=device)
    xs = torch.stack([torch.cos(gamma), torch.sin(gamma)], dim=1)
    x0 = torch.tensor([[1.0, 0.0]], dtype=torch.float64, device=device)
    spec = dict(depth=int(c.depth), activation=c.activation, w_std=m.w_std, b_std=m.b_std)
    limit = ntk_kernel(x0, xs, **spec)[0]
    curves = []
    for seed in seeds:
        net = MLP(
            2, width, parameterization="ntk", seed=seed, dtype=torch.float32, device=device, **spec
        )
        curves.append(empirical_ntk(net, x0.float(), xs.float())[0].double().cpu().tolist())
    ntk = torch.tensor(curves, dtype=torch.float64)
    relative_sd = float(ntk.std(dim=0, correction=1).mean() / limit.abs().mean().cpu())
    return {
        "width": width,
        "seeds": len(seeds),
        "first_seed": seeds.start,
        "relative_sd": relative_sd,
        "gamma": gamma.cpu().tolist(),
        "limit": limit.cpu().tolist(),
        "ntk": curves,
    }


def circle_memory(cfg: Mapping[str, Any]) -> float:
    """One float32 network at a time (its draw, then the parameters) and its NTK buffers."""
    c = cfg["study"]["circle"]
    w, depth = c["width"], c["depth"]
    return 4 * (2 * (depth - 1) * w * w + 8 * c["points"] * w * depth)
