"""Aggregate a study's job records into its summary, metrics, tables, plots and figures.

Usage:
    python pipelines/aggregate.py study=ntk_convergence

Writes `results/<study>/{summary,metrics}.json`, its CSV tables and `figures/`, and logs the
headline metrics and figures to the study's sweep runs (`widthlab.runtime.aggregate`).
"""

from pathlib import Path

import hydra
from omegaconf import DictConfig

from widthlab.runtime.collector import tune_collector
from widthlab.runtime.entry import entry_point
from widthlab.runtime.errors import exit_on_error

# An absolute config path: the app also runs when this file is imported (tests, stage.py).
CONF = str(Path(__file__).resolve().parents[1] / "conf")


@hydra.main(version_base="1.3", config_path=CONF, config_name="config")
@exit_on_error
def app(cfg: DictConfig) -> None:
    from widthlab.runtime.aggregate import aggregate  # after tune_collector()

    aggregate(cfg)


# Every error one line with status 2, SIGTERM and Ctrl-C one line (widthlab.runtime.entry).
main = entry_point(app)

if __name__ == "__main__":
    tune_collector()  # widthlab.runtime.collector
    main()
