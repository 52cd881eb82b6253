"""The MLflow runs of the jobs being measured, for measurements that log more than their
final metrics (training curves): one job's run, or a stack's runs (`runtime.stacks`)."""

from __future__ import annotations

from contextvars import ContextVar
from typing import Any

ACTIVE_RUN: ContextVar[Any | None] = ContextVar("widthlab_active_run", default=None)
# The runs of the jobs of a stack being measured together, in the stack's order.
ACTIVE_RUNS: ContextVar[list[Any] | None] = ContextVar("widthlab_active_runs", default=None)


def active_run() -> Any | None:
    """The `tracking.JobRun` of the job being measured (None outside a job)."""
    return ACTIVE_RUN.get()


def active_runs(count: int) -> list[Any | None]:
    """The runs of the `count` jobs being measured together: a stack's, or the one job's run
    (None where there is none)."""
    runs = ACTIVE_RUNS.get()
    if runs is not None and len(runs) == count:
        return list(runs)
    return [active_run()] * count if count == 1 else [None] * count
