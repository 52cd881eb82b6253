"""What MLflow tracking adds to a job on a SLURM cluster, against a tracking server on
PostgreSQL: the seconds a job's tracking calls took (each record's `timing.tracking_seconds`,
`runtime.tracking.JobRun`), median and max over the jobs of one smoke sweep, run

- through `hydra/launcher=slurm_cpu` with `--at-once` jobs at most side by side
  (`hydra.launcher.array_parallelism`; each job its own process, as on a cluster);
- under the basic launcher (the jobs one after another in one process), for comparison.

The cluster is tests/cluster.py's (one node, Debian's slurm-wlm, munge and postgresql; as
root), started in a temporary folder and stopped at the end. The sweep is
`ntk_convergence`'s smoke profile at width 16, depth 1, seeds 0-4 (10 jobs).

    python benchmarks/bench_cluster_tracking.py [--at-once 1]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from harness import report

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
SWEEP = ["-m", "study=ntk_convergence", "profile=smoke", "model.width=16", "model.depth=1",
         "seed=0,1,2,3,4"]  # fmt: skip


def pipeline(folder: Path, env: dict, *args: str) -> None:
    cmd = [sys.executable, str(REPO / "pipelines" / args[0]), *args[1:]]
    proc = subprocess.run(cmd, cwd=folder, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"error: {' '.join(args)} failed:\n{proc.stderr[-2000:]}")


def tracking_seconds(folder: Path) -> list[float]:
    records = folder.glob("ntk_convergence/records/kernels/*.json")
    return [json.loads(p.read_text())["timing"]["tracking_seconds"] for p in records]


def measure(cluster, at_once: int, folder: Path) -> list[str]:
    """The report's lines: the sweep on SLURM, `at_once` jobs at most side by side, then
    under the basic launcher, both logging to `cluster`'s tracking server."""
    env = {**os.environ, **cluster.env()}
    pipeline(folder, env, "data.py", "data=digits", "profile=smoke", "tracking=off")
    on_slurm = ["hydra/launcher=slurm_cpu", "hydra.launcher.mem_gb=1",
                f"hydra.launcher.array_parallelism={at_once}"]  # fmt: skip
    pipeline(folder, env, "run.py", *SWEEP, *on_slurm, "paths.results_dir=slurm")
    pipeline(folder, env, "run.py", *SWEEP, "paths.results_dir=basic")
    lines = [f"`run.py {' '.join(SWEEP)}` logging to `mlflow server` on PostgreSQL"]
    for name, shown in (("slurm", f"SLURM, {at_once} at once"), ("basic", "basic launcher")):
        seconds = tracking_seconds(folder / name)
        lines.append(
            f"{shown}: tracking calls {statistics.median(seconds):.3f} s a job (median; "
            f"max {max(seconds):.3f}) over {len(seconds)} jobs"
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--at-once", type=int, default=1, help="SLURM jobs side by side, at most")
    args = parser.parse_args()
    from cluster import missing, start_cluster

    reason = missing()
    if reason:
        sys.exit(f"error: {reason}")
    cluster = start_cluster()
    try:
        with tempfile.TemporaryDirectory(prefix="bench-cluster-") as folder:
            lines = measure(cluster, args.at_once, Path(folder))
    finally:
        cluster.stop()
    report("bench_cluster_tracking", lines)


if __name__ == "__main__":
    main()
