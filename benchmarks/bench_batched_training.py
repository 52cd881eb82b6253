"""What stacks buy: a training sweep with the seeds of each width trained as one stack
(`widthlab.runtime.stacks`) against the same sweep with every network trained alone.

Each round runs, in a fresh results folder (nothing cached), tracking off, on the machine's
cores (`hydra/launcher=cores`), alternately (`harness.alternate`):

    python pipelines/run.py -m study=<sweep> profile=laptop hydra.sweeper.stack_networks=false
    python pipelines/run.py -m study=<sweep> profile=laptop                        # stacks

with the laptop profile's widths and seeds and both runs cut to `--steps` optimizer steps
(the same steps, the same widths: the ratio is per step; a whole sweep takes minutes). The
data files are the laptop's (`--data`, made by `dvc repro`). Goal (the issue's): the
`double_descent_mlp` sweep ≥ 3× faster stacked.

    python benchmarks/bench_batched_training.py [--rounds 3] [--steps 1000] [--data data]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from harness import alternate, report, verdict

REPO = Path(__file__).resolve().parents[1]
SWEEPS = {
    # sweep: (the profile key of its step budget, goal)
    "double_descent_mlp": ("study.double_descent_mlp.max_steps", 3.0),
    "mnist1d_double_descent": ("study.mnist1d_double_descent.max_steps", None),
}


def run(folder: Path, sweep: str, steps: int, data: Path, stacked: bool) -> None:
    results = folder / ("stacked" if stacked else "alone")
    shutil.rmtree(results, ignore_errors=True)
    key, _ = SWEEPS[sweep]
    cmd = [
        sys.executable, str(REPO / "pipelines" / "run.py"), "-m", f"study={sweep}",
        "profile=laptop", "hydra/launcher=cores", "tracking=off", f"paths.data_dir={data}",
        f"paths.results_dir={results}", f"profile.{key}={steps}",
        f"hydra.sweeper.stack_networks={str(stacked).lower()}",
        f"hydra.sweep.dir={folder / 'outputs'}",
    ]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    proc = subprocess.run(cmd, cwd=folder, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stderr[-3000:]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--data", type=Path, default=REPO / "data")
    parser.add_argument("--sweeps", nargs="+", default=list(SWEEPS))
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="bench_batched_"))
    lines = [
        f"laptop profile's widths and seeds, {args.steps} steps a network, every job "
        "recomputed each run, tracking off, hydra/launcher=cores; alone = "
        "hydra.sweeper.stack_networks=false"
    ]
    data = args.data.resolve()
    for sweep in args.sweeps:
        result = alternate(
            lambda sweep=sweep: run(folder, sweep, args.steps, data, False),
            lambda sweep=sweep: run(folder, sweep, args.steps, data, True),
            args.rounds,
            warmup=False,
        )
        goal = SWEEPS[sweep][1]
        lines += [
            f"{sweep}:",
            result.line("  every network alone", result.baseline, " s"),
            result.line("  seeds stacked by width", result.candidate, " s"),
            result.line("  speed-up (alone / stacked)", result.speedups),
        ]
        if goal is not None:
            check = verdict(result.speedups, goal, True, result.busy)
            lines.append(f"  goal ≥ {goal:g}×: {check}")
        lines.append("  " + result.load_line())
    report("bench_batched_training", lines)
    shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
