"""The errors that stop an entry point, and how they reach the user.

Each prints as one line on stderr, then the process exits with status 2:

    error: data.n_train=-5 is not allowed: expected an integer ≥ 1
    error: results/lazy_training/records/main/seed=0.json: not valid JSON (line 1, column 3)
    error: results/toy/summary.json: no space left on device: free some space and rerun ...

`ConfigError` is a config value outside what is allowed (key, value, what is allowed),
`DataFileError` a data file that is missing, corrupt or made with other settings, `BadFile`
any other file an entry point cannot use (a record, a manifest, a path that is not a folder,
a tracking store), `StorageError` a file that cannot be written (a full disk, a read-only
one). Anything else that stops an entry point (Hydra's own errors, an OSError, a tracking
store's error, a bug) is one line too (`one_line`), never a traceback: `WIDTHLAB_TRACEBACK=1`
shows the traceback where one is wanted. `Terminated` is SIGTERM, raised in the main thread
like Ctrl-C's `KeyboardInterrupt` (`runtime.entry`), so that what a job opened is closed.
"""

from __future__ import annotations

import errno
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


class StorageError(BadFile):
    """A file that cannot be written: the disk is full, read-only, or over its quota."""


class Terminated(BaseException):
    """SIGTERM arrived (`runtime.entry`): unwinds the stack like Ctrl-C, not an `Exception`,
    so no job records it as its own failure."""


# The signal that asked this process to stop (`runtime.entry`). Python runs a signal handler
# between two bytecodes of the main thread, which can be inside a garbage-collection
# callback, where the exception it raises is printed and dropped: every job start checks
# this again (`exit_on_error`), and so does the entry point at its end.
STOPPING: dict[str, int] = {}


def raise_if_stopping() -> None:
    """Raise `Terminated` again if SIGTERM arrived and its first exception was dropped."""
    import signal

    if "signal" in STOPPING:
        raise Terminated(f"stopped by signal {signal.Signals(STOPPING['signal']).name}")


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
STOPPING_SIGNALS = (KeyboardInterrupt, Terminated)
TRACEBACK_ENV = "WIDTHLAB_TRACEBACK"
# errno of a write that no rerun of the job can fix: stop the sweep, do not record a failure.
STORAGE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS}
_FULL_STORE = ("database or disk is full", "disk i/o error")


def _chain(exc: BaseException):
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        yield exc
        exc = exc.__cause__ or exc.__context__


def storage_error(exc: BaseException, path: str | os.PathLike[str] | None = None):
    """`exc` as a `StorageError` when it (or what caused it) is a full or read-only disk, a
    full SQLite store included; else None. `path`: the file, where `exc` does not name it."""
    for link in _chain(exc):
        if isinstance(link, StorageError):
            return link
        if isinstance(link, OSError) and link.errno in STORAGE_ERRNOS:
            where = link.filename or path or "a file"
            return StorageError(where, storage_advice(link.errno))
        if any(text in str(link).lower() for text in _FULL_STORE):
            return StorageError(path or "the tracking store", storage_advice(errno.ENOSPC))
    return None


def storage_advice(code: int) -> str:
    """What a full or read-only disk means for the user, in one clause."""
    what = {errno.EROFS: "read-only file system", errno.EDQUOT: "disk quota exceeded"}.get(
        code, "no space left on device"
    )
    return (
        f"{what}: free some space (or choose another folder) and rerun the same command; "
        "every file it wrote is whole, the old one or the new one"
    )


def one_line(exc: BaseException) -> str:
    """What the user reads of an error that stops an entry point: one line, no traceback."""
    from widthlab.runtime.hydra_errors import hydra_message

    storage = storage_error(exc)
    if storage is not None:
        text = str(storage)
    elif isinstance(exc, STOPPING_ERRORS):
        text = str(exc)
    elif (hydra := hydra_message(exc)) is not None:
        text = hydra
    elif isinstance(exc, OSError):
        where = f"{exc.filename}: " if exc.filename else ""
        text = f"{where}{exc.strerror or exc}"
    elif type(exc).__module__.split(".")[0] in ("mlflow", "sqlalchemy"):
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        text = f"the tracking store failed: {first}"
    else:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        text = f"{type(exc).__name__}: {first} (set {TRACEBACK_ENV}=1 to see where)"
    return " ".join(text.split())


def report_error(exc: BaseException) -> None:
    """Print `exc` as its one line on stderr (or its traceback under WIDTHLAB_TRACEBACK=1)."""
    if os.environ.get(TRACEBACK_ENV):
        import traceback

        traceback.print_exception(exc, file=sys.stderr)
    print(f"error: {one_line(exc)}", file=sys.stderr, flush=True)


def as_config_error(exc: InvalidValue, prefix: str) -> ConfigError:
    """A library argument error, reported under its config key (`n_train` → `data.n_train`)."""
    return ConfigError(f"{prefix}.{exc.key}" if prefix else exc.key, exc.value, exc.allowed)


def exit_on_error(task: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap a Hydra task (or callback) so that any error it raises prints its one line
    (`one_line`) and exits with 2.

    `SystemExit` passes through Hydra's error reporting and its callbacks' (which turn any
    other exception into a warning), so the user sees one line instead of a traceback, and a
    multirun stops at once instead of running every other job with the same mistake. A job's
    own failure never reaches here: the job runner records it (`runtime.jobs`). Ctrl-C and
    SIGTERM pass through to the entry point (`runtime.entry`).
    """

    @functools.wraps(task)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        try:
            raise_if_stopping()  # no job starts once SIGTERM arrived
            return task(*args, **kwargs)
        except (SystemExit, *STOPPING_SIGNALS):
            raise
        except BaseException as exc:  # one line, whatever it is
            report_error(exc)
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
