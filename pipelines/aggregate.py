"""Aggregate a study's job records into a tidy CSV, mean ± sd curves and a summary JSON.

Usage:
    python pipelines/aggregate.py study=ntk_convergence

Reads `results/<study>/records/*.json` — only the jobs listed by the latest sweep of each
study config (`records/sweeps/*.json`, written when a sweep starts), when there is such a
list — and writes, in `results/<study>/`:
  records.csv   one row per job (identity, status, metrics, seconds)
  curves.csv    one row per (group, width): mean, sd and count over seeds (for DVC plots),
                and any further tables the study defines (`widthlab.summaries.SUMMARIZERS`)
  summary.json  the headline numbers (DVC metrics), failed jobs listed by key and reason
  figures/      the study's figures (PNG and SVG, `widthlab.figures`)
The summary and figures are logged to a run of their own in the study's MLflow experiment
and attached to the newest parent run of each of the study's sweeps.
"""

import csv
import io
import json
from pathlib import Path

import hydra
from omegaconf import DictConfig

from widthlab import figures, figures_training
from widthlab.records import (
    atomic_write_bytes,
    atomic_write_json,
    current_job_keys,
    read_records,
)
from widthlab.schemas import validate_config
from widthlab.summaries import EXTRA_SUMMARIES, SUMMARIZERS, tidy_rows
from widthlab.tracking import job_run
from widthlab.validation import ConfigError, exit_on_config_error


def to_csv(rows: list[dict]) -> bytes:
    """Rows as CSV; list-valued cells (curves kept in a record) are left to their own tables."""
    rows = [{k: v for k, v in row.items() if not isinstance(v, list | dict)} for row in rows]
    fields: list[str] = []
    for row in rows:
        fields += [k for k in row if k not in fields]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue().encode()


def _rows(path: Path) -> list[dict]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def rf_figures(folder: Path) -> dict:
    curves = _rows(folder / "curves.csv")
    names = sorted({r["name"] for r in curves})
    out = {f"rf_double_descent_{name}": figures.rf_double_descent_figure(curves, name)
           for name in names}  # fmt: skip
    if "sphere_linear" in names:
        out["gd_min_norm"] = figures.gd_min_norm_figure(curves)
        gd = _rows(folder / "gd_curves.csv")
        if gd:
            out["gd_early_stopping"] = figures.gd_early_stopping_figure(gd, min_norm_rows=curves)
    return out


def ntk_figures(folder: Path) -> dict:
    summary = json.loads((folder / "summary.json").read_text())
    curves = _rows(folder / "curves.csv")
    out = {
        "kernel_convergence": figures.kernel_convergence_figure(curves, summary),
        "kernel_convergence_mc": figures.kernel_convergence_figure(
            curves, summary, kernels=("ntk", "nngp", "mc_nngp")
        ),
    }
    if (folder / "circle.csv").exists():
        out["ntk_circle"] = figures.ntk_circle_figure(_rows(folder / "circle.csv"))
    return out


def mlp_double_descent_figures(folder: Path) -> dict:
    summary = json.loads((folder / "summary.json").read_text())
    curves = _rows(folder / "curves.csv")
    return {"mlp_double_descent": figures_training.mlp_double_descent_figure(curves, summary)}


def lazy_training_figures(folder: Path) -> dict:
    summary = json.loads((folder / "summary.json").read_text())
    curves = _rows(folder / "curves.csv")
    return {"lazy_training": figures_training.lazy_training_figure(curves, summary)}


# study → its figures, from the files written above (name → matplotlib Figure).
FIGURES = {
    "double_descent_rf": rf_figures,
    "ntk_convergence": ntk_figures,
    "double_descent_mlp": mlp_double_descent_figures,
    "lazy_training": lazy_training_figures,
}


def latest_sweep_runs(cfg: DictConfig, study: str) -> list[str]:
    """The ids of the newest parent (sweep) run of each distinct sweep command of the study."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=str(cfg.tracking.uri))
    exp = client.get_experiment_by_name(study)
    if exp is None:
        return []
    runs = client.search_runs(
        [exp.experiment_id], "tags.`widthlab.stage` = 'sweep'", order_by=["start_time DESC"]
    )
    newest: dict[str, str] = {}
    for run in runs:
        newest.setdefault(run.data.tags.get("widthlab.overrides", ""), run.info.run_id)
    return list(newest.values())


@hydra.main(version_base="1.3", config_path="../conf", config_name="config")
@exit_on_config_error
def main(cfg: DictConfig) -> None:
    validate_config(cfg, "aggregate")  # every group it reads, before any work
    study = cfg.study.name if cfg.study else None
    if study not in SUMMARIZERS:
        raise ConfigError("study", study, f"one of {sorted(SUMMARIZERS)}")
    folder = Path(cfg.paths.results_dir) / study
    records = read_records(folder / "records")
    # Records kept from an earlier sweep over other settings (the records folder persists
    # across `dvc repro`, for resuming) are not part of the study now: leave them out, by name.
    current = current_job_keys(folder / "records")
    stale = sorted(r["key"] for r in records if current is not None and r["key"] not in current)
    records = [r for r in records if r["key"] not in set(stale)]
    if not records:
        raise SystemExit(f"error: no records in {folder / 'records'}: run the study's sweep first")
    summarize, tables = SUMMARIZERS[study]
    summary = summarize(records)
    summary["stale_records_ignored"] = stale
    # Jobs of the latest sweeps with no record (an interrupted sweep): named, not hidden.
    summary["missing_jobs"] = sorted((current or set()) - {r["key"] for r in records})
    for filename, (key, summarize_extra) in EXTRA_SUMMARIES.get(study, {}).items():
        if (folder / filename).exists():
            with open(folder / filename, newline="") as fh:
                summary[key] = summarize_extra(list(csv.DictReader(fh)))
    atomic_write_bytes(folder / "records.csv", to_csv(tidy_rows(records)))
    for name, table in tables.items():
        atomic_write_bytes(folder / name, to_csv(table(records)))
    atomic_write_json(folder / "summary.json", summary)
    figure_dir = folder / "figures"
    written = []
    for name, fig in FIGURES[study](folder).items():
        written += figures.save_figure(fig, figure_dir / name)
    with job_run(cfg, job_name=study, stage="aggregate", run_name="summary") as run:
        for name in ("summary.json", "records.csv", *tables):
            run.log_artifact(folder / name)
        for path in written:
            run.log_artifact(path, "figures")
    if cfg.tracking.enabled:
        # The sweeps' parent runs show the study's figures and summary beside their jobs.
        from mlflow import MlflowClient

        client = MlflowClient(tracking_uri=str(cfg.tracking.uri))
        for run_id in latest_sweep_runs(cfg, study):
            client.log_artifact(run_id, str(folder / "summary.json"))
            for path in written:
                client.log_artifact(run_id, str(path), "figures")
    ignored = f", {len(stale)} stale records ignored" if stale else ""
    if summary["missing_jobs"]:
        ignored += f", {len(summary['missing_jobs'])} jobs of the sweep missing"
    print(f"{study}: {summary['n_jobs']} jobs, {summary['n_failed']} failed{ignored} -> {folder}/")


if __name__ == "__main__":
    main()
