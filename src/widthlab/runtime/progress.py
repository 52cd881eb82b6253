"""What a sweep will run, and how far it has got: the dry run's table and the progress bar.

Both need each job's cost before it runs. A job's cost is modelled as t = a + b·s^p
(`CostModel`), s its memory estimate (`Job.peak_memory`, which grows with the network the job
trains or the kernel it forms; its width times its depth where every job of a sweep has the
same estimate) and a its fixed cost (start-up, data, evaluation: what dominates a small
network's job). `estimates(plan)` gives every job of a sweep plan its expected seconds:

- the seconds its own record took last time, where a record of the job exists (any
  config: the job's key names its size, so a rerun after a change costs about what it cost);
- else a + b·s, fitted (`cost_model`) to the sweep's jobs that have a record;
- else nothing in seconds; as relative work, a + b·s with a the mean size (a job's fixed
  cost taken as that of a job of average size), which is all the progress bar needs.

`SweepProgress` is one bar on stderr (tqdm) for the jobs a sweep launches, whatever the
launcher (in this process, joblib workers, a cluster): a thread watches the records folder,
where each job writes its record when it ends, finished or failed, with its own seconds.
Its time left is the job-seconds of the jobs not yet done — their past seconds, else a + b·s
refitted to the jobs finished so far (once two sizes have finished), else the relative work
— at the rate, in wall seconds per job-second, that the finished jobs went. The widest jobs
start first (`widthlab_launcher`'s `largest_first`), so counting jobs alone would call a
sweep nearly done when only its cheapest jobs were left, and scaling by size alone would
forget the fixed cost that dominates the many small jobs left at the end.
"""

from __future__ import annotations

import heapq
import json
import math
import statistics
import sys
import threading
import time
from collections.abc import Sequence
from typing import Any

POLL_SECONDS = 0.5


def past_seconds(path: Any) -> float | None:
    """The seconds of the record at `path`, if there is one with a timing."""
    try:
        record = json.loads(path.read_text())
        return float(record["timing"]["seconds"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


POWERS = (0.5, 0.75, 1.0, 1.5, 2.0, 3.0)


class CostModel:
    """seconds ≈ a + b·(size/scale)^p, a, b ≥ 0, fitted by least squares over timed jobs:
    p = 1 with two sizes, else the best of `POWERS` (a job's time grows faster than its
    memory where a kernel's cost is cubic in what its memory is quadratic in)."""

    def __init__(self, sizes: Sequence[float], seconds: Sequence[float]) -> None:
        self.scale = max(sizes) or 1.0
        best = None
        powers = (1.0,) if len(set(sizes)) < 3 else POWERS
        for p in powers:
            x = [(s / self.scale) ** p for s in sizes]
            mean_x, mean_t = statistics.fmean(x), statistics.fmean(seconds)
            var = sum((v - mean_x) ** 2 for v in x)
            cov = sum((v - mean_x) * (t - mean_t) for v, t in zip(x, seconds, strict=True))
            b = max(0.0, cov / var)
            a = max(0.0, mean_t - b * mean_x)
            error = sum((a + b * v - t) ** 2 for v, t in zip(x, seconds, strict=True))
            if best is None or error < best[0]:
                best = (error, a, b, p)
        _, self.a, self.b, self.p = best

    def __call__(self, size: float) -> float:
        return self.a + self.b * (size / self.scale) ** self.p


def cost_model(sizes: Sequence[float], seconds: Sequence[float]) -> CostModel | None:
    """The `CostModel` of timed jobs of at least two sizes, or None (module docstring)."""
    if len(set(sizes)) < 2 or not any(t > 0 for t in seconds):
        return None
    return CostModel(sizes, seconds)


def job_sizes(plan: Any) -> list[float]:
    """Every job's size in the cost model: its memory estimate, or, where every job of the
    sweep has the same one, its width times its depth (the launcher's own order)."""
    sizes = [
        float(plan.study.job(p.kind).peak_memory(r))
        for r, p in zip(plan.resolved, plan.plans, strict=True)
    ]
    if len(set(sizes)) > 1:
        return sizes
    shapes = []
    for r in plan.resolved:
        model = r.get("model") or {}
        width, depth = model.get("width"), model.get("depth")
        numbers = [v for v in (width, depth) if isinstance(v, int | float)]
        shapes.append(float(math.prod(numbers)) if numbers else 1.0)
    return shapes


def estimates(plan: Any) -> tuple[list[float | None], list[float]]:
    """(estimated seconds or None, relative work > 0) of every job of `plan` (module doc)."""
    sizes = job_sizes(plan)
    past = [past_seconds(p.path) for p in plan.plans]
    timed = [(b, s) for s, b in zip(past, sizes, strict=True) if s is not None]
    model = cost_model([b for b, _ in timed], [s for _, s in timed])
    seconds = [
        s if s is not None else (model(b) if model else None)
        for s, b in zip(past, sizes, strict=True)
    ]
    if all(s is not None for s in seconds):
        return seconds, [max(s, 1e-3) for s in seconds]
    mean = statistics.fmean(sizes) or 1.0
    return seconds, [mean + b for b in sizes]


def clock(seconds: float | None) -> str:
    """`1:05:03`, `4:07`, or `?`."""
    if seconds is None:
        return "?"
    s = round(seconds)
    h, m = divmod(s // 60, 60)
    return f"{h}:{m:02d}:{s % 60:02d}" if h else f"{m}:{s % 60:02d}"


def dry_run_table(plan: Any) -> str:
    """The jobs of `plan` as a table: key, cached, estimated seconds and memory; a total."""
    from tabulate import tabulate

    seconds, _ = estimates(plan)
    rows = []
    for resolved, job_plan, cached, secs in zip(
        plan.resolved, plan.plans, plan.cached, seconds, strict=True
    ):
        memory = plan.study.job(job_plan.kind).peak_memory(resolved) / 2**20
        rows.append(
            [
                job_plan.key,
                "cached" if cached else "runs",
                "–" if cached else ("?" if secs is None else f"{secs:.1f}"),
                f"{memory:.0f}",
            ]
        )
    todo = [s for s, c in zip(seconds, plan.cached, strict=True) if not c]
    known = [s for s in todo if s is not None]
    total = f"{sum(known):.0f} job-seconds" + (
        f" (+ {_jobs(len(todo) - len(known))} never timed)" if len(known) < len(todo) else ""
    )
    head = ["job", "record", "est. s", "est. MiB"]
    table = tabulate(rows, headers=head, tablefmt="simple", disable_numparse=True)
    return (
        f"{plan.sweep}: {_jobs(len(plan.plans))}, {sum(plan.cached)} cached, "
        f"{len(todo)} to run, {total}\n{table}"
    )


def _jobs(n: int) -> str:
    return f"{n} job" + ("" if n == 1 else "s")


class SweepProgress:
    """The progress bar of the jobs a sweep launches (module docstring)."""

    def __init__(
        self,
        plan: Any,
        launched: Sequence[int],
        workers: int = 1,
        stacks: Sequence[Sequence[int]] | None = None,
    ) -> None:
        self.plan = plan
        self.order = list(launched)  # as the launcher starts them
        self.workers = workers
        # What the launcher starts: one job each, or stacks of jobs trained together
        # (`runtime.stacks`), each taking the sum of its jobs' seconds.
        self.units = [list(s) for s in stacks] if stacks else [[i] for i in self.order]
        self.pending = list(launched)
        self.sizes = job_sizes(plan)
        self.past, self.relative = estimates(plan)
        self.finished: list[tuple[float, float]] = []  # (size, seconds) of the jobs done
        self.done: list[int] = []
        self.failed = 0
        self.computed = 0
        self.cached = sum(plan.cached)
        self.started = time.time()
        self.start_ns = time.time_ns()
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self._watch, daemon=True)
        self.bar: Any = None

    def __enter__(self) -> SweepProgress:
        self.bar = _Bar(self.plan, self.cached) if sys.stderr.isatty() else _Lines(self.plan)
        self._show()
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop.set()
        self.thread.join()
        self.poll()
        self.bar.close()

    def _watch(self) -> None:
        while not self.stop.wait(POLL_SECONDS):
            self.poll()

    def poll(self) -> None:
        """Count the launched jobs whose record has been written since the sweep began."""
        with self.lock:
            done = []
            for i in self.pending:
                path = self.plan.plans[i].path
                try:
                    if path.stat().st_mtime_ns < self.start_ns:
                        continue
                    record = json.loads(path.read_text())
                except (OSError, ValueError):
                    continue  # not written yet (a record is renamed into place whole)
                done.append(i)
                self.done.append(i)
                self.computed += 1
                self.failed += record.get("status") != "ok"
                seconds = (record.get("timing") or {}).get("seconds")
                self.finished.append((self.sizes[i], float(seconds or 0.0)))
            if done:
                self.pending = [i for i in self.pending if i not in set(done)]
            self._show()

    def predicted(self) -> dict[int, float] | None:
        """Each job's seconds: its own where finished, else predicted (module docstring)."""
        done_seconds = sum(t for _, t in self.finished)
        if not self.finished or done_seconds <= 0:
            return None
        out = {i: t for i, (_, t) in zip(self.done, self.finished, strict=True)}
        model = cost_model([s for s, _ in self.finished], [t for _, t in self.finished])
        rate = done_seconds / sum(self.relative[i] for i in self.done)
        for i in self.pending:
            if self.past[i] is not None:  # its own seconds in an earlier run
                out[i] = self.past[i]
            elif model is not None:
                out[i] = model(self.sizes[i])
            else:  # one size finished so far: the relative work, scaled by its seconds
                out[i] = rate * self.relative[i]
        return out

    def eta(self) -> float | None:
        """Wall seconds left: the launch order replayed on the workers with every job's
        seconds (`predicted`), a job still running past its prediction taken to end now,
        scaled by how the wall clock ran against the replay so far (launch overheads)."""
        seconds = self.predicted()
        if seconds is None:
            return None
        now = time.time() - self.started
        free = [0.0] * max(1, min(self.workers, len(self.units)))
        done, replay_now, end = set(self.done), 0.0, 0.0
        for unit in self.units:
            start = heapq.heappop(free)
            finish = start + sum(seconds[i] for i in unit)
            if all(i in done for i in unit):
                replay_now = max(replay_now, finish)
            heapq.heappush(free, finish)
            end = max(end, finish)
        scale = now / replay_now if replay_now > 0 else 1.0
        return max(0.0, end - replay_now) * scale

    def _show(self) -> None:
        parts = [f"cached {self.cached}", f"failed {self.failed}"]
        parts.append(f"{clock(time.time() - self.started)} elapsed")
        if self.pending:
            parts.append(f"~{clock(self.eta())} left")
        self.bar.show(self.cached + self.computed, ", ".join(parts))

    def summary(self) -> str:
        """One line for the end of the sweep."""
        return (
            f"{self.plan.study_name} {self.plan.sweep}: {_jobs(len(self.plan.plans))}, "
            f"{self.computed} computed ({self.failed} failed), {self.cached} cached, "
            f"in {clock(time.time() - self.started)}"
        )


class _Bar:
    """A tqdm bar on a terminal: jobs done of the sweep's, then the status text."""

    def __init__(self, plan: Any, initial: int) -> None:
        from tqdm import tqdm

        self.bar = tqdm(
            total=len(plan.plans),
            initial=initial,
            desc=f"{plan.study_name} {plan.sweep}",
            file=sys.stderr,
            dynamic_ncols=True,
            bar_format="{desc}: {n}/{total} jobs |{bar}| {unit}",
            unit="",
        )

    def show(self, done: int, status: str) -> None:
        self.bar.unit = status  # the text after the bar (tqdm prints `unit` where asked)
        self.bar.update(done - self.bar.n)
        self.bar.refresh()

    def close(self) -> None:
        self.bar.close()


class _Lines:
    """Where stderr is not a terminal (a log, a CI run): a line when the count changes, at
    most every `every` seconds, and the last one."""

    def __init__(self, plan: Any, every: float = 30.0) -> None:
        self.name = f"{plan.study_name} {plan.sweep}"
        self.total = len(plan.plans)
        self.every, self.last, self.shown = every, 0.0, -1
        self.text = ""

    def show(self, done: int, status: str) -> None:
        self.text = f"{self.name}: {done}/{self.total} jobs, {status}"
        if done != self.shown and time.time() - self.last >= self.every:
            self._print(done)

    def _print(self, done: int) -> None:
        print(self.text, file=sys.stderr, flush=True)
        self.last, self.shown = time.time(), done

    def close(self) -> None:
        self._print(self.shown)
