"""Empirical NTK on CPU: the structured layer-by-layer path against Jacobian methods.

    python benchmarks/bench_empirical_ntk.py [--quick] [--rounds 5] [--max-jacobian-gib 4]

Θ(X, X) for n = 512 points (D = 32) of a relu MLP in the NTK parameterization, float32, depths
1–3 and widths 1024, 4096, 16384. Methods:

* structured — `widthlab.empirical.empirical_ntk(method="structured")`;
* vmap_jacrev — PyTorch's NTK recipe: vmap(jacrev) per-parameter Jacobians of every point,
  then einsum("Naf,Mbf->NMab") per parameter and a sum;
* autograd_loop — one backward pass per point into an n × P Jacobian J, then J Jᵀ (timed once,
  for scale only; it runs for P ≤ 200,000).

Each size runs in a fresh subprocess, where structured and vmap_jacrev alternate for
`--rounds` rounds after a warm-up each (benchmarks/harness.py); the speedup is vmap_jacrev's
time over structured's, per round. Jacobian methods are skipped when the n × P float32
Jacobian alone would exceed --max-jacobian-gib.

FLOP rate: the structured path's matmul FLOPs (forward, backward recursion, block-triangular
Grams) over its time, against the very same torch.mm calls run back to back on preallocated
buffers, alternating with the structured path. Where the structured path also streams its
n × width activations (the forward's bias copy and activation, φ', the multiplication by the
readout weights: 4 passes of read + write per hidden layer), a second baseline adds those
passes as plain copies on preallocated buffers (the memory-bandwidth floor); the goal is
≥ 80% of the mm rate, or ≥ 80% of this floor where the passes are a large share of the time.

Memory: growth of the process's peak resident set (ru_maxrss) during one call of a method in
its own fresh subprocess, over its peak after setup (`--memory`).
"""

from __future__ import annotations

import argparse
import itertools
import json
import resource
import statistics
import subprocess
import sys
import time

from harness import STARTUP_LOAD, Comparison, alternate, load_average, report, verdict

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
    fans = [INPUT_DIM] + [width] * depth
    shapes = [(n, i, o) for i, o in itertools.pairwise(fans)]  # forward (no readout)
    shapes += [(n, width, width)] * (depth - 1)  # G_{l−1} = (G_l c_l W_l) ⊙ φ'
    blocks = max(1, min(4, n // 128))
    step = -(-n // blocks)
    for inner in [INPUT_DIM] + [width] * depth + [width] * depth:  # H_0 … H_L, G_1 … G_L
        shapes += [(min(step, n - s), inner, n - s) for s in range(0, n, step)]
    return shapes


def worker(depth: int, width: int, rounds: int, with_jacobian: bool, with_loop: bool) -> dict:
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

    shapes = structured_matmuls(N_POINTS, width, depth)
    operands = {s: (torch.randn(s[0], s[1]), torch.randn(s[1], s[2]), torch.empty(s[0], s[2]))
                for s in set(shapes)}  # fmt: skip
    streams = [(torch.randn(N_POINTS, width), torch.empty(N_POINTS, width)) for _ in range(4)]

    def plain_mm():
        for shape in shapes:
            a, b, out = operands[shape]
            torch.mm(a, b, out=out)

    def plain_floor():
        plain_mm()
        for _ in range(depth):
            for src, dst in streams:
                dst.copy_(src)

    out: dict = {"flops": sum(2 * m * k * n for m, k, n in shapes)}
    out["mm"] = vars(alternate(plain_mm, structured, rounds))
    out["floor"] = vars(alternate(plain_floor, structured, rounds))
    if with_jacobian:
        out["jacobian"] = vars(alternate(vmap_jacrev, structured, rounds))
    if with_loop:
        autograd_loop()
        start = time.perf_counter()
        autograd_loop()
        out["loop_s"] = time.perf_counter() - start
    return out


def memory_worker(method: str, depth: int, width: int) -> float:
    """MiB of peak-RSS growth during one call of `method` in this (fresh) process."""
    import torch

    from widthlab.empirical import empirical_ntk
    from widthlab.models.mlp import MLP

    model = MLP(INPUT_DIM, width, depth, seed=0)
    x = torch.randn(N_POINTS, INPUT_DIM, generator=torch.Generator().manual_seed(1))
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    empirical_ntk(model, x, method="structured" if method == "structured" else "jacobian")
    return (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024


def subprocess_json(*args) -> dict | float | str:
    proc = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True,
                          check=False)  # fmt: skip
    if proc.returncode != 0:
        return f"failed (exit {proc.returncode}): {proc.stderr.strip().splitlines()[-1:]}"
    return json.loads(proc.stdout.strip().splitlines()[-1])


def fmt_s(seconds: float) -> str:
    return f"{seconds * 1e3:.1f} ms" if seconds < 1 else f"{seconds:.2f} s"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="widths 1024, 4096; depths 1, 2")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--max-jacobian-gib", type=float, default=4.0)
    parser.add_argument("--memory", action="store_true", help="also measure peak memory")
    parser.add_argument("--sizes", help="only these depth x width pairs, e.g. 1x4096,2x1024")
    parser.add_argument("--no-write", action="store_true", help="print only")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--memory-worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(*json.loads(args.worker))))
        return
    if args.memory_worker:
        print(json.dumps(memory_worker(*json.loads(args.memory_worker))))
        return

    depths = [1, 2] if args.quick else [1, 2, 3]
    widths = [1024, 4096] if args.quick else [1024, 4096, 16384]
    sizes = [(d, w) for d in depths for w in widths]
    if args.sizes:
        sizes = [tuple(int(v) for v in item.split("x")) for item in args.sizes.split(",")]
    lines = [
        f"empirical NTK Θ(X, X): n = {N_POINTS}, D = {INPUT_DIM}, relu, ntk parameterization, "
        f"float32, CPU; {args.rounds} alternating rounds per comparison",
        f"load average at the start: {STARTUP_LOAD:.2f}",
        "",
        f"{'depth':>5} {'width':>6} {'P':>10} {'structured':>11} {'vmap_jacrev':>11} "
        f"{'speedup (median [range])':>26} {'mm rate':>18} {'floor rate':>18}  notes",
    ]
    print("\n".join(lines))
    verdicts, busy = [], False
    for depth, width in sizes:
        p = parameter_count(width, depth)
        jacobian_gib = N_POINTS * p * 4 / 2**30
        with_jacobian = jacobian_gib <= args.max_jacobian_gib
        with_loop = p <= LOOP_MAX_PARAMETERS
        result = subprocess_json(
            "--worker", json.dumps([depth, width, args.rounds, with_jacobian, with_loop])
        )
        row = f"{depth:>5} {width:>6} {p:>10,} "
        if isinstance(result, str):
            lines.append(row + result)
            print(lines[-1])
            continue
        mm, floor = Comparison(**result["mm"]), Comparison(**result["floor"])
        busy |= mm.busy or floor.busy
        structured_s = statistics.median(mm.candidate + floor.candidate)
        mm_rate, floor_rate = mm.speedups, floor.speedups  # baseline time / structured time
        gflops = result["flops"] / structured_s / 1e9
        notes = [f"{gflops:.0f} GFLOP/s"]
        if with_jacobian:
            jac = Comparison(**result["jacobian"])
            busy |= jac.busy
            speed = jac.speedups
            jac_cell = fmt_s(statistics.median(jac.baseline))
            speed_cell = (f"{statistics.median(speed):.1f}× "
                          f"[{min(speed):.1f}, {max(speed):.1f}]")  # fmt: skip
            if (depth, width) in GOALS:
                goal = GOALS[depth, width]
                verdicts.append(
                    f"speedup over vmap_jacrev at depth {depth}, width {width} ≥ {goal:g}×: "
                    f"median {statistics.median(speed):.1f}×, range [{min(speed):.1f}, "
                    f"{max(speed):.1f}]: {verdict(speed, goal, True, jac.busy)}"
                )
        else:
            jac_cell, speed_cell = "skipped", "—"
            notes.append(f"n×P Jacobian {jacobian_gib:.1f} GiB > {args.max_jacobian_gib:g}")
        if "loop_s" in result:
            notes.append(f"autograd loop {fmt_s(result['loop_s'])}")
        others = max(c.others_cores for c in (mm, floor))
        notes.append(f"others {others:.2f} cores")
        mm_cell = (f"{statistics.median(mm_rate):.0%} [{min(mm_rate):.0%}, "
                   f"{max(mm_rate):.0%}]")  # fmt: skip
        floor_cell = (f"{statistics.median(floor_rate):.0%} [{min(floor_rate):.0%}, "
                      f"{max(floor_rate):.0%}]")  # fmt: skip
        mm_verdict = verdict(mm_rate, FLOP_RATE_GOAL, True, mm.busy)
        floor_verdict = verdict(floor_rate, FLOP_RATE_GOAL, True, floor.busy)
        verdicts.append(
            f"FLOP rate at depth {depth}, width {width} ≥ {FLOP_RATE_GOAL:.0%} of plain "
            f"torch.mm: {mm_verdict}"
            + ("" if mm_verdict == "MET" else f"; of the mm + streaming floor: {floor_verdict}")
        )
        if args.memory:
            mib = {
                m: subprocess_json("--memory-worker", json.dumps([m, depth, width]))
                for m in (["structured", "jacobian"] if with_jacobian else ["structured"])
            }
            notes.append("peak MiB " + ", ".join(
                f"{m} {v:.0f}" if isinstance(v, float) else f"{m} {v}" for m, v in mib.items()
            ))  # fmt: skip
        lines.append(
            row + f"{fmt_s(structured_s):>11} {jac_cell:>11} {speed_cell:>26} "
            f"{mm_cell:>18} {floor_cell:>18}  " + "; ".join(notes)
        )
        print(lines[-1])
    lines += [
        "",
        "mm rate: plain torch.mm time / structured time, per round (structured's share of the "
        "mm FLOP rate); floor rate: the same with the streaming passes added to the baseline.",
        f"load average after: {load_average():.2f}" + ("  (busy)" if busy else ""),
        "",
        "verdicts:",
        *[f"  {v}" for v in verdicts],
    ]
    print("\n".join(lines[-7:]))
    if not args.no_write:
        report("bench_empirical_ntk", lines, write=True, echo=False)
        print("written to benchmarks/results/bench_empirical_ntk.txt")


if __name__ == "__main__":
    main()
