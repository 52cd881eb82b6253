"""Generate a data set and write `data/<name>.npz` and its card `data/<name>.json`.

Usage:
    python pipelines/data.py data=digits                       # one data set
    python pipelines/data.py data=digits data.label_noise=0.2  # change a setting
    python pipelines/data.py -m data=sphere_linear,teacher,digits profile=smoke

Each run is one MLflow run (experiment `data`) with the settings as params and the sizes as
metrics; DVC's `data` stage runs every data set the studies read as one multirun (one
process, one parent run). Bad settings stop with one line before anything is written: in a
multirun, every data set is checked before the first is made
(`widthlab.runtime.datastage.check_data_job`, `widthlab.runtime.sweep.check_data_sweep`).
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
    from widthlab.runtime.datastage import make_data_files  # after tune_collector()

    npz_path, json_path = make_data_files(cfg)
    print(f"wrote {npz_path} and {json_path}")


# Every error one line with status 2, SIGTERM and Ctrl-C one line (widthlab.runtime.entry).
main = entry_point(app)

if __name__ == "__main__":
    tune_collector()  # widthlab.runtime.collector
    main()
