"""What a sweep will run, and how far it has got: the dry run's table and the progress bar.

Both need each job's cost before it runs. `estimates(plan)` gives every job of a sweep
plan its expected seconds:

- the seconds its own record took last time, where a record of the job exists (any
  config: the job's key names its size, so a rerun after a change costs about what it cost);
- else the job's memory estimate (`Job.peak_memory`, which grows with the network the job
  trains or the kernel it forms) times the median seconds per byte of the sweep's jobs that
  have a record;
- else nothing in seconds: the memory estimates still give the jobs' relative sizes, which
  is all the progress bar needs.

`SweepProgress` is one bar on stderr (tqdm) for the jobs a sweep launches, whatever the
launcher (in this process, joblib workers, a cluster): a thread watches the records folder,
where each job writes its record when it ends, finished or failed. Its time left is the
work not yet done at the rate the finished work went, the work of a job being its estimate:
the widest jobs start first (`widthlab_launcher`'s `largest_first`), so counting jobs alone
would call a sweep nearly done when only its cheapest jobs were left.
"""

from __future__ import annotations

import json
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


def estimates(plan: Any) -> tuple[list[float | None], list[float]]:
    """(estimated seconds or None, relative work > 0) of every job of `plan` (module doc)."""
    sizes = [
        float(plan.study.job(p.kind).peak_memory(r))
        for r, p in zip(plan.resolved, plan.plans, strict=True)
    ]
    past = [past_seconds(p.path) for p in plan.plans]
    rates = [s / b for s, b in zip(past, sizes, strict=True) if s is not None and b > 0]
    rate = statistics.median(rates) if rates else None
    seconds = [
        s if s is not None else (rate * b if rate is not None and b > 0 else None)
        for s, b in zip(past, sizes, strict=True)
    ]
    floor = 1e-3 * max(sizes, default=0.0) or 1.0  # a job of no estimated size still counts
    if all(s is not None for s in seconds):
        relative = [max(s, 1e-3) for s in seconds]
    elif rate is not None:
        relative = [s if s is not None else rate * floor for s in seconds]
    else:  # no timing to scale the sizes by: the sizes alone, on one scale
        relative = [max(b, floor) for b in sizes]
    return seconds, relative


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

    def __init__(self, plan: Any, launched: Sequence[int], workers: int = 1) -> None:
        self.plan = plan
        self.pending = list(launched)
        _, self.weights = estimates(plan)
        self.total_work = sum(self.weights[i] for i in launched) or 1.0
        self.done_work = 0.0
        self.failed = 0
        self.computed = 0
        self.cached = sum(plan.cached)
        self.started = time.time()
        self.start_ns = time.time_ns()
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self._watch, daemon=True)
        self.bar: Any = None
        self.workers = workers

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
                    status = json.loads(path.read_text()).get("status")
                except (OSError, ValueError):
                    continue  # not written yet (a record is renamed into place whole)
                done.append(i)
                self.computed += 1
                self.failed += status != "ok"
                self.done_work += self.weights[i]
            if done:
                self.pending = [i for i in self.pending if i not in set(done)]
            self._show()

    def eta(self) -> float | None:
        """Seconds left: the work not done at the rate the finished work went (module doc)."""
        if self.done_work <= 0:
            return None
        elapsed = time.time() - self.started
        return elapsed * (self.total_work - self.done_work) / self.done_work

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
