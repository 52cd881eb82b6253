"""Empirical NTK on CPU: the structured layer-by-layer path against Jacobian methods.

    python benchmarks/bench_empirical_ntk.py [--quick] [--max-jacobian-gib 4]

Θ(X, X) for n = 512 points (D = 32) of a relu MLP in the NTK parameterization, float32, depths
1–3 and widths 1024, 4096, 16384. Methods:

* structured — `widthlab.empirical.empirical_ntk(method="structured")`;
* vmap_jacrev — PyTorch's NTK tutorial: vmap(jacrev) per-parameter Jacobians of every point,
  then einsum("Naf,Mbf->NMab") per parameter and a sum;
* autograd_loop — one backward pass per point into an n × P Jacobian J, then J Jᵀ.

Each (method, size) runs in a fresh subprocess. Time: median of repeats after one warm-up
call. Memory: growth of the process's peak resident set (ru_maxrss) during the warm-up call
over its peak after setup (torch imported, model and inputs built) — the extra memory the
method needed, a lower bound when setup itself peaked higher. Jacobian methods are skipped
when the n × P float32 Jacobian alone would exceed --max-jacobian-gib; the per-point loop runs
only for P ≤ 200,000. FLOP rate: the structured path's matmul FLOPs (forward, backward
recursion, block-triangular Grams) over its time, next to the rate of the very same torch.mm
calls run back to back on preallocated buffers.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import resource
import statistics
import subprocess
import sys
import time

N_POINTS = 512
INPUT_DIM = 32
GOALS = {(1, 4096): 15.0, (2, 1024): 50.0}  # vmap_jacrev time / structured time
FLOP_RATE_GOAL = 0.8
LOOP_MAX_PARAMETERS = 200_000  # n backward passes: seconds here, minutes at P ~ 1e6


def parameter_count(width: int, depth: int) -> int:
    fans = [INPUT_DIM] + [width] * depth + [1]
    return sum(o * (i + 1) for i, o in itertools.pairwise(fans))


def structured_matmuls(n: int, width: int, depth: int) -> list[tuple[int, int, int]]:
    """(rows, inner, cols) of every torch.mm the structured path does; Grams blocked as _gram."""
    fans = [INPUT_DIM] + [width] * depth + [1]
    shapes = [(n, i, o) for i, o in itertools.pairwise(fans)]  # forward
    shapes += [(n, width, width)] * (depth - 1)  # G_{l−1} = (G_l c_l W_l) ⊙ φ'
    blocks = max(1, min(4, n // 128))
    step = -(-n // blocks)
    for inner in [INPUT_DIM] + [width] * depth + [width] * depth:  # H_0 … H_L, G_1 … G_L
        shapes += [(min(step, n - s), inner, n - s) for s in range(0, n, step)]
    return shapes


def _time(fn, budget_s: float, max_repeats: int) -> tuple[float, float, int]:
    """(warm-up seconds, median seconds, repeats) for fn()."""
    start = time.perf_counter()
    fn()
    warm = time.perf_counter() - start
    repeats = max(1, min(max_repeats, int(budget_s / max(warm, 1e-6))))
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return warm, statistics.median(times), repeats


def worker(method: str, depth: int, width: int, budget_s: float, max_repeats: int) -> dict:
    import torch
    from torch.func import functional_call, jacrev, vmap

    from widthlab.empirical import empirical_ntk
    from widthlab.models.mlp import MLP

    model = MLP(INPUT_DIM, width, depth, seed=0)
    x = torch.randn(N_POINTS, INPUT_DIM, generator=torch.Generator().manual_seed(1))
    params = {k: v.detach() for k, v in model.named_parameters()}

    def structured():
        return empirical_ntk(model, x, method="structured")

    def f_single(p, xi):
        return functional_call(model, p, (xi.unsqueeze(0),)).squeeze(0)

    def vmap_jacrev():
        jac = vmap(jacrev(f_single), (None, 0))(params, x)
        jac = [j.flatten(2) for j in jac.values()]
        return torch.stack([torch.einsum("Naf,Mbf->NMab", j, j) for j in jac]).sum(0)

    def autograd_loop():
        rows = []
        for xi in x:
            model.zero_grad(set_to_none=True)
            model(xi.unsqueeze(0)).sum().backward()
            rows.append(torch.cat([p.grad.reshape(-1) for p in model.parameters()]))
        jac = torch.stack(rows)
        return jac @ jac.T

    fn = {"structured": structured, "vmap_jacrev": vmap_jacrev, "autograd_loop": autograd_loop}
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    warm, median, repeats = _time(fn[method], budget_s, max_repeats)
    peak_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    result = {"warm_s": warm, "median_s": median, "repeats": repeats, "peak_mib": peak_mib}
    if method == "structured":
        shapes = structured_matmuls(N_POINTS, width, depth)
        operands = {}
        for m, k, n in set(shapes):
            operands[m, k, n] = (torch.randn(m, k), torch.randn(k, n), torch.empty(m, n))

        def plain():
            for shape in shapes:
                a, b, out = operands[shape]
                torch.mm(a, b, out=out)

        result["flops"] = sum(2 * m * k * n for m, k, n in shapes)
        result["plain_mm_s"] = _time(plain, budget_s, max_repeats)[1]
    return result


def run_worker(method: str, depth: int, width: int, quick: bool) -> dict | str:
    budget, repeats = (0.5, 3) if quick else (2.0, 7)
    args = [
        sys.executable,
        __file__,
        "--worker",
        json.dumps([method, depth, width, budget, repeats]),
    ]
    proc = subprocess.run(args, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        return f"failed (exit {proc.returncode}): {proc.stderr.strip().splitlines()[-1:]}"
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="widths 1024, 4096; depths 1, 2")
    parser.add_argument("--max-jacobian-gib", type=float, default=4.0)
    parser.add_argument(
        "--sizes", help="only these depth x width pairs, e.g. 1x4096,2x1024 (the goal sizes)"
    )
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(*json.loads(args.worker))))
        return

    import torch

    depths = [1, 2] if args.quick else [1, 2, 3]
    widths = [1024, 4096] if args.quick else [1024, 4096, 16384]
    print(
        f"empirical NTK Θ(X, X): n = {N_POINTS}, D = {INPUT_DIM}, relu, ntk "
        f"parameterization, float32, CPU, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads"
    )
    print(__doc__.split("\n\n", 3)[3].strip())
    print(
        f"load average before: {os.getloadavg()[0]:.2f} "
        "(timings assume an otherwise idle machine)\n"
    )
    header = (
        f"{'depth':>5} {'width':>6} {'P':>10} {'method':>13} {'median':>10} "
        f"{'× struct':>9} {'peak MiB':>9}  notes"
    )
    print(header)
    print("-" * len(header))
    ratios = {}
    flop_rates = {}
    sizes = [(d, w) for d in depths for w in widths]
    if args.sizes:
        sizes = [tuple(int(v) for v in item.split("x")) for item in args.sizes.split(",")]
    for depth, width in sizes:
        p = parameter_count(width, depth)
        jacobian_gib = N_POINTS * p * 4 / 2**30
        structured_s = None
        for method in ["structured", "vmap_jacrev", "autograd_loop"]:
            row = f"{depth:>5} {width:>6} {p:>10,} {method:>13} "
            if method != "structured" and jacobian_gib > args.max_jacobian_gib:
                print(
                    row + f"{'skipped':>10}  n×P Jacobian {jacobian_gib:.1f} GiB > "
                    f"{args.max_jacobian_gib:g} GiB"
                )
                continue
            if method == "autograd_loop" and p > LOOP_MAX_PARAMETERS:
                print(
                    row + f"{'skipped':>10}  per-point loop only for P ≤ "
                    f"{LOOP_MAX_PARAMETERS:,} (too slow beyond)"
                )
                continue
            result = run_worker(method, depth, width, args.quick)
            if isinstance(result, str):
                print(row + f"{'—':>10}  {result}")
                continue
            seconds = result["median_s"]
            if method == "structured":
                structured_s = seconds
            ratio = seconds / structured_s if structured_s else float("nan")
            if method == "vmap_jacrev":
                ratios[depth, width] = ratio
            notes = f"{result['repeats']} repeats, warm-up {result['warm_s']:.3g} s"
            if method == "structured":
                rate = result["flops"] / seconds / 1e9
                plain = result["flops"] / result["plain_mm_s"] / 1e9
                flop_rates[depth, width] = rate / plain
                notes += (
                    f"; {rate:.0f} GFLOP/s vs plain torch.mm {plain:.0f} GFLOP/s "
                    f"({rate / plain:.0%})"
                )
            print(row + f"{_fmt(seconds):>10} {ratio:>8.1f}× {result['peak_mib']:>9.0f}  " + notes)
    print("\ngoals (vmap_jacrev time / structured time):")
    for (depth, width), goal in GOALS.items():
        got = ratios.get((depth, width))
        verdict = "not measured" if got is None else ("met" if got >= goal else "NOT met")
        shown = "—" if got is None else f"{got:.1f}×"
        print(f"  depth {depth} width {width}: ≥ {goal:g}×, measured {shown}: {verdict}")
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    if flop_rates:
        met = sum(r >= FLOP_RATE_GOAL for r in flop_rates.values())
        print(
            f"structured FLOP rate ≥ {FLOP_RATE_GOAL:.0%} of plain torch.mm: met at {met} of "
            f"{len(flop_rates)} sizes (worst {min(flop_rates.values()):.0%})"
        )


def _fmt(seconds: float) -> str:
    return f"{seconds * 1e3:.1f} ms" if seconds < 1 else f"{seconds:.2f} s"


if __name__ == "__main__":
    main()
