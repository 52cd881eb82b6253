"""Width sweep of min-norm random-features regression: `width_sweep` vs a lstsq loop.

n = 1000 training points on the sphere of radius √D (D = 32), y = ⟨β₁, x⟩ + 0.3ε, relu
gaussian features, 60 widths log-spaced from 10 to 10 000, float64. Both sides get the same
precomputed unscaled features σ(XA) (feature computation is not timed); the baseline solves
each width from scratch with `numpy.linalg.lstsq` on H_d = S[:, :d]/√d. The two alternate for
`--rounds` rounds (benchmarks/harness.py); goal: the sweep ≥ 20× faster. Also prints the
largest relative disagreement of the test errors, and the sweep's floor on this machine (see
`floor`): the time of the kernels its outputs need, each timed alone, so loop / floor is the
largest speed-up this algorithm could show here and sweep / floor how close it comes.

    python benchmarks/bench_rf_solvers.py [--rounds 3] [--blas-threads 1]
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import time

import numpy as np
from harness import alternate, report, timed, verdict
from threadpoolctl import threadpool_limits

from widthlab.models.random_features import draw_features, feature_activations
from widthlab.seeding import uniform_sphere
from widthlab.width_sweep import nested_grams, width_sweep

GOAL = 20.0


def lstsq_loop(s_train, y, widths, s_test, y_test) -> np.ndarray:
    errors = []
    for d in widths:
        scale = 1.0 / np.sqrt(d)
        beta = np.linalg.lstsq(s_train[:, :d] * scale, y, rcond=None)[0]
        errors.append(np.mean((s_test[:, :d] @ beta * scale - y_test) ** 2))
    return np.asarray(errors)


def floor(s_train, y, widths, s_test, repeats: int = 3) -> dict[str, float]:
    """The sweep's unavoidable work at the ridge λ = 0, each kernel timed alone (best of
    `repeats`), in seconds; every input is prepared outside the timing.

    * "rank updates": the Gram updates, flops at BLAS's rate: one dsyrk per kernel-route width
      d ≥ n on the columns added since the last (column-major copies made beforehand, so no
      copy is timed), and the primal Gram S_{d'}ᵀS_{d'} (d' the largest width below n).
    * "factorisations": one LAPACK dpotrf per width, of the d×d (d < n) or n×n Gram.
    * "feature passes": the matrix-vector products over the features that the outputs need,
      at memory bandwidth: per kernel-route width β = S_dᵀz, the fit S_dβ, the KKT
      stationarity S_dᵀc and the test predictions T_dβ; per primal width the fit and the
      test predictions (β comes from the d×d solve). Also returned as "bytes" read.

    Not counted: LAPACK's condition estimate (dpocon) and the 1-norm it needs, the
    triangular solves and the scaled copy of each Gram, all O(n²) per width."""
    from scipy.linalg import blas, lapack

    n = s_train.shape[0]
    small = [int(d) for d in widths if d < n]
    big = [int(d) for d in widths if d >= n]
    blocks = [np.asfortranarray(s_train[:, lo:hi]) for lo, hi in itertools.pairwise([0, *big])]
    prim = np.asfortranarray(s_train[:, : small[-1]]) if small else None
    grams = [gram for _, _, gram in nested_grams(s_train, widths)]
    vec_n, vec_d = np.ones(n), np.ones(int(widths[-1]))

    def best(fn) -> float:
        return min(timed(fn) for _ in range(repeats))

    def updates():
        c = np.zeros((n, n), order="F")
        for block in blocks:
            c = blas.dsyrk(1.0, block, beta=1.0, c=c, overwrite_c=1)
        if prim is not None:
            blas.dsyrk(1.0, prim, trans=1)

    def factorisations() -> float:
        total = 0.0
        for g in grams:
            a = np.array(g, order="F")
            start = time.perf_counter()
            lapack.dpotrf(a, lower=0, overwrite_a=1, clean=0)
            total += time.perf_counter() - start
        return total

    def passes():
        for d in widths:
            sd, td = s_train[:, :d], s_test[:, :d]
            if d >= n:
                sd.T @ vec_n, sd.T @ vec_n
            sd @ vec_d[:d], td @ vec_d[:d]

    m = s_test.shape[0]
    reads = 8 * sum((3 * n + m) * int(d) if d >= n else (n + m) * int(d) for d in widths)
    return {
        "rank updates": best(updates),
        "factorisations": min(factorisations() for _ in range(repeats)),
        "feature passes": best(passes),
        "bytes": float(reads),
    }


def floor_lines(parts: dict[str, float], result) -> list[str]:
    """The floor's lines: its parts, loop / floor and the sweep's share of the floor rate."""
    total = parts["rank updates"] + parts["factorisations"] + parts["feature passes"]
    loop, sweep = (statistics.median(v) for v in (result.baseline, result.candidate))
    return [
        f"floor (each kernel alone, best of 3): rank updates {parts['rank updates']:.3f} s + "
        f"factorisations {parts['factorisations']:.3f} s + feature passes "
        f"{parts['feature passes']:.3f} s ({parts['bytes'] / 1e9:.2f} GB, "
        f"{parts['bytes'] / 1e9 / parts['feature passes']:.1f} GB/s) = {total:.3f} s",
        f"  loop / floor = {loop / total:.1f}× (the most this algorithm shows here); the sweep "
        f"runs at {total / sweep:.0%} of its floor rate (floor / sweep time, medians); the goal "
        f"needs ≥ {total * GOAL / loop:.0%} of it",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--dim", type=int, default=32)
    parser.add_argument("--n-test", type=int, default=1000)
    parser.add_argument("--max-width", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--blas-threads", type=int, default=1, help="BLAS threads for both sides (0: leave)"
    )
    args = parser.parse_args()
    # Same BLAS thread count on both sides: on shared cores multithreaded LAPACK stalls
    # erratically, which would make either timing meaningless.
    limits = threadpool_limits(args.blas_threads or None, user_api="blas")

    rng = np.random.default_rng(0)
    x = uniform_sphere(rng, args.n + args.n_test, args.dim, np.sqrt(args.dim))
    beta1 = rng.standard_normal(args.dim) / np.sqrt(args.dim)
    y_all = x @ beta1 + 0.3 * rng.standard_normal(len(x))
    s_all = feature_activations(x, draw_features(args.dim, args.max_width, "gaussian", 1), "relu")
    s_train, s_test = s_all[: args.n], s_all[args.n :]
    y, y_test = y_all[: args.n], y_all[args.n :]
    widths = np.unique(np.round(np.logspace(1, np.log10(args.max_width), 60)).astype(int))

    out = {}

    def sweep():
        out["sweep"] = width_sweep(s_train, y, widths, s_test, y_test, blas_threads=None)

    def loop():
        out["loop"] = lstsq_loop(s_train, y, widths, s_test, y_test)

    result = alternate(loop, sweep, rounds=args.rounds)
    parts = floor(s_train, y, widths, s_test)
    res, ref = out["sweep"], out["loop"]
    sweep_err = res.test_error[0]
    rel = np.abs(sweep_err - ref) / np.abs(ref)
    worst = int(np.argmax(rel))
    lines = [
        f"n={args.n} D={args.dim} widths={len(widths)} ({widths[0]}..{widths[-1]}), float64, "
        f"{args.blas_threads or 'default'} BLAS thread(s)",
        result.line("lstsq loop ", result.baseline, " s"),
        result.line("width_sweep", result.candidate, " s"),
        result.line("speed-up (loop / sweep)", result.speedups),
        f"  goal ≥ {GOAL}×: {verdict(result.speedups, GOAL, True, result.busy)}",
        f"max rel. test-error disagreement: {rel.max():.2e} at d={widths[worst]}",
        f"eigh fallbacks: {sum(m == 'eigh' for m in res.methods[0])}; peak test error "
        f"{sweep_err.max():.3g} at d={widths[np.argmax(sweep_err)]}",
        *floor_lines(parts, result),
        result.load_line(),
    ]
    report("bench_rf_solvers", lines)
    limits.restore_original_limits()


if __name__ == "__main__":
    main()
