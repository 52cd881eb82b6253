"""The whole pipeline, smoke profile, from scratch: `dvc repro` of this working tree against
the same of a baseline revision.

Each round runs `dvc repro` in a fresh copy of the repository (the files git would clone,
no results, no dvc.lock, no MLflow store; `profile: smoke` in conf/config.yaml), so every
stage and every job runs. Copies are made before the rounds and are not timed. Baseline and
candidate alternate (benchmarks/harness.py, no warm-up: a warm-up would be a whole repro
each). Goal: the candidate's smoke repro takes at most 60 s (every round); the ratio to the
baseline is printed as what the change bought. Also prints, for the candidate's last round,
the seconds of each stage (from DVC's "Running stage" lines) and its jobs' own seconds.

`--four-studies` reproduces only the four studies the pipeline held when the 60 s goal was
set (`ntk_convergence`, `double_descent_rf`, `double_descent_mlp`, `lazy_training`): `dvc
repro` of their four stages, which runs the `params` and `data` stages they depend on too, but
not `report`, which reads every study. Its results go to
`benchmarks/results/bench_smoke_repro_four_studies.txt`.

`--profile laptop` runs the laptop profile instead (every study at its full size, ~10 min for
the four studies on 2 cores); its goals are the issue's: the four studies within 10 minutes,
the whole pipeline within 20. `--baseline none` times the candidate alone (its rounds one
after the other, no ratio), which is what an absolute goal needs when a baseline round would
double a run that takes minutes. Results go to
`benchmarks/results/bench_<profile>_repro[_four_studies].txt`.

    python benchmarks/bench_smoke_repro.py [--rounds 3] [--baseline 8071b66] [--four-studies]
        [--profile smoke|laptop]
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

from harness import alternate, report, verdict

GOALS_S = {  # (the four original studies, the whole pipeline)
    "smoke": (60.0, 60.0),
    "laptop": (600.0, 1200.0),
}
FOUR_STUDIES = ("ntk_convergence", "double_descent_rf", "double_descent_mlp", "lazy_training")
REPO = Path(__file__).resolve().parents[1]


def copy_tree(dest: Path, revision: str | None, profile: str = "smoke") -> None:
    """The repository as a fresh clone would have it (`revision`, or the working tree's
    tracked and untracked-not-ignored files), without results, reports or dvc.lock."""
    dest.mkdir(parents=True)
    if revision is not None:
        archive = subprocess.run(
            ["git", "archive", revision], cwd=REPO, capture_output=True, check=True
        ).stdout
        subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
        files = [p.relative_to(dest).as_posix() for p in dest.rglob("*") if p.is_file()]
    else:
        files = subprocess.run(
            ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
            cwd=REPO, capture_output=True, text=True, check=True,
        ).stdout.split("\0")  # fmt: skip
        for rel in filter(None, files):
            if (REPO / rel).is_file():
                (dest / rel).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(REPO / rel, dest / rel)
    for rel in ("results", "reports", "dvc.lock", "mlflow.db", "mlruns"):
        path = dest / rel
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
    config = dest / "conf" / "config.yaml"
    config.write_text(config.read_text().replace("profile: laptop", f"profile: {profile}"))
    git = ["git", "-c", "user.name=b", "-c", "user.email=b@b"]
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "copy"]):
        subprocess.run([*git, *args], cwd=dest, check=True, capture_output=True)


def repro(folder: Path, log: list[str], targets: list[str]) -> None:
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    # The stages' `python` is this interpreter's (its virtual environment), as `dvc repro`
    # from an activated environment would find it.
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    start = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "dvc", "repro", *targets], cwd=folder, env=env,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    for line in proc.stdout:
        log.append(f"{time.perf_counter() - start:8.1f} {line.rstrip()}")
    if proc.wait() != 0:
        raise SystemExit(f"dvc repro failed in {folder}:\n" + "\n".join(log[-30:]))


def stage_seconds(log: list[str]) -> list[tuple[str, float]]:
    """(stage, seconds) from the timestamps of DVC's 'Running stage' lines."""
    marks = [
        (float(line.split()[0]), line.split("'")[1]) for line in log if "Running stage '" in line
    ]
    end = float(log[-1].split()[0])
    return [
        (name, nxt - t) for (t, name), (nxt, _) in zip(marks, [*marks[1:], (end, "")], strict=True)
    ]


def job_seconds(folder: Path) -> float:
    total = 0.0
    for record in (folder / "results").glob("*/records/**/*.json"):
        try:
            total += float(json.loads(record.read_text())["timing"]["seconds"])
        except (KeyError, TypeError, ValueError):
            continue
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--baseline", default="8071b66", help="git revision to compare with ('none': no baseline)"
    )
    parser.add_argument("--profile", choices=sorted(GOALS_S), default="smoke")
    parser.add_argument(
        "--four-studies",
        action="store_true",
        help="only the four original studies' stages (and what they need)",
    )
    args = parser.parse_args()
    baseline = None if args.baseline.lower() == "none" else args.baseline
    goal = GOALS_S[args.profile][0 if args.four_studies else 1]
    targets = [f"study@{name}" for name in FOUR_STUDIES] if args.four_studies else []
    what = (
        f"`dvc repro {' '.join(targets)}` (the four original studies with the params and "
        "data stages they need; no report)"
        if targets
        else "`dvc repro`"
    )
    root = Path(tempfile.mkdtemp(prefix="bench_smoke_"))
    queues: dict[str, list[Path]] = {"baseline": [], "candidate": []}
    sides = (
        [("candidate", None)] if baseline is None else [("baseline", baseline), ("candidate", None)]
    )
    for i in range(args.rounds):
        for side, revision in sides:
            folder = root / f"{side}{i}"
            copy_tree(folder, revision, args.profile)
            queues[side].append(folder)
    logs: dict[str, list[str]] = {}
    last: dict[str, Path] = {}

    def run(side: str) -> None:
        last[side] = queues[side].pop(0)
        logs[side] = []
        repro(last[side], logs[side], targets)

    # Without a baseline the harness still alternates, with a no-op in the baseline's place:
    # its rounds, load and competing-process checks are the same.
    result = alternate(
        (lambda: None) if baseline is None else (lambda: run("baseline")),
        lambda: run("candidate"),
        args.rounds,
        False,
    )
    stages = stage_seconds(logs["candidate"])
    timings = [result.line("candidate (working tree)", result.candidate, " s")]
    if baseline is not None:
        timings = [
            result.line(f"baseline  ({baseline})", result.baseline, " s"),
            *timings,
            result.line("speed-up (baseline / candidate)", result.speedups),
        ]
    sides_text = (
        "candidate = the working tree, no baseline"
        if baseline is None
        else f"baseline = {baseline}, candidate = the working tree"
    )
    lines = [
        f"{args.profile} profile, {what} from scratch; {sides_text}",
        *timings,
        f"  goal ≤ {goal:.0f} s: {verdict(result.candidate, goal, False, result.busy)}",
        f"candidate's last round: {len(stages)} stages, jobs' own seconds "
        f"{job_seconds(last['candidate']):.1f}; per stage (s):",
        *(f"  {name:<36} {sec:6.1f}" for name, sec in stages),
        f"  median stage {statistics.median(s for _, s in stages):.1f} s",
        result.load_line(),
    ]
    report(f"bench_{args.profile}_repro" + ("_four_studies" if targets else ""), lines)
    shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
