"""What every benchmark shares: alternating timings, medians with their spread, the machine
and its load, and a verdict that refuses to call a goal met on a busy machine.

A goal is a ratio measured in one run against a baseline timed in the same run: baseline
and candidate alternate (B, C, B, C, …) after one warm-up each, so a change of load hits
both; the ratio is taken per round and summarized by its median and its range. The verdict
is

* MET / NOT MET when the whole range of the per-round ratios lies on one side of the goal;
* UNDECIDED (spread) when the range straddles the goal;
* UNDECIDED (busy) when another process competed for the cores: the 1-minute load average
  was above 1 when the benchmark started (before it did any work of its own), or other
  processes (and the hypervisor's steal time) used more than a quarter of a core on average
  while the rounds ran. The load average during the runs is printed but is not the test:
  it counts the benchmark's own threads, so a two-thread benchmark alone makes it 2.

`report(name, lines)` prints the lines and writes them, under a header with the date and the
machine, to `benchmarks/results/<name>.txt`.
"""

from __future__ import annotations

import datetime
import os
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
BUSY_LOAD = 1.0  # at the benchmark's start
BUSY_OTHERS = 0.25  # cores used by other processes during the rounds


def load_average() -> float:
    return os.getloadavg()[0]


# Before the benchmark has done any work; its worker subprocesses inherit the parent's.
STARTUP_LOAD = float(os.environ.setdefault("BENCH_STARTUP_LOAD", f"{load_average():.2f}"))


def cpu_seconds() -> tuple[float, float]:
    """(busy CPU seconds of the whole machine, steal included; CPU seconds of this process
    and of its children that have finished)."""
    import psutil

    t = psutil.cpu_times()
    idle = {"idle", "iowait", "guest", "guest_nice"}  # guest time is already in user
    machine = sum(getattr(t, f) for f in t._fields if f not in idle)
    own = psutil.Process().cpu_times()
    return machine, own.user + own.system + own.children_user + own.children_system


def machine() -> str:
    """One line: the date, the CPU, its cores, the software and what can skew the timings."""
    cpu = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import numpy
    import torch

    return (
        f"{datetime.date.today().isoformat()}, {cpu}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}, torch {torch.__version__} "
        f"({torch.get_num_threads()} threads), numpy {numpy.__version__}, "
        f"OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE', '-')}"
    )


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


@dataclass
class Comparison:
    """Per-round times of a baseline and a candidate, and the load around them."""

    baseline: list[float]
    candidate: list[float]
    load_before: float
    load_after: float
    others_cores: float = 0.0  # other processes' mean CPU use during the rounds, in cores
    startup_load: float = STARTUP_LOAD

    @property
    def ratios(self) -> list[float]:
        """Candidate time over baseline time, round by round."""
        return [c / b for b, c in zip(self.baseline, self.candidate, strict=True)]

    @property
    def speedups(self) -> list[float]:
        """Baseline time over candidate time, round by round."""
        return [b / c for b, c in zip(self.baseline, self.candidate, strict=True)]

    def line(self, what: str, values: list[float], unit: str = "×") -> str:
        return (f"{what}: median {statistics.median(values):.3f}{unit}, range "
                f"[{min(values):.3f}, {max(values):.3f}] over {len(values)} rounds")  # fmt: skip

    @property
    def busy(self) -> bool:
        return self.startup_load > BUSY_LOAD or self.others_cores > BUSY_OTHERS

    def load_line(self) -> str:
        return (f"load average {self.startup_load:.2f} at the start, {self.load_before:.2f} → "
                f"{self.load_after:.2f} around the rounds; other processes used "
                f"{self.others_cores:.2f} cores")  # fmt: skip


def alternate(baseline: Callable[[], object], candidate: Callable[[], object],
              rounds: int = 5, warmup: bool = True, pairs: int = 1) -> Comparison:  # fmt: skip
    """Time `baseline` and `candidate` alternately, `rounds` times each (after a warm-up).

    With `pairs` > 1 a round is `pairs` alternations (B, C, B, C, …) and its two times are the
    sums over them: a round's ratio is then a ratio of sums, whose run-to-run noise (where it
    is independent from run to run, as a shared core's speed is over seconds) shrinks like
    1/√pairs, while the verdict still takes the whole range of the rounds."""
    load_before = load_average()
    if warmup:
        baseline()
        candidate()
    b, c = [], []
    start, (machine0, own0) = time.perf_counter(), cpu_seconds()
    for _ in range(rounds):
        b.append(0.0)
        c.append(0.0)
        for _ in range(pairs):
            b[-1] += timed(baseline)
            c[-1] += timed(candidate)
    wall, (machine1, own1) = time.perf_counter() - start, cpu_seconds()
    others = max(0.0, (machine1 - machine0) - (own1 - own0)) / wall
    return Comparison(b, c, load_before, load_average(), others)


def verdict(values: list[float], goal: float, at_least: bool, busy: bool) -> str:
    """MET / NOT MET / UNDECIDED for per-round values against a goal (module docstring)."""
    if busy:
        return "UNDECIDED (busy: another process competed for the cores; rerun on a quiet machine)"
    lo, hi = min(values), max(values)
    if at_least:
        if lo >= goal:
            return "MET"
        if hi < goal:
            return "NOT MET"
    else:
        if hi <= goal:
            return "MET"
        if lo > goal:
            return "NOT MET"
    return f"UNDECIDED (spread: the range [{lo:.3f}, {hi:.3f}] straddles the goal {goal:g})"


def report(name: str, lines: list[str], write: bool = True, echo: bool = True) -> None:
    """Print `lines` (unless `echo` is False) and write them under a header to
    benchmarks/results/<name>.txt."""
    header = [f"# {name}", f"# {machine()}", f"# load average at the end: {load_average():.2f}"]
    text = "\n".join([*header, *lines]) + "\n"
    if echo:
        print(text, end="")
    if write:
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / f"{name}.txt").write_text(text)
