"""How honest the progress bar's time left is: every sweep of a finished laptop run replayed
on its own recorded job timings.

For each sweep (a records/sweeps/*.json manifest) the jobs are replayed as the cores
launcher runs them: started widest first (`largest_first`), on `--workers` workers, each
taking the seconds its record took. At every job's end the bar's estimate
(`runtime.progress.SweepProgress.eta`, with no past records, as in a first run) is compared
with the true time left; reported per sweep: the worst ratio estimate/truth once 10% of the
sweep's job-seconds are done (the goal: within [1/2, 2]) and at the first job's end; points
with less than 5 s, or 5% of the sweep's wall, left are not judged.

    python benchmarks/check_eta.py [--results results] [--workers 2]
"""

from __future__ import annotations

import argparse
import heapq
import json
import sys
import time
from pathlib import Path
from types import SimpleNamespace

from harness import report

REPO = Path(__file__).resolve().parents[1]
# Below this much time left, a ratio says nothing a user would act on (a sweep's last
# seconds): points where the truth is under 5 s or 5% of the sweep's wall are not judged.
MIN_TRUTH_S, MIN_TRUTH_FRACTION = 5.0, 0.05
sys.path.insert(0, str(REPO / "src"))


def sweeps(results: Path):
    """(study, sweep, [(width, depth, seconds, size)]) of every manifest with records."""
    from widthlab.runtime.study import load_study

    for manifest in sorted(results.glob("*/records/sweeps/*.json")):
        data = json.loads(manifest.read_text())
        folder = manifest.parent.parent / data["job"]
        jobs = []
        paths = [folder / f"{key}.json" for key in data["keys"] or []]
        if not all(p.is_file() for p in paths):
            continue  # a sweep that has not finished
        for path in paths:
            record = json.loads(path.read_text())
            config = {**record["config"], "paths": {}, "tracking": {}}
            study = load_study(record["config"]["study"]["_target_"])
            size = float(study.job(record["job_kind"]).peak_memory(config))
            model, seconds = record["config"].get("model") or {}, record["timing"]["seconds"]
            jobs.append((model.get("width") or 0, model.get("depth") or 0, seconds, size))
        if len({j[3] for j in jobs}) == 1:  # as `progress.job_sizes` falls back
            jobs = [(w, d, t, float(max(w, 1) * max(d, 1))) for w, d, t, _ in jobs]
        if len(jobs) > 1:
            yield manifest.parent.parent.parent.name, data["sweep"], jobs


def replay(jobs, workers: int, rerun: bool = False) -> list[tuple[float, float, float]]:
    """(done job-seconds fraction, estimate, truth) at every job's end of one sweep; `rerun`:
    every job has a record of an earlier run (its seconds, on a machine 10% slower)."""
    from widthlab.runtime.progress import SweepProgress

    order = sorted(range(len(jobs)), key=lambda i: (-jobs[i][0], -jobs[i][1]))
    clock, running, ends = 0.0, [], []
    queue = list(order)
    while queue or running:
        while queue and len(running) < workers:
            i = queue.pop(0)
            heapq.heappush(running, (clock + jobs[i][2], i))
        clock, i = heapq.heappop(running)
        ends.append((clock, i))
    total_seconds, makespan = sum(j[2] for j in jobs), ends[-1][0]
    plan = SimpleNamespace(
        study=SimpleNamespace(job=lambda kind: None), study_name="", sweep="",
        plans=[SimpleNamespace(path=Path("/nonexistent")) for _ in jobs],
        resolved=[{} for _ in jobs], cached=[False] * len(jobs),
    )  # fmt: skip
    progress = SweepProgress.__new__(SweepProgress)
    progress.sizes = [j[3] for j in jobs]
    progress.past = [1.1 * j[2] for j in jobs] if rerun else [None] * len(jobs)
    mean = sum(progress.sizes) / len(jobs) or 1.0
    progress.relative = [mean + s for s in progress.sizes]
    progress.plan, progress.finished, progress.done = plan, [], []
    progress.pending, progress.order, progress.workers = list(order), order, workers
    progress.units = [[i] for i in order]
    out, done_seconds = [], 0.0
    for end, i in ends[:-1]:
        progress.pending.remove(i)
        progress.done.append(i)
        progress.finished.append((jobs[i][3], jobs[i][2]))
        done_seconds += jobs[i][2]
        progress.started = time.time() - end
        out.append((done_seconds / total_seconds, progress.eta(), makespan - end))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, default=REPO / "results")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    lines = []
    for rerun in (False, True):
        lines += check(args.results, args.workers, rerun)
    report("check_eta", lines)


def check(results: Path, workers: int, rerun: bool) -> list[str]:
    what = "a rerun: every job's past seconds known, 10% off" if rerun else "a first run"
    lines = [f"replayed on {workers} workers from {results}/*/records, as {what}:"]
    worst_all = 1.0
    for study, sweep, jobs in sweeps(results):
        points = replay(jobs, workers, rerun)
        floor = max(MIN_TRUTH_S, MIN_TRUTH_FRACTION * max(t for _, _, t in points))
        late = [
            max(e, 1e-9) / t for f, e, t in points if f >= 0.10 and e is not None and t >= floor
        ]
        first = next((e / t for _, e, t in points if e is not None and t > 0), None)
        if not late:
            continue
        worst = max(late, key=lambda r: max(r, 1 / r))
        worst_all = max(worst_all, max(worst, 1 / worst))
        lines.append(
            f"  {study:<24} {sweep:<34} {len(jobs):>3} jobs: after 10% of the job-seconds the "
            f"estimate is {min(late):.2f}–{max(late):.2f}× the truth"
            + (f" (first job's end: {first:.2f}×)" if first is not None else "")
        )
    verdict = "MET" if worst_all <= 2.0 else "NOT MET"
    lines.append(f"  within 2× of the truth once 10% of the job-seconds are done: {verdict}")
    return lines


if __name__ == "__main__":
    main()
