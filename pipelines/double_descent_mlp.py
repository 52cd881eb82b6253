"""One job of the `double_descent_mlp` study: a one-hidden-layer MLP trained at one width.

Usage:
    python pipelines/double_descent_mlp.py -m study=double_descent_mlp      # the whole sweep
    python pipelines/double_descent_mlp.py study=double_descent_mlp model.width=133 seed=1

One job = (width, seed). The network (`widthlab.models.mlp.MLP`, `model.*` of the study
config: standard parameterization, W ~ N(0, w_std²/fan_in), ReLU) maps the data set's D
inputs to its C classes; it is trained with Lightning (`widthlab.training`) on the squared
loss (1/2n) Σ_i ‖y_i − f(x_i)‖² against one-hot training labels, a fraction of them flipped
(`data.label_noise`), until the training loss falls below `train.stop_loss` or
`train.max_steps` steps pass. Its size is measured in parameters P = Σ_l fan_out·(fan_in + 1)
against the interpolation threshold n·C (n training points, C outputs): the network can fit
any n·C targets only when P ≳ n·C (Belkin et al. 2019, Fig. 4).

Per job it records, at the final parameters: test_error (0–1, against the clean test labels),
test_loss, train_loss, train_error (against the noisy training labels), noisy_fit (the
fraction of the flipped training points predicted as their noisy label), n_parameters,
threshold = n·C, params_over_threshold = P/(n·C), steps taken and whether the loss threshold
stopped it. The per-epoch curves are in the job's MLflow run.
"""

import hydra
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig

from widthlab.data import load_dataset
from widthlab.jobs import resolve_device, run_study_job
from widthlab.losses import DTYPES, evaluate
from widthlab.schemas import validate_config
from widthlab.training import train_network
from widthlab.validation import ConfigError, exit_on_config_error


def measure(cfg: DictConfig) -> dict:
    ds = load_dataset(cfg.data.name, cfg.paths.data_dir)
    if ds.task != "classification":
        allowed = "a classification data set (digits, digits_noisy, mnist, fashion_mnist)"
        raise ConfigError("data.name", cfg.data.name, allowed)
    device, dtype = resolve_device(cfg.device), DTYPES[cfg.train.dtype]
    as_tensor = lambda a: torch.as_tensor(a, dtype=dtype, device=device)  # noqa: E731
    x_train, y_train = as_tensor(ds.x_train), as_tensor(ds.y_train)
    x_test, y_test = as_tensor(ds.x_test), as_tensor(ds.y_test)
    n, dim = x_train.shape
    classes = y_train.shape[1]
    model = instantiate(cfg.model, in_features=dim, out_features=classes, seed=cfg.seed,
                        dtype=dtype, device=device)  # fmt: skip
    result = train_network(
        cfg, model, x_train, y_train, {"train": (x_train, y_train), "test": (x_test, y_test)},
        classification=True,
    )  # fmt: skip
    model.eval()
    train = evaluate(model, x_train, y_train, cfg.train.loss, classification=True)
    test = evaluate(model, x_test, y_test, cfg.train.loss, classification=True)
    flipped = torch.as_tensor(ds.extras["flipped_train"], device=device)
    with torch.no_grad():
        predicted = model(x_train).argmax(1)
    noisy_fit = (
        float((predicted[flipped] == y_train[flipped].argmax(1)).double().mean())
        if bool(flipped.any()) else None
    )  # fmt: skip
    params = model.num_parameters()
    return {
        "test_error": test["error"],
        "test_loss": test["loss"],
        "train_error": train["error"],
        "train_loss": train["loss"],
        "noisy_fit": noisy_fit,
        "n_parameters": params,
        "n_train": n,
        "n_classes": classes,
        "threshold": n * classes,
        "params_over_threshold": params / (n * classes),
        "width": int(cfg.model.width),
        "steps": result.steps,
        "reached_stop_loss": int(result.stopped_at_threshold),
    }


@hydra.main(version_base="1.3", config_path="../conf", config_name="config")
@exit_on_config_error
def main(cfg: DictConfig) -> None:
    validate_config(cfg, "double_descent_mlp")  # every group it reads, before any work
    run_study_job(cfg, measure, headline="test_error", entry=__file__)


if __name__ == "__main__":
    main()
