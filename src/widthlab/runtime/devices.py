"""Where a job computes: its device and its number of CPU threads.

`threads` (default 1) fixes the intra-op threads of torch and of the BLAS libraries for the
whole job. Results then do not depend on the machine's core count or on OMP_NUM_THREADS:
float32 training amplifies the last-bit differences of a multithreaded matmul into different
networks. A sweep uses more cores by running jobs side by side (a parallel Hydra launcher).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

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
