"""The errors that stop an entry point before any work, and how they reach the user.

Each prints as one line on stderr, then the process exits with status 2:

    error: data.n_train=-5 is not allowed: expected an integer ≥ 1
    error: results/lazy_training/records/main/seed=0.json: not valid JSON (line 1, column 3)

`ConfigError` is a config value outside what is allowed (key, value, what is allowed),
`DataFileError` a data file that is missing, corrupt or made with other settings, `BadFile`
any other file an entry point cannot use (a record, a manifest, a path that is not a folder).
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from typing import Any

from widthlab.checks import InvalidValue


class ConfigError(InvalidValue):
    """A configuration value outside what is allowed (the key is the full config key)."""


class DataFileError(RuntimeError):
    """A data file is missing, does not match its checksums, or was made with other settings."""


class BadFile(RuntimeError):
    """A file (or path) an entry point reads or writes is unusable: `path: what is wrong`."""

    def __init__(self, path: str | os.PathLike[str], problem: str) -> None:
        self.path, self.problem = str(path), problem
        super().__init__(f"{path}: {problem}")


class ResourceError(RuntimeError):
    """A job that cannot fit in the machine (memory), named with its estimate."""


class JobLost(RuntimeError):
    """A cluster job that ended without its result (cancelled, killed at its time limit, its
    node lost): `hydra_plugins.widthlab_launcher.slurm` returns one per such job, and the
    sweeper reports it in one line. `index` is the job's place in the launch."""

    def __init__(
        self, job_id: str, state: str, index: int, overrides: list[str], log: str, hint: str
    ) -> None:
        self.job_id, self.state, self.index, self.overrides = job_id, state, index, overrides
        shown = " ".join(o for o in overrides if not o.startswith("hydra."))
        super().__init__(
            f"SLURM job {job_id} ({shown}) ended {state} without its result"
            + (f": {hint}" if hint else "")
            + f"; its log: {log}"
        )


STOPPING_ERRORS = (ConfigError, DataFileError, BadFile, ResourceError)


def as_config_error(exc: InvalidValue, prefix: str) -> ConfigError:
    """A library argument error, reported under its config key (`n_train` → `data.n_train`)."""
    return ConfigError(f"{prefix}.{exc.key}" if prefix else exc.key, exc.value, exc.allowed)


def exit_on_error(task: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap a Hydra task so a `STOPPING_ERRORS` error prints its one line and exits with 2.

    `SystemExit` passes through Hydra's error reporting, so the user sees one line instead of
    a traceback, and a multirun stops at once instead of running every other job with the
    same mistake.
    """

    @functools.wraps(task)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        try:
            return task(*args, **kwargs)
        except STOPPING_ERRORS as exc:
            print(f"error: {exc}", file=sys.stderr)
            raise SystemExit(2) from None

    return wrapped


def refuse_multirun_cfg(argv: list[str]) -> None:
    """Hydra refuses `-m` with `--cfg`/`--info` by a traceback; say in one line what lists a
    sweep's jobs instead, and exit with 2."""
    multirun = any(a in ("-m", "--multirun") for a in argv)
    shown = [a for a in argv if a in ("-c", "--cfg", "-i", "--info") or a.startswith("--cfg=")]
    if multirun and shown:
        print(
            f"error: {shown[0]} shows one job's config and cannot be combined with -m: to "
            "list a sweep's jobs (keys, cached or not, estimated seconds and memory) without "
            "running them, add dry_run=true",
            file=sys.stderr,
        )
        raise SystemExit(2)
