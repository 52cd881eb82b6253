"""Aggregate a study's job records into a tidy CSV, mean ± sd curves and a summary JSON.

Usage:
    python pipelines/aggregate.py study=ntk_convergence

Reads `results/<study>/records/*.json` and writes, in `results/<study>/`:
  records.csv   one row per job (identity, status, metrics, seconds)
  curves.csv    one row per (group, width): mean, sd and count over seeds (for DVC plots),
                and any further tables the study defines (`widthlab.summaries.SUMMARIZERS`)
  summary.json  the headline numbers (DVC metrics), failed jobs listed by key and reason
The summary is also attached to the sweep's MLflow experiment as a run of its own.
"""

import csv
import io
from pathlib import Path

import hydra
from omegaconf import DictConfig

from widthlab.records import atomic_write_bytes, atomic_write_json, read_records
from widthlab.summaries import SUMMARIZERS, tidy_rows
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


@hydra.main(version_base="1.3", config_path="../conf", config_name="config")
@exit_on_config_error
def main(cfg: DictConfig) -> None:
    study = cfg.study.name if cfg.study else None
    if study not in SUMMARIZERS:
        raise ConfigError("study", study, f"one of {sorted(SUMMARIZERS)}")
    folder = Path(cfg.paths.results_dir) / study
    records = read_records(folder / "records")
    if not records:
        raise SystemExit(f"error: no records in {folder / 'records'}: run the study's sweep first")
    summarize, tables = SUMMARIZERS[study]
    summary = summarize(records)
    atomic_write_bytes(folder / "records.csv", to_csv(tidy_rows(records)))
    for name, table in tables.items():
        atomic_write_bytes(folder / name, to_csv(table(records)))
    atomic_write_json(folder / "summary.json", summary)
    with job_run(cfg, job_name=study, stage="aggregate", run_name="summary") as run:
        for name in ("summary.json", "records.csv", *tables):
            run.log_artifact(folder / name)
    print(f"{study}: {summary['n_jobs']} jobs, {summary['n_failed']} failed -> {folder}/")


if __name__ == "__main__":
    main()
