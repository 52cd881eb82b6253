"""Benchmark of widthlab.kernels.nngp_and_ntk against a plain torch version of the same recursion.

    python benchmarks/bench_analytic_kernels.py [--n 4096] [--depth 4] [--threads 2]

Goal: relu, depth 4, n = 4096, float64, 2 CPU threads, x2 = None: ≤ 0.5 s, with the speed-up
over the plain recursion (full matrices, fresh temporaries, arccos) timed in the same run. The
two alternate for `--rounds` rounds (benchmarks/harness.py).
"""

import argparse
import math

import torch
from harness import alternate, report, verdict

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=4096)
    parser.add_argument("--dim", type=int, default=32)
    parser.add_argument("--depth", type=int, default=4)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(args.n, args.dim, generator=gen, dtype=torch.float64)
    w_std, b_std = 1.4, 0.1
    print(
        f"n={args.n} D={args.dim} depth={args.depth} float64 threads={args.threads} "
        f"w_std={w_std} b_std={b_std}"
    )
    lines = [f"n={args.n} D={args.dim} depth={args.depth} float64 threads={args.threads} "
             f"w_std={w_std} b_std={b_std}"]  # fmt: skip
    for activation in ("relu", "erf"):
        out = {}

        def fast(a=activation, out=out):
            out["fast"] = nngp_and_ntk(x, depth=args.depth, activation=a, w_std=w_std, b_std=b_std)

        def plain(a=activation, out=out):
            out["plain"] = plain_nngp_and_ntk(x, args.depth, a, w_std, b_std)

        result = alternate(plain, fast, rounds=args.rounds)
        (k, t), (k0, t0) = out["fast"], out["plain"]
        # Error on the kernel's scale, normalized by √(K(x,x)K(x',x')) entrywise.
        scale = [m.diagonal().sqrt() for m in (k0, t0)]
        err_k = ((k - k0).abs() / (scale[0][:, None] * scale[0][None, :])).max().item()
        err_t = ((t - t0).abs() / (scale[1][:, None] * scale[1][None, :])).max().item()
        assert err_k < 1e-7 and err_t < 1e-7, (err_k, err_t)  # plain relu: arccos(1 − eps) noise
        lines += [
            f"{activation}:",
            "  " + result.line("nngp_and_ntk", result.candidate, " s"),
            "  " + result.line("plain recursion", result.baseline, " s"),
            "  " + result.line("speed-up", result.speedups),
            f"  max scaled difference: nngp {err_k:.1e}, ntk {err_t:.1e}",
        ]
        if activation == "relu":
            lines.append(f"  goal ≤ {GOAL_S} s: "
                         f"{verdict(result.candidate, GOAL_S, False, result.busy)}")  # fmt: skip
        lines.append(f"  {result.load_line()}")
    report("bench_analytic_kernels", lines)


if __name__ == "__main__":
    main()
