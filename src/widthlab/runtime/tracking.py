"""MLflow tracking: one experiment per study, a parent run per sweep, a child run per job.

Every call goes through an explicit `MlflowClient(uri)` (no global MLflow state), with the
URI from the config (`tracking.uri`: an embedded SQLite file by default, a server by
setting it or `MLFLOW_TRACKING_URI`); `tracking.enabled: false` makes everything a no-op.

- Experiments carry the study's question as their description (`mlflow.note.content`).
- A sweep's parent run (`runtime.sweep`) is named `<study config> · <profile>`, holds the
  resolved sweep definition as params and, after `aggregate`, the study's headline metrics,
  summary and figures. A rerun whose every job is cached reuses the newest parent of the
  same sweep instead of adding an empty one.
- A job's child run has MLflow's own context tags (source, git commit, user), a short name
  that leads with values (`w=1024 d=2 s=3`), the config groups the job reads as dotted
  params (nothing it does not use), its data file as a dataset input (`log_inputs`, digest =
  the file's sha256 cut to the 36 characters the store keeps), its metrics, and ends
  FINISHED, or FAILED with the reason.
"""

from __future__ import annotations

import logging
import os
import time
import uuid
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

PARENT_ENV = "WIDTHLAB_MLFLOW_PARENT_RUN_ID"
DIGEST_LENGTH = 36  # MLflow's datasets.digest column


def client(uri: str):
    """The MlflowClient of store `uri`; a SQLite store that does not exist yet is created
    first, whole or not at all (`create_sqlite_store`)."""
    from mlflow import MlflowClient

    if uri.startswith("sqlite:///") and not Path(uri.removeprefix("sqlite:///")).exists():
        with store_creation_lock(uri):
            create_sqlite_store(Path(uri.removeprefix("sqlite:///")))
    return MlflowClient(tracking_uri=uri)


@contextmanager
def store_creation_lock(uri: str) -> Iterator[None]:
    """An exclusive lock (`filelock`) beside a SQLite store being created: processes creating
    a new SQLite file at once race on its tables (later writers are fine); others need none."""
    if not uri.startswith("sqlite:///"):
        yield
        return
    from filelock import FileLock

    lock_path = Path(uri.removeprefix("sqlite:///") + ".lock")
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(lock_path, is_singleton=True):  # reentrant: `client` may take it again
        yield


def create_sqlite_store(path: Path) -> None:
    """Make a new SQLite tracking store at `path` (if none is there) as a whole: MLflow creates its
    tables and runs its ~50 migrations in a file beside it, which is renamed into place only when
    complete. Made in place, a store interrupted halfway (a full disk, a kill) stays half-migrated,
    and every later command fails on it ("duplicate column name") even after space is freed. A
    failure leaves no file; a full disk is a `StorageError`. Call under `store_creation_lock`."""
    import sqlite3

    from widthlab.runtime.errors import storage_error

    if path.exists():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    # A new name every try: MLflow keeps an engine per URI for the life of the process.
    partial = path.with_name(f".{path.name}.creating-{uuid.uuid4().hex}")
    try:
        from mlflow.store.tracking import DEFAULT_LOCAL_FILE_AND_ARTIFACT_PATH
        from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

        # MLflow's own default artifact root, as `MlflowClient(uri)` would make the store.
        store = SqlAlchemyStore(f"sqlite:///{partial}", DEFAULT_LOCAL_FILE_AND_ARTIFACT_PATH)
        store.engine.dispose()
        with sqlite3.connect(partial) as con:  # the store on disk before it is named
            con.execute("PRAGMA wal_checkpoint")
        with open(partial, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(partial, path)
    except BaseException as exc:
        for leftover in partial.parent.glob(partial.name + "*"):
            leftover.unlink(missing_ok=True)
        full = storage_error(exc, path)
        if full is not None:
            raise full from None
        raise


def ensure_experiment(uri: str, name: str, description: str = "") -> str:
    """The id of experiment `name` (created with the store if need be), described. Creating
    one also retires MLflow's `Default` experiment while it is empty: widthlab logs every run
    into its study's experiment, and an empty first entry only misleads a reviewer."""
    with store_creation_lock(uri):
        mlflow_client = client(uri)
        exp = mlflow_client.get_experiment_by_name(name)
        if exp is None:
            tags = {"mlflow.note.content": description} if description else None
            created = mlflow_client.create_experiment(name, tags=tags)
            retire_empty_default(mlflow_client)
            return created
        if description and exp.tags.get("mlflow.note.content") != description:
            mlflow_client.set_experiment_tag(exp.experiment_id, "mlflow.note.content", description)
        return exp.experiment_id


def retire_empty_default(mlflow_client: Any) -> None:
    """Delete (soft: MLflow keeps it as deleted) the `Default` experiment if it holds no run."""
    default = mlflow_client.get_experiment_by_name("Default")
    if default is None or default.lifecycle_stage != "active":
        return
    if not mlflow_client.search_runs([default.experiment_id], max_results=1, run_view_type=3):
        mlflow_client.delete_experiment(default.experiment_id)


def flatten(cfg: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested mapping → {"a.b.c": value}; lists are kept as one value."""
    flat: dict[str, Any] = {}
    for key, value in cfg.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten(value, prefix=f"{name}."))
        else:
            flat[name] = value
    return flat


def metric_name(key: str) -> str:
    """A key with the characters MLflow does not allow in metric names (`=`) replaced."""
    return "".join(c if c.isalnum() or c in "_-. /:" else "_" for c in str(key))


def numeric_metrics(metrics: Mapping[str, Any], prefix: str = "") -> dict[str, float]:
    """The finite numbers of a (nested) mapping, named `outer/inner`."""
    import math

    out: dict[str, float] = {}
    for key, value in metrics.items():
        name = prefix + metric_name(key)
        if isinstance(value, Mapping):
            out.update(numeric_metrics(value, prefix=f"{name}/"))
        elif isinstance(value, int | float) and not isinstance(value, bool):
            if math.isfinite(value):
                out[name] = float(value)
    return out


def metric_points(metrics: Mapping[str, Any]) -> list[tuple[str, float, int]]:
    """(name, value, step) of every finite number of a job's metrics, as MLflow charts can
    draw them against width: a condition solved within the job whose key holds an integer
    `width=<w>` (`width=60,ridge=0`) gives its numbers at step w, named by the rest of its key
    (`ridge_0/test_mse`); every other number is at step 0, named as by `numeric_metrics`."""
    points: list[tuple[str, float, int]] = []
    for key, value in metrics.items():
        parts = str(key).split(",")
        widths = [p.split("=", 1)[1] for p in parts if p.startswith("width=")]
        if isinstance(value, Mapping) and len(widths) == 1 and widths[0].isdigit():
            rest = ",".join(p for p in parts if not p.startswith("width="))
            prefix = f"{metric_name(rest)}/" if rest else ""
            for name, number in numeric_metrics(value, prefix=prefix).items():
                points.append((name, number, int(widths[0])))
        else:
            for name, number in numeric_metrics({key: value}).items():
                points.append((name, number, 0))
    return points


def short_run_name(identity: Mapping[str, Any]) -> str:
    """`w=1024 d=2 a=relu s=3`: each job key's value behind a short name (the first letter
    of its last component, more letters where two would clash); text values stand alone."""
    lasts = [k.rsplit(".", 1)[-1] for k in identity]
    names = []
    for last in lasts:
        size = 1
        while sum(other[:size] == last[:size] for other in lasts) > 1 and size < len(last):
            size += 1
        names.append(last[:size])
    parts = []
    for name, value in zip(names, identity.values(), strict=True):
        parts.append(str(value) if isinstance(value, str) else f"{name}={value}")
    return " ".join(parts)


def _retry_unique_race(call, attempts: int = 3) -> None:
    """Run `call`, again when it lost a race to create the same row.

    The store adds a data set to an experiment by looking it up and inserting it when
    missing; two jobs of a parallel sweep that log the same new file at once both miss it,
    and the second insert fails on the unique (experiment, name, digest) key. By then the
    row exists, so the same call simply links it to the run.
    """
    from mlflow.exceptions import MlflowException

    for attempt in range(attempts):
        try:
            call()
            return
        except MlflowException as error:
            text = str(error).lower()
            lost_race = "unique" in text or "duplicate" in text
            if not lost_race or attempt == attempts - 1:
                raise
            log.info("dataset input lost a race to another job; retrying (%s)", text[:120])
            time.sleep(0.05 * (attempt + 1))


def unreachable(error: BaseException) -> bool:
    """Whether `error` says the tracking store could not be reached (a server down or failing
    past MLflow's own retries, a database refusing connections), not that a call was wrong."""
    from requests.exceptions import RequestException
    from sqlalchemy.exc import OperationalError

    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, RequestException | OperationalError):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


class JobRun:
    """One job's MLflow run (a no-op when tracking is off).

    `seconds` adds up the time its tracking calls took (MLflow's retries included). A store
    that stays unreachable through MLflow's own retries (7 over about four minutes, for a
    server) does not stop the job: the run stops logging, `lost` says why, the job's record
    keeps its result with that reason (`runtime.jobs`), and a rerun recomputes the job to log
    it. Any other error of a call is raised as before."""

    def __init__(self, mlflow_client: Any | None, run_id: str | None) -> None:
        self.client, self.run_id = mlflow_client, run_id
        self.failed = False
        self.seconds = 0.0
        self.lost: str | None = None

    @property
    def active(self) -> bool:
        """Whether the job has an MLflow run to log into."""
        return self.run_id is not None and self.lost is None

    @contextmanager
    def call(self) -> Iterator[None]:
        """Time a tracking call, and turn an unreachable store into `lost` (class docstring)."""
        start = time.perf_counter()
        try:
            yield
        except Exception as error:
            if not unreachable(error):
                raise
            self.lose(error)
        finally:
            self.seconds += time.perf_counter() - start

    def note(self, record: dict[str, Any]) -> None:
        """Write into a job's record what its tracking took: `timing.tracking_seconds`, and
        `tracking_lost` (why) where the store could not be reached."""
        if self.client is None:
            return  # tracking off
        record.setdefault("timing", {})["tracking_seconds"] = round(self.seconds, 3)
        if self.lost:
            record["tracking_lost"] = self.lost

    def lose(self, error: BaseException) -> None:
        """Stop logging to this run: its store is unreachable (`error`'s line kept in `lost`)."""
        self.lost = f"{type(error).__name__}: {error}".splitlines()[0][:500]
        log.warning(
            "MLflow run %s stops logging, the store is unreachable: %s", self.run_id, self.lost
        )

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        """Log `metrics` at `step`, stamped now (`log_points`)."""
        now = int(time.time() * 1000)
        self.log_points([(k, v, step or 0) for k, v in metrics.items()], now)

    def log_points(self, points: list[tuple[str, float, int]], stamp: int | None = None) -> None:
        """Metric points (name, value, step), in batches of MLflow's 1000."""
        if not self.active or not points:
            return
        from mlflow.entities import Metric

        now = stamp or int(time.time() * 1000)
        self.log_metric_batch([Metric(k, float(v), now, int(step)) for k, v, step in points])

    def log_metric_batch(self, metrics: list[Any]) -> None:
        """MLflow `Metric`s as they are (their own steps and times), 1000 a call."""
        for i in range(0, len(metrics), 1000):
            with self.call():
                if self.active:
                    self.client.log_batch(self.run_id, metrics=metrics[i : i + 1000])

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        """Set the run's tags, values as strings."""
        if self.active:
            from mlflow.entities import RunTag

            batch = [RunTag(k, str(v)) for k, v in tags.items()]
            with self.call():
                self.client.log_batch(self.run_id, tags=batch)

    def log_params(self, params: Mapping[str, Any]) -> None:
        """Log `params` in batches, values as strings."""
        if not self.active:
            return
        from mlflow.entities import Param

        batch = [Param(k, str(v)[:6000]) for k, v in sorted(params.items())]
        for i in range(0, len(batch), 100):
            with self.call():
                if self.active:
                    self.client.log_batch(self.run_id, params=batch[i : i + 100])

    def log_dataset(self, name: str, path: str | os.PathLike[str], sha256: str) -> None:
        """The data file as the run's training input: name, digest (sha256), local source."""
        if not self.active:
            return
        from mlflow.data.dataset_source_registry import resolve_dataset_source
        from mlflow.data.meta_dataset import MetaDataset
        from mlflow.entities import DatasetInput, InputTag

        with warnings.catch_warnings():
            # MLflow registers its local-file source twice, then warns of an ambiguous path.
            warnings.filterwarnings("ignore", "The specified dataset source can be interpreted")
            source = resolve_dataset_source(str(Path(path).resolve()))
        dataset = MetaDataset(source, name=name, digest=sha256[:DIGEST_LENGTH])
        context = InputTag(key="mlflow.data.context", value="training")
        inputs = [DatasetInput(dataset._to_mlflow_entity(), tags=[context])]
        with self.call():
            _retry_unique_race(lambda: self.client.log_inputs(self.run_id, inputs))

    def mark_failed(self, reason: str) -> None:
        """End the run as FAILED now, with the reason as a tag."""
        if self.active:
            self.set_tags({"widthlab.failure": reason[:5000]})
            with self.call():
                if self.active:
                    self.client.set_terminated(self.run_id, status="FAILED")
            self.failed = True

    def log_artifact(self, path: str | os.PathLike[str], artifact_path: str | None = None) -> None:
        """Copy the file at `path` into the run's artifacts, under `artifact_path`."""
        if self.active:
            with self.call():
                self.client.log_artifact(self.run_id, str(path), artifact_path)


def close_stale_runs(
    uri: str, experiment_id: str, key: str, status: str, reason: str | None = None
) -> int:
    """End the RUNNING runs of job `key` (left by a killed process) with `status`:
    FINISHED when its record shows it finished, KILLED when it is about to be recomputed or
    its cluster job ended without a result (`reason`, then its `widthlab.failure` tag)."""
    mlflow_client = client(uri)
    stale = mlflow_client.search_runs(
        [experiment_id], f"tags.`widthlab.key` = '{key}' and attributes.status = 'RUNNING'"
    )
    for run in stale:
        if reason:
            mlflow_client.set_tag(run.info.run_id, "widthlab.failure", reason[:5000])
        mlflow_client.set_terminated(run.info.run_id, status=status)
    return len(stale)


@contextmanager
def job_run(
    tracking: Mapping[str, Any],
    experiment: str,
    description: str,
    run_name: str,
    tags: Mapping[str, str],
    params: Mapping[str, Any],
) -> Iterator[JobRun]:
    """A child run of the current sweep (a top-level run outside a multirun) for one job.

    The run ends FINISHED, or FAILED if the body raised (the exception propagates) or called
    `mark_failed`. `tags` must hold `widthlab.key`, the job's full key.
    """
    if not tracking.get("enabled"):
        yield JobRun(None, None)
        return
    from mlflow.tracking.context.registry import resolve_tags
    from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID, MLFLOW_RUN_NAME

    uri = str(tracking["uri"])
    job = JobRun(client(uri), None)
    with job.call():
        experiment_id = ensure_experiment(uri, experiment, description)
        all_tags = resolve_tags({**tags, MLFLOW_RUN_NAME: run_name})
        parent = os.environ.get(PARENT_ENV)
        if parent:
            all_tags[MLFLOW_PARENT_RUN_ID] = parent
        # A killed job's run was left RUNNING: its rerun ends it KILLED, no ghost beside it.
        close_stale_runs(uri, experiment_id, tags["widthlab.key"], "KILLED")
        run = job.client.create_run(experiment_id, tags=all_tags, run_name=run_name)
        job.run_id = run.info.run_id
    job.log_params(params)
    try:
        yield job
    except BaseException as exc:
        from widthlab.runtime.errors import STOPPING_SIGNALS

        if isinstance(exc, (*STOPPING_SIGNALS, SystemExit)):  # stopped, not failed
            job.set_tags({"widthlab.stopped": type(exc).__name__})
            if job.active:
                with job.call():
                    job.client.set_terminated(job.run_id, status="KILLED")
        elif not job.failed:
            job.mark_failed(f"{type(exc).__name__}: {exc}")
        raise
    if job.active and not job.failed:
        with job.call():
            job.client.set_terminated(job.run_id, status="FINISHED")
