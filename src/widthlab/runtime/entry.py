"""How every entry point under `pipelines/` starts and stops.

`entry_point(app)` turns a `@hydra.main` app into the script's `main()`, which

- reads the command line first: an override outside Hydra's grammar is one line (a value
  with letters outside ASCII, a path such as `paths.results_dir=résultats`, is quoted for
  Hydra rather than refused), and so is a key given twice (`model.depth=1,2 model.depth=3`:
  Hydra would silently keep the last);
- lets every error reach the user as one line with exit status 2 (`errors.one_line`):
  Hydra's own (an unknown config name, a YAML file it cannot read), a full disk, a broken
  tracking store, a bug. Hydra re-raises them under `HYDRA_FULL_ERROR`, set while the app
  runs, instead of printing its own many-line report with status 1;
- stops cleanly on a signal: SIGTERM raises `errors.Terminated` in the main thread, Ctrl-C
  `KeyboardInterrupt`, and either unwinds the stack, so that a job's MLflow run ends KILLED
  and no record is half-written, then prints one line (status 143 or 130). What the process
  opened for a whole sweep (its parent run) is closed by the callbacks registered with
  `on_stop`;
- under DVC (`dvc repro` sets DVC_STAGE), stops itself when the `dvc` process that started
  it is gone: DVC does not pass SIGTERM on to its stage, which would run on as an orphan.

`worker_signals()` is the same for a process that runs jobs for a parallel launcher: SIGTERM
ends its job's run KILLED; Ctrl-C is left to the launching process, which stops the pool.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from widthlab.runtime.errors import (
    STOPPING,
    ConfigError,
    Terminated,
    raise_if_stopping,
    report_error,
)

MAIN_PID_ENV = "WIDTHLAB_MAIN_PID"  # the entry point's process: jobs elsewhere are workers'
SHELLS = ("sh", "bash", "dash", "zsh", "fish", "ksh")
DVC_WATCH_S = 0.5

_STOP_CALLBACKS: list[Callable[[], None]] = []


def on_stop(callback: Callable[[], None]) -> None:
    """Run `callback` when the entry point ends, whatever ends it (a sweep's parent run is
    closed there when the sweep did not reach its end)."""
    _STOP_CALLBACKS.append(callback)


def _run_stop_callbacks() -> None:
    while _STOP_CALLBACKS:
        callback = _STOP_CALLBACKS.pop()
        try:
            callback()
        except Exception as exc:  # closing what it can; the first error stands
            print(f"note: could not close an MLflow run: {exc}".splitlines()[0], file=sys.stderr)


def _raise_terminated(signum: int, frame: Any) -> None:
    STOPPING["signal"] = signum
    raise Terminated(f"stopped by signal {signal.Signals(signum).name}")


def prepared_arguments(argv: list[str]) -> list[str]:
    """`argv` with each override checked against Hydra's grammar (non-ASCII values quoted)
    and no key twice; a problem raises `ConfigError`-like one-line errors."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import OverrideParseException

    from widthlab.runtime.hydra_errors import GRAMMAR

    parser = OverridesParser.create()
    out, seen = [], {}
    for arg in argv:
        if arg.startswith("-") or "=" not in arg:
            out.append(arg)
            continue
        try:
            override = parser.parse_overrides([arg])[0]
        except OverrideParseException:
            key, _, value = arg.partition("=")
            quoted = f"{key}='{value}'"
            if value.isascii() or "'" in value:
                raise ArgumentError(
                    f"the override `{arg}` is not in Hydra's override grammar ({GRAMMAR})"
                ) from None
            try:
                override = parser.parse_overrides([quoted])[0]
            except OverrideParseException:
                raise ArgumentError(
                    f"the override `{arg}` is not in Hydra's override grammar ({GRAMMAR})"
                ) from None
            arg = quoted
        key = override.key_or_group
        if key in seen:
            raise ArgumentError(
                f"{key} is given twice on the command line (`{seen[key]}` and `{arg}`): give "
                "each key once (a sweep's values as one comma-separated list)"
            )
        seen[key] = arg
        out.append(arg)
    return out


class ArgumentError(ConfigError):
    """A command line Hydra would misread: its one line is the message itself."""

    def __init__(self, message: str) -> None:
        Exception.__init__(self, message)
        self.key, self.value, self.allowed = "", None, message

    def __str__(self) -> str:
        return str(self.allowed)


@contextmanager
def guarded() -> Iterator[None]:
    """Run an entry point's body (module docstring); ends by `SystemExit`: 2 on an error,
    130 on Ctrl-C, 143 on SIGTERM, or the body's own."""
    import logging

    saved_env = {k: os.environ.get(k) for k in ("HYDRA_FULL_ERROR", MAIN_PID_ENV)}
    os.environ["HYDRA_FULL_ERROR"] = "1"
    # A log file on a full disk: its handler would print a traceback per line; the error
    # that stops the entry point (the same full disk) is the one line the user reads.
    saved_raise, logging.raiseExceptions = logging.raiseExceptions, False
    os.environ.setdefault(MAIN_PID_ENV, str(os.getpid()))
    main_thread = threading.current_thread() is threading.main_thread()
    saved_term = signal.signal(signal.SIGTERM, _raise_terminated) if main_thread else None
    watcher = watch_dvc() if main_thread else None
    code: int | str | None = 0
    STOPPING.clear()
    try:
        try:
            yield
            raise_if_stopping()  # a SIGTERM whose exception was dropped still stops
        except SystemExit as exc:
            code = exc.code
            if "signal" in STOPPING and code in (0, None):
                code = 143
                print(_stopped("stopped by SIGTERM"), file=sys.stderr, flush=True)
        except KeyboardInterrupt:
            code = 130
            print(_stopped("interrupted (Ctrl-C)"), file=sys.stderr, flush=True)
        except Terminated:
            code = 143
            print(_stopped("stopped by SIGTERM"), file=sys.stderr, flush=True)
        except BaseException as exc:  # one line, whatever it is
            code = 2
            report_error(exc)
        finally:
            _run_stop_callbacks()
    finally:
        logging.raiseExceptions = saved_raise
        if watcher is not None:
            watcher.set()
        if saved_term is not None:
            signal.signal(signal.SIGTERM, saved_term)
        for key, value in saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    if code:
        raise SystemExit(code)


def _stopped(how: str) -> str:
    return (
        f"error: {how}: the jobs that were running end KILLED in MLflow and left no record; "
        "rerun the same command to continue where it stopped"
    )


def entry_point(app: Callable[[], Any]) -> Callable[[], None]:
    """The `main()` of a `pipelines/` script around its Hydra `app` (module docstring)."""

    def main() -> None:
        from widthlab.runtime.errors import refuse_multirun_cfg

        with guarded():
            refuse_multirun_cfg(sys.argv[1:])
            sys.argv[1:] = prepared_arguments(sys.argv[1:])
            app()

    main.__doc__ = app.__doc__
    return main


def worker_signals() -> None:
    """In a process running a parallel launcher's jobs (not the entry point's own): SIGTERM
    raises `Terminated` (the job's run ends KILLED), Ctrl-C is ignored (the launching process
    gets it too, and stops the pool with one line instead of one traceback per worker)."""
    main = os.environ.get(MAIN_PID_ENV)
    if not main or main == str(os.getpid()):
        return
    if threading.current_thread() is not threading.main_thread():
        return
    if signal.getsignal(signal.SIGTERM) is not _raise_terminated:
        signal.signal(signal.SIGTERM, _raise_terminated)
        signal.signal(signal.SIGINT, signal.SIG_IGN)


def _proc_stat(pid: int) -> tuple[str, str, int] | None:
    """(command name, state, parent pid) of a process from /proc, or None when it is gone."""
    try:
        text = open(f"/proc/{pid}/stat").read()
    except OSError:
        return None
    name = text[text.index("(") + 1 : text.rindex(")")]
    state, ppid = text[text.rindex(")") + 2 :].split()[:2]
    return name, state, int(ppid)


def watch_dvc(poll_s: float = DVC_WATCH_S) -> threading.Event | None:
    """Under `dvc repro` (DVC_STAGE set, Linux), a thread that sends this process SIGTERM
    once the DVC process that started it has ended: the parent, or the parent's parent when
    the parent is the shell DVC runs the command in. Returns the event that stops it."""
    if "DVC_STAGE" not in os.environ or not os.path.isdir("/proc/self"):
        return None
    me, parent = os.getpid(), os.getppid()
    watched = [parent]
    stat = _proc_stat(parent)
    if stat is not None and stat[0] in SHELLS and stat[2] > 1:
        watched.append(stat[2])
    stop = threading.Event()

    def gone(pid: int) -> bool:
        stat = _proc_stat(pid)
        return stat is None or stat[1] in ("Z", "X")

    def loop() -> None:
        while not stop.wait(poll_s):
            if os.getppid() != parent or any(gone(pid) for pid in watched):
                os.kill(me, signal.SIGTERM)
                return

    threading.Thread(target=loop, name="widthlab-dvc-watch", daemon=True).start()
    return stop
