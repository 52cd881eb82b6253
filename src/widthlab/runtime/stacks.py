"""Jobs trained together: a sweep's networks as stacks, each network still its own job.

A study's job kind can train several networks as one computation (`Job.measure_batch`,
`widthlab.runtime.batched_training`): jobs of a sweep that differ only in `Job.stack_keys`
(their width and seed) share everything else they train with, so they can share a stack.
Then

1. the sweeper (`widthlab_sweeper`) groups the sweep's jobs that are not cached into stacks
   (`plan_stacks`) and launches one Hydra job per stack instead of one per network, through
   whatever launcher the sweep uses: the stack's first job's overrides, with the stack named
   in the environment (`STACK_ENV`: `<stacks file>#<index>`, set by Hydra's
   `hydra.job.env_set` wherever the job runs, a cluster included); the stacks file
   (`records/.stacks/<sweep digest>.json`) lists each stack's jobs by their overrides;
2. the task (`run_task`) composes every job of its stack from its own config (each job's
   swept values applied as Hydra applies an override), checks each, and runs them
   (`run_batch`): every job still has its lock, its cache look-up, its MLflow child run, its
   record and its failure, exactly as alone; only the measurement is shared.

What a record keeps of the settings it read (`reads`) is the union of the keys the stack's
jobs read, each with the job's own value: every job of a stack has the same value for any
key but its stack keys, so a record is reused exactly when nothing its stack computed with
changed for it. A record's `timing.seconds` is its share of the stack's seconds (equal
shares); `timing.stack` says how long the stack took and how many jobs it held.

Stacks (`plan_stacks`) hold the seeds of one width (no padding, which would change every
network's arithmetic). In float64 a network ends where it ends alone to rounding
(tests/test_batched_training.py, ≤ 1e-10); in float32 its last bits can depend on how many
networks shared its stack (torch's batched product and its backward take other paths for
other batch sizes), as they depend on the thread count: a rerun of the same sweep on the same
machine forms the same stacks and gives the same bits, and a record says how many jobs its
stack held (`timing.stack`); across stacks, as across machines, float32 results agree as
statistics, not bytes. A stack pays where a step is
mostly fixed cost (the ~60 operator launches of a forward, backward and update, ~1 ms on a
laptop core), not where it is arithmetic: measured on the AMD EPYC laptop core (float32, one
thread), 5 seeds of width 13 on 1000 points step 1.8× faster stacked than alone, of width 27
1.6×; two-layer networks on minibatches of 100, width 16 3.0×, 47 2.2×, 104 1.7×, 135 1.3×;
but 3 of width 187 on 1000 points 0.77× and of width 1333 0.71× (torch's batched product is
slower than one product per network at those shapes). So a network whose step costs more
than `STEP_COST` (rows × width × depth, rows its batch's points) trains alone, and the
others are stacked by width, at most `MAX_STACK` networks whose memory estimates together fit
the share of memory one of the launcher's workers has.
"""

from __future__ import annotations

import json
import logging
import os
import time
import traceback
from collections.abc import Mapping, Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

STACK_ENV = "WIDTHLAB_STACK"
STACKS_FOLDER = ".stacks"
MAX_STACK = 32
STEP_COST = 60_000  # rows × width × depth of a network's step, above which it trains alone


def stack_group(resolved: Mapping[str, Any], keys: Sequence[str]) -> str:
    """The settings jobs must share to share a stack: everything but `keys`."""
    from widthlab.runtime.jobs import kept_config

    config = json.loads(json.dumps(kept_config(resolved), default=str))
    for key in keys:
        node, *path = key.split(".")
        if not path:
            config.pop(node, None)
            continue
        parent = config.get(node) or {}
        for part in path[:-1]:
            parent = parent.get(part) or {}
        parent.pop(path[-1], None)
    return json.dumps(config, sort_keys=True)


def plan_stacks(plan: Any, launched: Sequence[int], workers: int) -> list[list[int]] | None:
    """The stacks of the launched jobs (module docstring), or None where the sweep's job
    kind trains no stack."""
    from widthlab.runtime.preflight import available_memory

    job = plan.study.job(plan.plans[0].kind)
    if job.measure_batch is None or not launched:
        return None
    groups: dict[str, list[int]] = {}
    for i in launched:
        groups.setdefault(stack_group(plan.resolved[i], job.stack_keys), []).append(i)
    limit = plan.resolved[0].get("max_memory_gb")
    budget = (limit * 2**30 if limit else available_memory()) / max(1, workers)
    stacks = []
    for members in groups.values():
        members.sort(key=lambda i: -width_of(plan.resolved[i]))
        current: list[int] = []
        memory = 0.0
        for i in members:
            need = float(job.peak_memory(plan.resolved[i]))
            if step_cost(plan.resolved[i]) > STEP_COST:
                stacks.append([i])  # arithmetic-bound: alone is faster
                continue
            fits = (
                current
                and len(current) < MAX_STACK
                and width_of(plan.resolved[current[0]]) == width_of(plan.resolved[i])
                and memory + need <= budget
            )
            if current and not fits:
                stacks.append(current)
                current, memory = [], 0.0
            current.append(i)
            memory += need
        if current:
            stacks.append(current)
    return stacks


def width_of(resolved: Mapping[str, Any]) -> int:
    """A resolved job's `model.width` (0 when it has none)."""
    return int((resolved.get("model") or {}).get("width") or 0)


def step_cost(resolved: Mapping[str, Any]) -> int:
    """rows × width × depth of one training step (module docstring): rows the minibatch,
    else the training set (the study's `n_train` where it sets one, else the data's)."""
    model, train = resolved.get("model") or {}, resolved.get("train") or {}
    rows = train.get("batch_size") or (resolved.get("study") or {}).get("n_train")
    rows = rows or (resolved.get("data") or {}).get("n_train") or 1
    return int(rows) * width_of(resolved) * int(model.get("depth") or 1)


def write_stacks(plan: Any, stacks: list[list[int]]) -> Path:
    """The stacks file (module docstring); returns its path."""
    from widthlab.runtime.records import atomic_write_json

    first = plan.resolved[0]
    folder = Path(first["paths"]["results_dir"]) / first["study"]["name"] / "records"
    path = (folder / STACKS_FOLDER / f"{plan.digest}.json").resolve()
    atomic_write_json(path, {"stacks": [[plan.overrides[i] for i in s] for s in stacks]})
    return path


def stack_overrides(plan: Any, stacks: list[list[int]], path: Path) -> list[list[str]]:
    """One Hydra job per stack: its first job's overrides, the stack named in the
    environment (module docstring)."""
    return [
        [*plan.overrides[s[0]], f"++hydra.job.env_set.{STACK_ENV}='{path}#{n}'"]
        for n, s in enumerate(stacks)
    ]


def run_task(cfg: Any) -> Any:
    """A sweep's task: the stack the environment names, else the one job `cfg` describes."""
    from widthlab.runtime.entry import worker_signals
    from widthlab.runtime.jobs import run_job

    worker_signals()  # a parallel launcher's worker: SIGTERM ends its runs KILLED
    named = os.environ.get(STACK_ENV)
    return run_stack(cfg, named) if named else run_job(cfg)


def run_stack(cfg: Any, named: str) -> list[dict[str, Any]]:
    """Compose, check and run every job of the stack `named` (module docstring)."""
    import copy

    from hydra.core.override_parser.overrides_parser import OverridesParser
    from omegaconf import OmegaConf

    from widthlab.runtime.schemas import validate_config
    from widthlab.runtime.study import load_study

    path, _, index = named.rpartition("#")
    members = json.loads(Path(path).read_text())["stacks"][int(index)]
    study = load_study(OmegaConf.select(cfg, "study._target_"))
    kind = OmegaConf.select(cfg, "study.job")
    job = study.job(kind)
    parser = OverridesParser.create()
    resolved = []
    for lines in members:
        # The stack's jobs differ from the one composed only in their stack keys.
        job_cfg = copy.deepcopy(cfg)
        for override in parser.parse_overrides(lines):
            if override.key_or_group in job.stack_keys:
                OmegaConf.update(job_cfg, override.key_or_group, override.value(), merge=False)
        resolved.append(validate_config(job_cfg, job.groups, study))
    return run_batch(study, resolved)


def run_batch(study: Any, resolved: list[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Lock, look up, measure together, record and track apart (module docstring)."""
    from filelock import FileLock

    from widthlab.runtime.jobs import cached_record, plan_job

    plans = [plan_job(r, study) for r in resolved]
    records: list[dict[str, Any] | None] = [None] * len(plans)
    with ExitStack() as locks:
        for plan in sorted(plans, key=lambda p: p.key):  # one order: no two stacks deadlock
            lock = plan.path.parent.parent / ".locks" / plan.kind / f"{plan.key}.lock"
            lock.parent.mkdir(parents=True, exist_ok=True)
            locks.enter_context(FileLock(lock))
        todo = []
        for n, (r, plan) in enumerate(zip(resolved, plans, strict=True)):
            cached = cached_record(plan) if r["resume"] else None
            if cached is not None:
                records[n] = cached
            else:
                todo.append(n)
        if todo:
            computed = _measure([resolved[n] for n in todo], [plans[n] for n in todo], study)
            for n, record in zip(todo, computed, strict=True):
                records[n] = record
    return [r for r in records if r is not None]


def _measure(resolved: list[Mapping[str, Any]], plans: list[Any], study: Any) -> list[dict]:
    from widthlab.runtime import jobs
    from widthlab.runtime.active_runs import ACTIVE_RUNS
    from widthlab.runtime.devices import fixed_threads
    from widthlab.runtime.errors import STOPPING_ERRORS, storage_error
    from widthlab.runtime.reads import lookup, recorded_reads_of
    from widthlab.runtime.records import atomic_write_json
    from widthlab.runtime.tracking import metric_points
    from widthlab.runtime.usage import keep_worker_caches, reset_peak_rss, rss_mb, timing

    job = study.job(plans[0].kind)
    records = [jobs.new_record(study, job, p, r) for p, r in zip(plans, resolved, strict=True)]
    keep_worker_caches()
    reset_peak_rss()
    baseline_mb = round(rss_mb(), 1)
    start = time.perf_counter()
    with ExitStack() as runs, fixed_threads(int(resolved[0]["threads"])):
        opened = [
            runs.enter_context(jobs.open_run(study, job, p, r, rec))
            for p, r, rec in zip(plans, resolved, records, strict=True)
        ]
        measured = [jobs.measured_config(r) for r in resolved]
        token = ACTIVE_RUNS.set(opened)
        try:
            with recorded_reads_of(measured) as reads:
                outcomes = list(job.measure_batch(measured))
        except STOPPING_ERRORS:
            raise
        except Exception as exc:  # the stack failed as a whole: every job of it failed
            full = storage_error(exc)
            if full is not None:
                raise full from None  # a full disk: every later job would fail too
            log.error("stack of %d jobs failed:\n%s", len(plans), traceback.format_exc())
            outcomes = [exc] * len(plans)
        finally:
            ACTIVE_RUNS.reset(token)
        seconds = time.perf_counter() - start
        union = sorted({k for r in reads for k in r})
        share = timing(start, baseline_mb)
        share.update(seconds=seconds / len(plans), stack={"seconds": seconds, "jobs": len(plans)})
        for record, plan, run, outcome in zip(records, plans, opened, outcomes, strict=True):
            record["timing"] = dict(share)
            if not isinstance(outcome, BaseException) and not outcome:
                outcome = RuntimeError("the measurement returned no metrics")
            if isinstance(outcome, BaseException):
                record.update(status="failed", reason=f"{type(outcome).__name__}: {outcome}")
                record["metrics"] = {}
                run.mark_failed(record["reason"])
                continue
            own = {k: lookup(plan.config, k) for k in union}
            record.update(status="ok", reads=jobs.job_reads(own, plan), metrics=dict(outcome))
            run.log_points([*metric_points(outcome), ("seconds", record["timing"]["seconds"], 0)])
    for record, plan, run in zip(records, plans, opened, strict=True):
        run.note(record)
        atomic_write_json(plan.path, record)
    return records
