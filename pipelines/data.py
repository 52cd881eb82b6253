"""Generate a data set of the study and write `data/<name>.npz` and `data/<name>.json`.

Usage:
    python pipelines/data.py data=digits                      # one data set
    python pipelines/data.py data=digits data.label_noise=0.2 # change a setting
    python pipelines/data.py -m data=sphere_linear,teacher,digits profile=smoke
    python pipelines/data.py data=mnist                       # downloads once from OpenML

Each run is one MLflow run (a child of its sweep under `-m`) in the experiment `data`,
with the data set's settings as params and its sizes as metrics. DVC runs it once per data
set (the stages `data@<name>` in dvc.yaml). Bad settings stop with one line naming the key
before anything is written.
"""

import hydra
import numpy as np
from omegaconf import DictConfig, OmegaConf

from widthlab.data import make_dataset, save_dataset
from widthlab.schemas import validate_config
from widthlab.tracking import job_run
from widthlab.validation import exit_on_config_error


def summary_metrics(ds) -> dict[str, float]:
    metrics = {"n_train": ds.x_train.shape[0], "n_test": ds.x_test.shape[0],
               "dim": ds.x_train.shape[1], "n_outputs": ds.n_outputs,
               "mean_sq_norm_x": float(np.mean(np.sum(ds.x_train**2, axis=1)))}  # fmt: skip
    if ds.task == "regression":
        metrics["var_y_train"] = float(np.var(ds.y_train))
    else:
        metrics["label_noise_realized"] = float(np.mean(ds.extras["flipped_train"]))
    return metrics


@hydra.main(version_base="1.3", config_path="../conf", config_name="config")
@exit_on_config_error
def main(cfg: DictConfig) -> None:
    validate_config(cfg, "data")  # every group it reads, before any work
    settings = OmegaConf.to_container(cfg.data, resolve=True)
    name = settings.pop("name")
    ds = make_dataset(name, **settings)  # validates every setting before anything is written
    with job_run(cfg, job_name="data", stage="data", run_name=name) as run:
        npz_path, json_path = save_dataset(ds, cfg.paths.data_dir)
        run.log_metrics(summary_metrics(ds))
        run.log_artifact(json_path)
    print(f"wrote {npz_path} and {json_path}")


if __name__ == "__main__":
    main()
