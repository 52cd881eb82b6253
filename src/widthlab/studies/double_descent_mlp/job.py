"""The job of `double_descent_mlp`: an MLP of one width trained to (near) interpolation.

One job = (width, seed). The network (`widthlab.models.mlp.MLP`, `model.*`: one hidden ReLU
layer, standard parameterization, W ~ N(0, w_std²/fan_in)) maps the data set's D inputs to
its C classes; it is trained with Lightning (`widthlab.runtime.training`) on `train.loss`
against one-hot training labels, a fraction of them flipped (`data.label_noise`), until the
training loss falls below `train.stop_loss` or `train.max_steps` steps pass. Its size is
P = Σ_l fan_out·(fan_in + 1) parameters against the interpolation threshold n·C: the network
can fit any n·C targets only when P ≳ n·C (Belkin et al. 2019, Fig. 4). The jobs of a sweep
that differ only in width and seed train as one stack (`measure_batch`): each network
exactly as alone (`widthlab.runtime.batched_training`), then measured on its own.

Per job, at the final parameters: test_error (0–1, against the clean test labels),
test_loss, train_loss, train_error (against the noisy training labels), noisy_fit (the
fraction of the flipped training points predicted as their noisy label), n_parameters,
threshold = n·C, params_over_threshold = P/(n·C), steps taken and whether the loss threshold
stopped training. The per-epoch curves are in the job's MLflow run.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from hydra.utils import instantiate
from omegaconf import DictConfig

from widthlab.losses import DTYPES, evaluate
from widthlab.runtime.active_runs import active_runs
from widthlab.runtime.batched_training import train_networks
from widthlab.runtime.datafiles import load_job_data
from widthlab.runtime.devices import resolve_device


def measure(cfg: DictConfig) -> dict[str, Any]:
    """One job: `measure_batch` of a stack of one."""
    (outcome,) = measure_batch([cfg])
    if isinstance(outcome, Exception):
        raise outcome
    return outcome


def measure_batch(cfgs: list[DictConfig]) -> list[dict[str, Any] | Exception]:
    """Jobs that differ only in width and seed, their networks trained as one stack
    (`runtime.batched_training`, each exactly as alone), each measured on its own."""
    cfg = cfgs[0]
    ds = load_job_data(cfg)
    device, dtype = resolve_device(cfg.device), DTYPES[cfg.train.dtype]

    def as_tensor(a):
        return torch.as_tensor(a, dtype=dtype, device=device)

    x_train, y_train = as_tensor(ds.x_train), as_tensor(ds.y_train)
    x_test, y_test = as_tensor(ds.x_test), as_tensor(ds.y_test)
    n, dim = x_train.shape
    classes = y_train.shape[1]
    models = [
        instantiate(
            c.model, in_features=dim, out_features=classes, seed=c.seed, dtype=dtype, device=device
        )
        for c in cfgs
    ]
    results = train_networks(
        cfgs,
        models,
        x_train,
        y_train,
        {"train": (x_train, y_train), "test": (x_test, y_test)},
        classification=True,
        runs=active_runs(len(cfgs)),
    )
    flipped = torch.as_tensor(ds.extras["flipped_train"], device=device)
    out: list[dict[str, Any] | Exception] = []
    for c, model, result in zip(cfgs, models, results, strict=True):
        if isinstance(result, Exception):
            out.append(result)
            continue
        model.eval()
        train = evaluate(model, x_train, y_train, c.train.loss, classification=True)
        test = evaluate(model, x_test, y_test, c.train.loss, classification=True)
        with torch.no_grad():
            predicted = model(x_train).argmax(1)
        noisy_fit = None
        if bool(flipped.any()):
            noisy_fit = float((predicted[flipped] == y_train[flipped].argmax(1)).double().mean())
        params = model.num_parameters()
        out.append(
            {
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
                "width": int(c.model.width),
                "steps": result.steps,
                "reached_stop_loss": int(result.stopped_at_threshold),
            }
        )
    return out


def peak_memory(cfg: Mapping[str, Any]) -> float:
    """Bytes: parameters with their gradients and two Adam moments, and the larger of the
    training step's activations (pre-activations, outputs, gradients: 3 per hidden unit and
    training point) and the test set's evaluation (2 per unit and test point)."""
    m, data, train = cfg["model"], cfg["data"], cfg["train"]
    size = 8 if train["dtype"] == "float64" else 4
    n_train = data["n_train"]
    n_test = data.get("n_test") or 1797 - n_train  # digits: every image left
    w, depth = m["width"], m["depth"]
    params = w * 65 + (depth - 1) * w * w + 11 * w
    return size * (4 * params + max(3 * n_train, 2 * n_test) * w * depth)
