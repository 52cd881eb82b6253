"""Where a job computes: its device and its number of CPU threads.

`threads` (default 1) fixes the intra-op threads of torch and of the BLAS libraries for the
whole job. Results then do not depend on the machine's core count or on OMP_NUM_THREADS:
float32 training amplifies the last-bit differences of a multithreaded matmul into different
networks. A sweep uses more cores by running jobs side by side (a parallel Hydra launcher).

A job's record says where it computed (`where_computed`), observed rather than read from
`device`: "auto" is a GPU on one machine and the CPU on another, and the numpy/scipy
studies (random features, max-margin) compute on the CPU whatever `device` says.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch

from widthlab.runtime.errors import ConfigError


def resolve_device(name: str) -> torch.device:
    """`device` from the config: "auto" is the first CUDA GPU when there is one, else the CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):
        raise ConfigError("device", name, "auto, cpu, cuda or cuda:<index>") from None
    if device.type not in ("cpu", "cuda"):
        raise ConfigError("device", name, "auto, cpu, cuda or cuda:<index>")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device", name, "auto or cpu (no CUDA device is available here)")
    return device


@contextlib.contextmanager
def fixed_threads(threads: int) -> Iterator[None]:
    """torch and BLAS (numpy/scipy through threadpoolctl) limited to `threads` inside."""
    from threadpoolctl import threadpool_limits

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with threadpool_limits(limits=threads):
            yield
    finally:
        torch.set_num_threads(before)


def reset_gpu_counts() -> None:
    """Start every GPU's allocation count and peak afresh, for `where_computed`. Nothing to
    do in a process that has not used CUDA (it is not initialized here)."""
    if torch.cuda.is_initialized():
        for i in range(torch.cuda.device_count()):
            torch.cuda.reset_accumulated_memory_stats(i)
            torch.cuda.reset_peak_memory_stats(i)


def where_computed() -> dict[str, Any]:
    """Where the job since `reset_gpu_counts` computed: {"device": "cpu"}, or, when it
    allocated CUDA memory, {"device": "cuda:<i> (<name>)", "process_gpu_peak_mb": that GPU's
    allocator peak since the reset, MiB, what earlier jobs of the process still hold (their
    caches) included, like `process_peak_rss_mb`}. Observed through each GPU's count of
    allocations since the reset (a job computes on one device), so a GPU tensor cached by an
    earlier job does not count."""
    if not torch.cuda.is_initialized():
        return {"device": "cpu"}
    for i in range(torch.cuda.device_count()):
        if torch.cuda.memory_stats(i).get("allocation.all.allocated", 0) > 0:
            return {
                "device": f"cuda:{i} ({torch.cuda.get_device_name(i)})",
                "process_gpu_peak_mb": round(torch.cuda.max_memory_allocated(i) / 2**20, 1),
            }
    return {"device": "cpu"}
