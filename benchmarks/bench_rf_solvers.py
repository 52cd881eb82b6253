"""Width sweep of min-norm random-features regression: `width_sweep` vs a lstsq loop.

n = 1000 training points on the sphere of radius √D (D = 32), y = ⟨β₁, x⟩ + 0.3ε, relu
gaussian features, 60 widths log-spaced from 10 to 10 000, float64. Both sides get the same
precomputed unscaled features σ(XA) (feature computation is not timed); the baseline solves
each width from scratch with `numpy.linalg.lstsq` on H_d = S[:, :d]/√d. The two alternate for
`--rounds` rounds (benchmarks/harness.py); goal: the sweep ≥ 20× faster. Also prints the
largest relative disagreement of the test errors.

    python benchmarks/bench_rf_solvers.py [--rounds 3] [--blas-threads 1]
"""

from __future__ import annotations

import argparse

import numpy as np
from harness import alternate, report, verdict
from threadpoolctl import threadpool_limits

from widthlab.models.random_features import draw_features, feature_activations
from widthlab.seeding import uniform_sphere
from widthlab.width_sweep import width_sweep

GOAL = 20.0


def lstsq_loop(s_train, y, widths, s_test, y_test) -> np.ndarray:
    errors = []
    for d in widths:
        scale = 1.0 / np.sqrt(d)
        beta = np.linalg.lstsq(s_train[:, :d] * scale, y, rcond=None)[0]
        errors.append(np.mean((s_test[:, :d] @ beta * scale - y_test) ** 2))
    return np.asarray(errors)


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
        result.load_line(),
    ]
    report("bench_rf_solvers", lines)
    limits.restore_original_limits()


if __name__ == "__main__":
    main()
