"""Resolve every data set's and study's settings for the active profile, for DVC.

Usage:
    python pipelines/params.py            # writes results/params/{data,studies}/<name>.yaml

DVC tracks these resolved files as the stages' params, so `dvc params diff` shows values
(not `${profile…}` interpolations) and a stage reruns exactly when its own resolved
settings change: editing another profile changes nothing here (`widthlab.runtime.params`).
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
    from widthlab.runtime.params import write_params  # after tune_collector()

    write_params(cfg)


# Every error one line with status 2, SIGTERM and Ctrl-C one line (widthlab.runtime.entry).
main = entry_point(app)

if __name__ == "__main__":
    tune_collector()  # widthlab.runtime.collector
    main()
