"""What a job used, measured by the process that ran it: its seconds, its memory beside the
process's baseline, and where it computed; and the worker settings that keep those honest
in a reused worker process (`runtime.jobs` calls these around every job)."""

from __future__ import annotations

import resource
import sys
import time
from pathlib import Path

from widthlab.runtime.devices import reset_gpu_counts, where_computed


def keep_worker_caches() -> None:
    """Stop a joblib (loky) worker from being restarted for what our jobs cache on purpose.

    loky restarts a worker whose resident memory grew by 300 MB since its first task (its
    leak guard, the module constant `_MAX_MEMORY_LEAK_SIZE`; no public setting). Our jobs
    keep bounded per-process caches between jobs (`ntk_convergence`'s last network, shared by
    its relu and erf jobs; the structured NTK's buffers; data files), each at most a job's
    peak memory, which the pre-flight budgets per worker. Read as a leak, they restarted the
    workers 6 times in `ntk_convergence`'s widths 2048–8192 (110 s against 83 s for those 90
    jobs). In a loky worker (`_CURRENT_DEPTH` ≥ 1) the limit becomes the machine's memory."""
    module = sys.modules.get("joblib.externals.loky.process_executor")
    if getattr(module, "_CURRENT_DEPTH", 0) < 1 or not hasattr(module, "_MAX_MEMORY_LEAK_SIZE"):
        return
    import psutil

    module._MAX_MEMORY_LEAK_SIZE = max(module._MAX_MEMORY_LEAK_SIZE, psutil.virtual_memory().total)


def rss_mb() -> float:
    """The process's resident memory now, MiB (the baseline a job's estimate adds to)."""
    import psutil

    return psutil.Process().memory_info().rss / 2**20


def reset_peak_rss() -> None:
    """Start the process's peak resident set (Linux: `/proc/self/clear_refs` "5"; elsewhere
    nothing) and the GPU's counts afresh, so that a job's recorded peak is its own in a
    process that ran other jobs before (a reused joblib worker)."""
    reset_gpu_counts()
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass


def peak_rss_mb() -> float:
    """The process's peak resident set, MiB, since it started or since `reset_peak_rss`.

    Linux: VmHWM of `/proc/self/status`, the peak of this process's own memory. Not
    `getrusage`'s ru_maxrss, which survives `exec`: a Python started from a process of 1.5 GB
    (a test runner, a DVC worker) reports at least 1.5 GB before it has done anything.
    Elsewhere ru_maxrss is the fallback.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    scale = 1024 * 1024 if sys.platform == "darwin" else 1024  # bytes on macOS, KiB on Linux
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / scale


def timing(start: float, baseline_mb: float) -> dict[str, float]:
    """What the run measured of itself (it varies between runs, unlike the rest of the
    record): seconds, the process's resident memory when the job started, its peak since
    then (`peak_rss_mb`, reset when the job started) and where it computed (`devices`)."""
    return {
        "seconds": time.perf_counter() - start,
        "baseline_rss_mb": baseline_mb,
        "process_peak_rss_mb": round(peak_rss_mb(), 1),
        **where_computed(),
    }
