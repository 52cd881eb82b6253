"""Benchmark of widthlab.kernels.nngp_and_ntk against a plain torch version of the same recursion.

    python benchmarks/bench_analytic_kernels.py [--n 4096] [--depth 4] [--threads 2]

Goal: relu, depth 4, n = 4096, float64, 2 CPU threads, x2 = None: ≤ 0.5 s. Times are medians of a
few repeats after a warm-up; the machine may be shared, so the CPU time (all threads) is printed
too as a load-independent hint.
"""

import argparse
import math
import statistics
import time
from collections.abc import Callable

import torch

from widthlab.kernels import nngp_and_ntk

GOAL_S = 0.5


def plain_nngp_and_ntk(
    x: torch.Tensor, depth: int, activation: str, w_std: float, b_std: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """The recursion written the obvious way: full matrices, fresh temporaries, arccos/arcsin."""
    w2, b2 = w_std**2, b_std**2
    sigma = w2 * (x @ x.T) / x.shape[1] + b2
    theta = sigma.clone()
    for _ in range(depth):
        diag = sigma.diagonal().clone()
        norm = torch.sqrt(diag[:, None] * diag[None, :])
        if activation == "relu":
            c = torch.clamp(sigma / norm, -1.0, 1.0)
            angle = torch.arccos(c)
            e_phi = norm / (2 * math.pi) * (torch.sin(angle) + (math.pi - angle) * c)
            e_dphi = (math.pi - angle) / (2 * math.pi)
        else:
            p = torch.sqrt((1 + 2 * diag[:, None]) * (1 + 2 * diag[None, :]))
            e_phi = 2 / math.pi * torch.arcsin(torch.clamp(2 * sigma / p, -1.0, 1.0))
            e_dphi = 4 / math.pi / torch.sqrt(p * p - 4 * sigma * sigma)
        sigma = w2 * e_phi + b2
        theta = sigma + w2 * e_dphi * theta
    return sigma, theta


def timed(
    fn: Callable[[], object], repeats: int, warm_up: bool = True
) -> tuple[float, float, object]:
    """(median wall seconds, median CPU seconds, last result), after one warm-up call if asked."""
    result = fn() if warm_up else None
    walls, cpus = [], []
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        result = fn()
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return statistics.median(walls), statistics.median(cpus), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=4096)
    parser.add_argument("--dim", type=int, default=32)
    parser.add_argument("--depth", type=int, default=4)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(args.n, args.dim, generator=gen, dtype=torch.float64)
    w_std, b_std = 1.4, 0.1
    print(
        f"n={args.n} D={args.dim} depth={args.depth} float64 threads={args.threads} "
        f"w_std={w_std} b_std={b_std}"
    )
    for activation in ("relu", "erf"):
        fast_s, fast_cpu, (k, t) = timed(
            lambda a=activation: nngp_and_ntk(
                x, depth=args.depth, activation=a, w_std=w_std, b_std=b_std
            ),
            args.repeats,
        )
        plain_s, plain_cpu, (k0, t0) = timed(
            lambda a=activation: plain_nngp_and_ntk(x, args.depth, a, w_std, b_std),
            max(1, args.repeats // 4),  # the baseline is slow; one or two runs suffice
            warm_up=False,  # the fast version already warmed up the same torch kernels
        )
        # Error on the kernel's scale, normalized by √(K(x,x)K(x',x')) entrywise.
        scale = [m.diagonal().sqrt() for m in (k0, t0)]
        err_k = ((k - k0).abs() / (scale[0][:, None] * scale[0][None, :])).max().item()
        err_t = ((t - t0).abs() / (scale[1][:, None] * scale[1][None, :])).max().item()
        assert err_k < 1e-7 and err_t < 1e-7, (err_k, err_t)  # plain relu: arccos(1 − eps) noise
        goal = f"   goal <= {GOAL_S} s: {'met' if fast_s <= GOAL_S else 'NOT met'}"
        print(
            f"{activation:5s} nngp_and_ntk {fast_s:7.3f} s (cpu {fast_cpu:6.2f} s)   "
            f"plain torch {plain_s:7.3f} s (cpu {plain_cpu:6.2f} s)   "
            f"speed-up x{plain_s / fast_s:5.1f}   max scaled diff nngp {err_k:.1e} "
            f"ntk {err_t:.1e}" + (goal if activation == "relu" else "")
        )


if __name__ == "__main__":
    main()
