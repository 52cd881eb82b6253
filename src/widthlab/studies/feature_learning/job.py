"""The jobs of `feature_learning`: networks of one parameterization and width, trained.

Networks are `widthlab.models.mlp.MLP` (`model.*`: `depth` hidden ReLU layers, w_std, b_std,
`model.parameterization` ∈ {standard, ntk, mean_field, mup}, `model.base_width` n₀) from the
data set's D inputs to its C classes, trained on `train.loss` with `train.optimizer` (SGD
without momentum, or Adam) at the per-parameter learning rates η·λ_θ of the
parameterization (`MLP.lr_scales`). Networks that share a batch sequence are trained side
by side by `widthlab.stacked_mlp` (exactly what `widthlab.runtime.training.train_network`
computes for each alone: tests/test_stacked_mlp.py).

`transfer` — one job = (parameterization, width, seed): the network of that seed trained at
  every learning rate of the grid η = 2^e, e = `study.transfer.log2_lr_min[p]` … + n_lr − 1,
  for `train.max_steps` steps on minibatches of `train.batch_size` training points in the
  order `TensorBatches` draws from the seed (the order `train_network` uses). Per rate
  (a condition `log2_lr=e`), after training:
    train_loss, test_loss, test_error   on the whole training / test split; missing when
                                        the run diverged (`diverged` = 1: its batch loss
                                        became non-finite or exceeded
                                        train.divergence_factor × its first batch loss);
    feature_movement_layer_<l>          ‖h_l(T) − h_l(0)‖_F / ‖h_l(0)‖_F of hidden layer l's
                                        activations on the first `study.n_probe` training
                                        points (the probe);
  and at the rate `study.movement.log2_lr[p]` also
    ntk_change                          ‖Θ_T − Θ_0‖_F / ‖Θ_0‖_F on the probe, Θ the tangent
                                        kernel weighted by the SGD learning-rate scales,
                                        Θ = Σ_θ λ_θ Σ_o ∂f_o/∂θ ∂f_o/∂θ (`empirical_ntk`;
                                        the kernel gradient descent follows; the plain NTK
                                        for standard and ntk), float64.
  The batch-loss curve of every rate goes to the job's MLflow run.

`coord` — one job = one parameterization, every width of `study.coord.widths` (as
  microsoft/mup's `get_coord_data` does): per width, `study.coord.seeds` networks (seeds
  `seed` … `seed` + seeds − 1) trained side by side at η = 2^`study.coord.log2_lr[p]` for
  `study.coord.steps` steps on one fixed batch, the first `study.coord.batch` training
  points. Per width, seed and step t = 0 … steps (a condition `width=n,seed=s,step=t`): the
  mean |·| of each hidden layer's activations h<l>, of the outputs and of the output's
  change since step 0 (`widthlab.stacked_mlp.coordinate_check`). `model.width` is not used.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

import torch
from hydra.utils import instantiate
from omegaconf import DictConfig

from widthlab.distances import relative_distance
from widthlab.empirical import empirical_ntk
from widthlab.losses import DTYPES
from widthlab.runtime.active_runs import active_run
from widthlab.runtime.datafiles import load_job_data
from widthlab.runtime.devices import resolve_device
from widthlab.runtime.training import TensorBatches
from widthlab.stacked_mlp import StackedMLP, batch_losses, coordinate_check, train_stacked

CURVE_EVERY = 10  # steps between the points of the batch-loss curves sent to MLflow


def log2_grid(cfg: Mapping[str, Any]) -> list[int]:
    """The exponents e of the learning-rate grid η = 2^e of the job's parameterization."""
    t = cfg["study"]["transfer"]
    start = int(t["log2_lr_min"][cfg["model"]["parameterization"]])
    return list(range(start, start + int(t["n_lr"])))


def _tensors(cfg: DictConfig):
    ds = load_job_data(cfg)
    device, dtype = resolve_device(cfg.device), DTYPES[cfg.train.dtype]

    def as_tensor(a):
        return torch.as_tensor(a, dtype=dtype, device=device)

    return (
        as_tensor(ds.x_train),
        as_tensor(ds.y_train),
        as_tensor(ds.x_test),
        as_tensor(ds.y_test),
        device,
        dtype,
    )


def _network(
    cfg: DictConfig, x: torch.Tensor, y: torch.Tensor, seed: int, dtype, device, **changes
):
    return instantiate(
        cfg.model,
        in_features=x.shape[1],
        out_features=y.shape[1],
        seed=seed,
        dtype=dtype,
        device=device,
        **changes,
    )


def evaluate_stack(
    stack: StackedMLP, x: torch.Tensor, y: torch.Tensor, loss: str, chunk: int = 2048
) -> tuple[torch.Tensor, torch.Tensor]:
    """(loss, error) of every network of the stack on (x, y), [K] each, float64 on the CPU,
    computed `chunk` points at a time."""
    total_loss = torch.zeros(stack.size, dtype=torch.float64)
    wrong = torch.zeros(stack.size, dtype=torch.float64)
    with torch.no_grad():
        for i in range(0, len(x), chunk):
            xb, yb = x[i : i + chunk], y[i : i + chunk]
            out = stack(xb)
            total_loss += batch_losses(out, yb, loss).double().cpu() * len(xb)
            wrong += (out.argmax(2) != yb.argmax(1)).double().sum(dim=1).cpu()
    return total_loss / len(x), wrong / len(x)


def lr_weighted_ntk(model, probe: torch.Tensor) -> torch.Tensor:
    """Θ = Σ_θ λ_θ Σ_o ∂f_o/∂θ ∂f_o/∂θ on the probe (SGD scales), in float64."""
    net64 = copy.deepcopy(model).double()
    return empirical_ntk(net64, probe.double(), parameter_weights=model.lr_scales("sgd"))


def measure_transfer(cfg: DictConfig) -> dict[str, Any]:
    """One parameterization, width and seed: every learning rate of the grid trained, with feature
    movement and NTK change."""
    x, y, x_test, y_test, device, dtype = _tensors(cfg)
    s, t = cfg.study, cfg.train
    grid = log2_grid(cfg)
    parameterization = cfg.model.parameterization
    movement_rate = grid.index(int(s.movement.log2_lr[parameterization]))
    model = _network(cfg, x, y, int(cfg.seed), dtype, device)
    stack = StackedMLP.copies(model, len(grid))
    probe = x[: int(s.n_probe)]
    with torch.no_grad():
        start = [h[0].clone() for h in stack.forward_with_cache(probe).hidden]
    ntk_start = lr_weighted_ntk(model, probe)

    batches = TensorBatches(x, y, t.batch_size, seed=int(cfg.seed))
    training = train_stacked(
        stack,
        batches,
        t.loss,
        t.optimizer,
        [2.0**e for e in grid],
        model.lr_scales(t.optimizer),
        int(t.max_steps),
        divergence_factor=float(t.divergence_factor),
        drop_diverged=True,
    )
    train_loss, _ = evaluate_stack(stack, x, y, t.loss)
    test_loss, test_error = evaluate_stack(stack, x_test, y_test, t.loss)
    with torch.no_grad():
        moved = stack.forward_with_cache(probe).hidden

    conditions: dict[str, dict[str, Any]] = {}
    for k, e in enumerate(grid):
        entry: dict[str, Any] = {"diverged": int(training.diverged[k])}
        if k in training.kept and bool(torch.isfinite(train_loss[training.kept.index(k)])):
            row = training.kept.index(k)
            entry.update(
                train_loss=float(train_loss[row]),
                test_loss=float(test_loss[row]),
                test_error=float(test_error[row]),
            )
            for layer, (h_t, h_0) in enumerate(zip(moved, start, strict=True), start=1):
                entry[f"feature_movement_layer_{layer}"] = relative_distance(
                    h_t[row].double(), h_0.double()
                )
            if k == movement_rate:
                entry["ntk_change"] = relative_distance(
                    lr_weighted_ntk(stack.network(row), probe), ntk_start
                )
        else:
            entry["diverged"] = 1
        conditions[f"log2_lr={e}"] = entry
    _log_curves(training.batch_losses, grid)
    return {
        **conditions,
        "steps": int(t.max_steps),
        "n_diverged": sum(c["diverged"] for c in conditions.values()),
        "n_parameters": model.num_parameters(),
    }


def _log_curves(losses: torch.Tensor, grid: list[int]) -> None:
    """The batch loss of every rate of the grid, every CURVE_EVERY steps, into MLflow."""
    run = active_run()
    if run is None or not run.active:
        return
    for step in range(0, losses.shape[0], CURVE_EVERY):
        point = {
            f"batch_loss/log2_lr_{e}": float(v)
            for e, v in zip(grid, losses[step], strict=True)
            if torch.isfinite(v)
        }
        run.log_metrics(point, step=step)


def measure_coord(cfg: DictConfig) -> dict[str, Any]:
    """One parameterization and width: mup's coordinate check over the first steps."""
    x, y, _, _, device, dtype = _tensors(cfg)
    c = cfg.study.coord
    seeds = [int(cfg.seed) + i for i in range(int(c.seeds))]
    batch = int(c.batch)
    rate = 2.0 ** int(c.log2_lr[cfg.model.parameterization])
    out: dict[str, Any] = {}
    for width in c.widths:
        models = [_network(cfg, x, y, seed, dtype, device, width=width) for seed in seeds]
        sizes = coordinate_check(
            StackedMLP.from_models(models),
            x[:batch],
            y[:batch],
            cfg.train.loss,
            cfg.train.optimizer,
            [rate] * len(seeds),
            models[0].lr_scales(cfg.train.optimizer),
            int(c.steps),
        )
        for k, seed in enumerate(seeds):
            for step in range(int(c.steps) + 1):
                out[f"width={width},seed={seed},step={step}"] = {
                    name: float(values[step, k]) for name, values in sizes.items()
                }
    out["lr"] = rate
    return out


def _parameters(
    cfg: Mapping[str, Any], in_features: int = 784, classes: int = 10, width: int | None = None
) -> int:
    m = cfg["model"]
    w = m["width"] if width is None else width
    return (in_features + 1) * w + (m["depth"] - 1) * w * (w + 1) + (w + 1) * classes


def transfer_memory(cfg: Mapping[str, Any]) -> float:
    """Bytes: the stacked parameters of the grid (with Adam's two moments and one gradient
    buffer), the activations of a forward pass over the larger split for every rate, and the
    float64 kernels' copies (input dimension assumed ≤ 784, as in MNIST)."""
    t, m = cfg["train"], cfg["model"]
    size = 8 if t["dtype"] == "float64" else 4
    rates = cfg["study"]["transfer"]["n_lr"]
    params = _parameters(cfg)
    points = max(cfg["data"].get("n_train", 1000), cfg["data"].get("n_test") or 1797)
    activations = rates * points * m["width"] * (m["depth"] + 1)
    return size * (4 * rates * params + 2 * activations) + 8 * 4 * params


def coord_memory(cfg: Mapping[str, Any]) -> float:
    """Bytes: the stacked parameters of the seeds at the widest width (with Adam's moments)
    and the batch's activations at every recorded step."""
    c, m = cfg["study"]["coord"], cfg["model"]
    size = 8 if cfg["train"]["dtype"] == "float64" else 4
    width = max(c["widths"])
    activations = c["seeds"] * c["batch"] * width * m["depth"] * 4
    return size * (4 * c["seeds"] * _parameters(cfg, width=width) + activations)
