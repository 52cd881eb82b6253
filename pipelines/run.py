"""Run one job of any study, or a whole sweep with -m.

Usage:
    python pipelines/run.py -m study=ntk_convergence                 # a study's sweep
    python pipelines/run.py -m study=double_descent_rf/digits        # another of its sweeps
    python pipelines/run.py study=lazy_training model.width=512      # one job
    python pipelines/run.py --help                                   # studies, profiles

The study is the class `study._target_` names; its job is `study.job`. Every job is checked
before any work (one line naming the key, the value and what is allowed), recorded in
`results/<study>/records/` and logged to MLflow (a parent run per sweep).
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
    from widthlab.runtime.stacks import run_task  # after tune_collector()

    run_task(cfg)


# Every error one line with status 2, SIGTERM and Ctrl-C one line (widthlab.runtime.entry).
main = entry_point(app)

if __name__ == "__main__":
    tune_collector()  # widthlab.runtime.collector
    main()
