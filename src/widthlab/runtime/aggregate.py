"""Aggregate a study: records in; summary, metrics, tables, plots and figures out.

`aggregate(cfg)` (`pipelines/aggregate.py study=<name>`) reads `results/<name>/records/` —
only the jobs listed by the latest sweep of each study config (`records/sweeps/*.json`) —
and writes, in `results/<name>/`:

  summary.json   the study's headline numbers with their uncertainty and verdicts, the
                 settings they were judged by, the failed jobs (key and reason), stale
                 records left out and jobs of the sweep with no record, the figure captions,
                 and `metrics`: a dozen flat headline numbers, the sweep runs' MLflow metrics
  metrics.json   DVC's metric, a few numbers a study so that `dvc exp show` stays narrow:
                 `differs` (verdicts that differ from the theory or the paper, after the
                 study's families are judged), `inconclusive` (rules too weak at this seed
                 count to say), `failed_jobs`, the study's `headline_metric`, and
                 `checks_failed` when a computation's own check failed
  tables/        records.csv, one row per job and condition (identity, status, metrics),
                 and the study's own tables (curves.csv, ...): mean, sd, SE and count over
                 seeds
  plots.csv      the DVC plot's long table (panel, series, x, y)
  figures/*.png  the figures, and svg/*.svg the same as vector graphics

Every float is rounded to `stats.STORED_DIGITS` significant digits before anything is written
and before the figures are drawn, and round-off is stored as a bound (`stats.round_decade`,
`stats.round_off_floor`: ≤ 1e-10 is stored as 1e-10): a study's `residual_keys`, its
`round_off_keys` and every spread over seeds (`_std`, `_se`) where tiny. So a rerun on
another machine, whose last bits differ, writes the same files. Everything is computed in
memory first, then written as a set (`atomic.atomic_write_set`, the files an older run
made and this one does not removed with it): a failure while writing (a full disk, a kill)
leaves the old set whole. A bad record or manifest stops it with one line
naming the file; a study whose every job failed gets its summary (listing the failures) but
no figures. The metrics, curves, summary and figures are then logged to the parent run of
each sweep it summarized (`log_to_parents`).
"""

from __future__ import annotations

import csv
import io
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from widthlab.plotting import figure_bytes
from widthlab.runtime.errors import BadFile
from widthlab.runtime.records import (
    atomic_write_set,
    current_job_keys,
    json_text,
    read_records,
)
from widthlab.runtime.schemas import validate_config
from widthlab.runtime.study import Results, Study, load_study, plotted
from widthlab.runtime.tables import job_counts, tidy_rows
from widthlab.stats import round_tree

log = logging.getLogger(__name__)
SPREAD_SUFFIXES = ("_std", "_se")  # the tables' spreads over seeds (`runtime.tables`)


def to_csv(rows: list[Mapping[str, Any]]) -> bytes:
    """Rows as CSV; list- and dict-valued cells are left to tables of their own."""
    rows = [{k: v for k, v in row.items() if not isinstance(v, list | dict)} for row in rows]
    fields: list[str] = []
    for row in rows:
        fields += [k for k in row if k not in fields]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue().encode()


def current_records(folder: Path) -> tuple[dict[str, list[dict]], list[str], list[str]]:
    """(records per job kind of the latest sweeps, stale keys left out, missing keys)."""
    records = read_records(folder / "records")
    current = current_job_keys(folder / "records")
    stale, missing, kept = [], [], {}
    for kind in sorted(set(records) | set(current)):
        mine = records.get(kind, [])
        keys = current.get(kind)
        if kind in current and keys is not None:
            stale += [f"{kind}/{r['key']}" for r in mine if r["key"] not in keys]
            mine = [r for r in mine if r["key"] in keys]
            missing += [f"{kind}/{k}" for k in sorted(keys - {r["key"] for r in mine})]
        if mine:
            kept[kind] = mine
    return kept, sorted(stale), missing


def plot_rows(study: Study, tables: Mapping[str, list[dict]]) -> list[dict[str, Any]]:
    """The long table of the DVC plot: one row per (panel, series, x) with its y."""
    rows = []
    for spec in study.plots:
        for row in tables.get(spec.table, []):
            x = row.get(spec.x)
            for metric in spec.y:
                y = plotted(row, metric)
                if x is None or y is None:
                    continue
                label = " ".join(f"{c}={row.get(c)}" for c in spec.series)
                rows.append(
                    {"panel": spec.panel, "series": f"{metric} {label}".strip(), "x": x, "y": y}
                )
    return rows


def summarize(study: Study, records: dict[str, list[dict]], settings: Mapping[str, Any]) -> Results:
    """The study's results, with the generic counts in front and every float rounded."""
    every = [r for kind in sorted(records) for r in records[kind]]
    results = study.summarize(records, settings)
    counts = job_counts(every)
    summary = {**counts, **results.summary}
    metrics = {"jobs": counts["n_jobs"], "failed_jobs": counts["n_failed"], **results.metrics}
    # Timings stay in the records and MLflow: they differ on every run.
    rows = [{k: v for k, v in row.items() if k != "seconds"} for row in tidy_rows(every)]
    tables = {"records.csv": rows, **results.tables}

    def residual(key: str) -> bool:
        return any(part in key for part in study.residual_keys)

    def round_off(key: str) -> bool:  # a spread over seeds of a shared value is 0 but rounding
        return key.endswith(SPREAD_SUFFIXES) or any(p in key for p in study.round_off_keys)

    def rounded(obj: Any) -> Any:
        return round_tree(obj, residual=residual, round_off=round_off)

    return Results(
        summary=rounded(summary),
        tables={k: rounded(v) for k, v in tables.items()},
        metrics=rounded(metrics),
    )


def aggregate(cfg: DictConfig) -> dict[str, Any]:
    """Aggregate the study `cfg.study` names (module docstring); returns its summary."""
    from widthlab.runtime.atomic import finish_interrupted_swaps
    from widthlab.runtime.preflight import check_tracking, check_writable_dir

    study = load_study(OmegaConf.select(cfg, "study._target_", default=None))
    resolved = validate_config(cfg, (), study)
    name = resolved["study"]["name"]
    folder = Path(resolved["paths"]["results_dir"]) / name
    check_writable_dir("paths.results_dir", str(folder))
    check_tracking(resolved["tracking"])  # before anything is written: it logs at the end
    finish_interrupted_swaps(folder)  # a set a killed aggregate left half-renamed
    records, stale, missing = current_records(folder)
    if not records:
        raise BadFile(
            folder / "records",
            "no job records: run the study's sweeps first "
            f"(`python pipelines/stage.py study={name}`)",
        )
    results = summarize(study, records, resolved["study"])
    ok = any(r["status"] == "ok" for kind in records.values() for r in kind)
    figures = study.figures(results) if ok else {}
    results.summary.update(
        metrics=results.metrics,
        study=name,
        study_class=resolved["study"]["_target_"],
        profile=(resolved.get("profile") or {}).get("name"),
        settings=round_tree(resolved["study"]),
        stale_records_ignored=stale,
        missing_jobs=missing,
        figures={k: v.caption for k, v in figures.items()},
    )
    # Everything in memory first; then each file atomically.
    outputs: dict[Path, bytes] = {
        folder / "summary.json": json_text(results.summary).encode(),
        folder / "metrics.json": json_text(dvc_metrics(study, results.metrics)).encode(),
        folder / "plots.csv": to_csv(plot_rows(study, results.tables)),
    }
    for table, rows in results.tables.items():
        outputs[folder / "tables" / table] = to_csv(rows)
    for fig_name, spec in figures.items():
        files = figure_bytes(spec.figure)
        outputs[folder / "figures" / f"{fig_name}.png"] = files["png"]
        outputs[folder / "svg" / f"{fig_name}.svg"] = files["svg"]
    # Figures and tables of an older run that this one does not make leave with the old set.
    dropped = [
        old
        for sub, suffix in (("figures", ".png"), ("svg", ".svg"), ("tables", ".csv"))
        for old in (folder / sub).glob(f"*{suffix}")
        if old not in outputs
    ]
    atomic_write_set(outputs, remove=dropped)  # the new set whole, or the old one
    if resolved["tracking"]["enabled"]:
        pngs = [p for p in outputs if p.suffix == ".png"]
        log_to_parents(study, resolved, folder, results, records, pngs)
    failed = results.summary["n_failed"]
    notes = f", {len(stale)} stale records ignored" if stale else ""
    notes += f", {len(missing)} jobs of the sweep missing" if missing else ""
    print(f"{name}: {results.summary['n_jobs']} jobs, {failed} failed{notes} -> {folder}/")
    return results.summary


def dvc_metrics(study: Study, metrics: Mapping[str, Any]) -> dict[str, Any]:
    """DVC's metric of a study (module docstring) from its full flat metrics."""
    out: dict[str, Any] = {"failed_jobs": metrics.get("failed_jobs")}
    if isinstance(metrics.get("comparisons"), int) and isinstance(metrics.get("agree"), int):
        out["differs"] = metrics["comparisons"] - metrics["agree"]
    if isinstance(metrics.get("inconclusive"), int):
        out["inconclusive"] = metrics["inconclusive"]
    if metrics.get("checks_failed"):
        out["checks_failed"] = metrics["checks_failed"]
    if study.headline_metric is not None:
        out[study.headline_metric] = metrics.get(study.headline_metric)
    return out


def log_to_parents(
    study: Study,
    resolved: Mapping[str, Any],
    folder: Path,
    results: Results,
    records: Mapping[str, list[dict]],
    figures: list[Path],
) -> list[str]:
    """The study's numbers on the parent run of each sweep it summarized (found by the digest
    its manifest holds, `runtime.parents`): the headline metrics, the summary and the
    figures, and on one of them (the study's main sweep's, else the first) the curves the
    report draws against width (`curve_points`); then the experiment's review view.
    Returns the parents' ids; a sweep whose parent is not in the store is named."""
    from widthlab.runtime.jobs import experiment_name
    from widthlab.runtime.parents import VIEW_TAG, parent_for_digest, review_view
    from widthlab.runtime.records import sweep_digests
    from widthlab.runtime.tracking import JobRun, client, numeric_metrics

    uri = str(resolved["tracking"]["uri"])
    mlflow_client = client(uri)
    experiment = mlflow_client.get_experiment_by_name(experiment_name(resolved))
    if experiment is None:
        return []
    ids, main = {}, resolved["study"]["name"]
    for sweep, digest in sweep_digests(folder / "records").items():
        run_id = parent_for_digest(mlflow_client, experiment.experiment_id, digest)
        if run_id is None:
            print(f"note: no MLflow parent run of sweep {sweep} (digest {digest}) in {uri}")
            continue
        ids[sweep] = run_id
        run = JobRun(mlflow_client, run_id)
        run.log_metrics(numeric_metrics(results.metrics))
        run.log_artifact(folder / "summary.json")
        run.log_artifact(folder / "metrics.json")
        for path in figures:
            run.log_artifact(path, "figures")
    curves = curve_points(study, results.tables)
    if ids:
        JobRun(mlflow_client, ids.get(main) or next(iter(ids.values()))).log_points(curves)
    params = sorted({k for kind in records.values() for r in kind for k in r["job"]})
    metrics = [study.job(kind).headline for kind in sorted(records) if kind in study.jobs]
    metrics = [m for m in dict.fromkeys([*metrics, study.headline_metric]) if m]
    names = list(dict.fromkeys(name for name, _, _ in curves))
    view = review_view(f"{main}: review", params, metrics, names)
    mlflow_client.set_experiment_tag(experiment.experiment_id, VIEW_TAG, view)
    return list(ids.values())


def curve_points(study: Study, tables: Mapping[str, list[dict]]) -> list[tuple[str, float, int]]:
    """The curves of the study's DVC plot as MLflow metric histories, so that MLflow's own
    charts draw them: for every panel, metric and series, `curve/<metric>[/<series>]` (the
    mean over seeds) at step = the row's width (its `width` column, or an integer x), or at
    step = round(1000·x), named `curve/<metric> vs 1000 <x>…`, where x is a ratio (d/n)."""
    from widthlab.runtime.tracking import metric_name

    points, seen = [], set()
    for spec in study.plots:
        for row in tables.get(spec.table, []):
            x = row.get(spec.x)
            if not isinstance(x, int | float):
                continue
            if isinstance(row.get("width"), int):
                step, axis = row["width"], ""
            elif float(x).is_integer():
                step, axis = int(x), ""
            else:
                step, axis = round(1000 * float(x)), f" vs 1000 {spec.x}"
            series = ",".join(f"{c}={row.get(c)}" for c in spec.series)
            for metric in spec.y:
                value = plotted(row, metric)
                name = metric_name(f"curve/{metric}{axis}" + (f"/{series}" if series else ""))
                if isinstance(value, int | float) and (name, step) not in seen:
                    seen.add((name, step))
                    points.append((name, float(value), step))
    return points
