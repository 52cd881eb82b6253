"""The laptop `ntk_convergence` stage from empty records: a baseline revision against the
working tree, on the same data.

Each round runs `python pipelines/stage.py study=ntk_convergence hydra/launcher=cores` (its
three sweeps on both cores, then its aggregate) in a fresh copy of the code, with its own
empty results folder and MLflow store and the data sets of this checkout's `data/`, so every
job runs. Baseline and candidate alternate (benchmarks/harness.py, no warm-up: a warm-up
would be a whole stage each). Prints both sides' wall times and their ratio, and each
side's job-seconds (the jobs' own time, summed over the records), so that the stage's
overhead (wall − job-seconds / 2 cores) can be told apart from the speed of the machine,
which drifts by tens of percent between runs here. What the stage costs beyond its jobs is
what changed: loky worker restarts and the circle sweep's width-10 000 job alone on one core
(against cd9bde0), each job's composition from the YAML files in the worker (against
d8b8440, before the template launcher), the cyclic collector walking the imported heap in the
stage's process and its workers (against 8071b66, before widthlab.runtime.collector). No
goal of its own: the stage is a share of issue 19's four-study budget.

`--study <name>` times another study's stage the same way (results in
`benchmarks/results/bench_stage_<name>.txt`), e.g. `double_descent_mlp` for the launch order
of its widest jobs (against f293a92, before `largest_first`).

    python benchmarks/bench_ntk_stage.py [--rounds 3] [--baseline 8071b66] [--study <name>]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from harness import alternate, report

REPO = Path(__file__).resolve().parents[1]
STUDY = "ntk_convergence"


def copy_code(dest: Path, revision: str | None) -> None:
    """`revision`'s files (git archive), or the working tree's tracked ones, into `dest`."""
    dest.mkdir(parents=True)
    if revision is None:
        archive = (
            subprocess.run(
                ["git", "stash", "create"], cwd=REPO, capture_output=True, text=True, check=True
            ).stdout.strip()
            or "HEAD"
        )
    else:
        archive = revision
    tar = subprocess.run(["git", "archive", archive], cwd=REPO, capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(dest)], input=tar.stdout, check=True)


def run_stage(folder: Path, study: str) -> float:
    """The stage in `folder` (its own code first on the path); its job-seconds."""
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    env["PYTHONPATH"] = str(folder / "src")
    overrides = [
        f"paths.results_dir={folder / 'results'}",
        f"paths.data_dir={REPO / 'data'}",
        f"tracking.uri=sqlite:///{folder / 'mlflow.db'}",
    ]
    proc = subprocess.run(
        [
            sys.executable,
            "pipelines/stage.py",
            f"study={study}",
            "hydra/launcher=cores",
            *overrides,
        ],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        raise SystemExit(f"the stage failed in {folder}:\n{proc.stderr[-3000:]}")
    total = 0.0
    for record in (folder / "results").glob("*/records/**/*.json"):
        timing = json.loads(record.read_text()).get("timing") or {}
        total += float(timing.get("seconds") or 0.0)
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--baseline", default="8071b66", help="git revision to compare with")
    parser.add_argument("--study", default=STUDY, help="the study whose stage to time")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="bench_ntk_stage_"))
    code = {"baseline": root / "baseline", "candidate": root / "candidate"}
    copy_code(code["baseline"], args.baseline)
    copy_code(code["candidate"], None)
    jobs: dict[str, list[float]] = {"baseline": [], "candidate": []}
    count = {"baseline": 0, "candidate": 0}

    def run(side: str) -> None:
        count[side] += 1
        folder = root / f"{side}{count[side]}"
        shutil.copytree(code[side], folder)
        jobs[side].append(run_stage(folder, args.study))
        shutil.rmtree(folder, ignore_errors=True)

    start = time.strftime("%H:%M")
    result = alternate(lambda: run("baseline"), lambda: run("candidate"), args.rounds, False)

    def overhead(side: str, walls: list[float]) -> list[float]:
        return [w - j / 2 for w, j in zip(walls, jobs[side], strict=True)]

    base_over = overhead("baseline", result.baseline)
    cand_over = overhead("candidate", result.candidate)

    ratio = statistics.median(
        c / b for b, c in zip(jobs["baseline"], jobs["candidate"], strict=True)
    )
    lines = [
        f"laptop profile, the {args.study} stage from empty records (started {start}); "
        f"baseline = {args.baseline}, candidate = the working tree",
        result.line(f"baseline  ({args.baseline}) wall", result.baseline, " s"),
        result.line("candidate (working tree) wall", result.candidate, " s"),
        result.line("speed-up (baseline / candidate)", result.speedups),
        result.line("baseline  job-seconds", jobs["baseline"], " s"),
        result.line("candidate job-seconds", jobs["candidate"], " s"),
        result.line("baseline  overhead (wall - job-s / 2)", base_over, " s"),
        result.line("candidate overhead (wall - job-s / 2)", cand_over, " s"),
        f"  job-seconds, candidate / baseline per round: median {ratio:.3f}",
        result.load_line(),
    ]
    report("bench_ntk_stage" if args.study == STUDY else f"bench_stage_{args.study}", lines)
    shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
