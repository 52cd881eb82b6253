"""Training an MLP with PyTorch Lightning: optimizers, in-memory batches, stopping, failure.

Conventions (every number the training studies report follows them): the losses and the
error of `widthlab.losses`, and

* Optimizers: `sgd` (torch.optim.SGD, optional momentum) and `adam` (torch.optim.Adam), with
  the model's per-parameter learning rates lr·λ_θ where it declares them
  (`MLP.param_groups`: the μP and mean-field scales; 1 for standard and NTK).
  `batch_size: null` means the whole training set every step: `sgd` with it is plain
  full-batch gradient descent.
* Minibatch order is reshuffled every epoch from the job's seed (`widthlab.seeding`); the
  network's initialization comes from the same seed through `widthlab.models.mlp.MLP`.

`TensorBatches` hands Lightning in-memory tensors without a DataLoader: a full batch is the
tensors themselves and a minibatch one `index_select`. `MLPTask` runs each Lightning batch as
a block of optimizer steps (manual optimization, see its docstring), so a 5000-step
full-batch run pays Lightning's per-batch machinery 5000/`log_every_n_epochs` times, not 5000
times (`benchmarks/bench_training.py` measures what is left). The curves (train/test loss
and error) go to MLflow through Lightning's `MLFlowLogger` (`JobMLFlowLogger`: written in
batches once training ends), as `epoch/<metric>` at step = optimizer steps taken: at
initialization, every `log_every_n_epochs` full-batch steps (or epochs of minibatches), and
at the end.

Stopping and failure: `max_steps` optimizer steps, or earlier once the training loss falls
below `stop_loss` (interpolation) — decided after every full-batch step, from the loss
measured before that step's update, or on an epoch's mean with minibatches. Training *fails*
(`TrainingDiverged`, the job is recorded as failed) when the loss becomes NaN or infinite,
when it grows above `divergence_factor` times its value at initialization, or when a ReLU
network ends with every unit of a hidden layer inactive on the whole training set (a dead
network, whose output no longer depends on its input).
"""

from __future__ import annotations

import logging
import math
import os
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import pytorch_lightning as pl
import torch
from hydra.utils import instantiate
from pytorch_lightning.plugins.precision import DoublePrecision, Precision
from pytorch_lightning.strategies import SingleDeviceStrategy
from pytorch_lightning.utilities.model_helpers import is_overridden
from torch import Tensor, nn

from widthlab.losses import DTYPES, evaluate, loss_value
from widthlab.runtime.curves import job_logger
from widthlab.seeding import rng_for

PRECISION = {"float32": "32-true", "float64": "64-true"}

# Lightning's own use of a deprecated torch pytree API, once per process: not ours to fix.
warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)")
# A job is one process whatever launched it; on a machine with SLURM installed Lightning's
# checkpoint connector probes for `srun` at every fit and warns that it is not used.
warnings.filterwarnings("ignore", message=r"The `srun` command is available on your system")
# Lightning announces its accelerator choice on every Trainer; one line per job is noise.
for _name in ("pytorch_lightning.utilities.rank_zero", "pytorch_lightning.accelerators.cuda"):
    logging.getLogger(_name).setLevel(logging.WARNING)


class TrainingDiverged(FloatingPointError):
    """Training failed: a non-finite or exploding loss, or a dead ReLU network."""


class TensorBatches:
    """(x, y) batches over in-memory tensors: the whole set (batch_size None) or minibatches
    in an order reshuffled every epoch by a generator seeded from `seed`."""

    def __init__(
        self, x: torch.Tensor, y: torch.Tensor, batch_size: int | None = None, seed: int = 0
    ) -> None:
        if len(x) != len(y):
            raise ValueError(f"x has {len(x)} points and y {len(y)}")
        self.x, self.y = x, y
        self.batch_size = None if batch_size is None or batch_size >= len(x) else batch_size
        draw = int(rng_for(seed, "minibatch order").integers(2**62))
        self.generator = torch.Generator().manual_seed(draw)

    def __len__(self) -> int:
        return 1 if self.batch_size is None else math.ceil(len(self.x) / self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        if self.batch_size is None:
            yield self.x, self.y
            return
        order = torch.randperm(len(self.x), generator=self.generator).to(self.x.device)
        for start in range(0, len(self.x), self.batch_size):
            index = order[start : start + self.batch_size]
            yield self.x.index_select(0, index), self.y.index_select(0, index)


class MLPTask(pl.LightningModule):
    """A network trained on one loss with one optimizer, in blocks of steps; logs its curves.

    Lightning's manual optimization: each Lightning batch is a *block* of optimizer steps
    on the same tensors — `steps_per_batch` full-batch steps, or one minibatch step — so
    Lightning's per-batch machinery (hooks, result collections: about a millisecond on a CPU)
    is paid once per block instead of once per step. Every step is zero_grad, forward, the
    loss, backward, `optimizer.step()`: the same arithmetic as automatic optimization. The
    backward is `manual_backward`, or `loss.backward()` itself where `manual_backward` would
    do exactly that and nothing else (`direct_backward`: full precision on one device, no
    backward hooks anywhere), which saves its two hook dispatches, ~0.1 ms a step on a CPU.
    Stopping is decided after every full-batch step (from the loss measured before that
    step's update) or, with minibatches, on the epoch's mean loss:
    `stop_loss` (interpolation reached), a non-finite loss or one above `divergence_factor`
    times `initial_loss` (diverged), or `max_steps`.

    `evaluation` maps a split name ("train", "test") to its (x, y) tensors: at the start,
    every `log_every_n_epochs` steps (full batch) or epochs (minibatches), and at the end,
    the module logs `epoch/<split>_loss` and, for classification, `epoch/<split>_error`.
    Arguments are trusted: the config schemas checked them before the job started.
    """

    def __init__(
        self,
        model: nn.Module,
        loss: str = "squared",
        optimizer: str = "sgd",
        lr: float = 0.1,
        momentum: float = 0.0,
        classification: bool = False,
        evaluation: Mapping[str, tuple[torch.Tensor, torch.Tensor]] | None = None,
        log_every_n_epochs: int = 1,
        max_steps: int = 1000,
        stop_loss: float | None = None,
        divergence_factor: float | None = None,
    ) -> None:
        super().__init__()
        self.automatic_optimization = False
        self.model = model
        self.loss = loss
        self.optimizer_name = optimizer
        self.lr = float(lr)
        self.momentum = float(momentum)
        self.classification = classification
        self.evaluation = dict(evaluation or {})
        self.log_every = int(log_every_n_epochs)
        self.max_steps = int(max_steps)
        self.stop_loss = stop_loss
        self.divergence_factor = divergence_factor
        self.initial_loss: float | None = None
        self.full_batch = True
        self.steps_done = 0
        self.last_loss: float | None = None
        self.stop_reason: str | None = None  # "threshold", "non_finite" or "divergence"
        self.logged_step: int | None = None
        self._epoch_sum, self._epoch_points = 0.0, 0
        self._direct_backward = False  # decided when training starts (`direct_backward`)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The model's output on `x`."""
        return self.model(x)

    @property
    def steps_per_batch(self) -> int:
        """Optimizer steps per Lightning batch: a block of full-batch steps as long as the
        curves' interval, one minibatch step otherwise."""
        return self.log_every if self.full_batch else 1

    def direct_backward(self) -> bool:
        """Whether `manual_backward(loss)` would be `loss.backward()` and nothing else: a
        full-precision plugin (32-true, 64-true: no loss scaling), one device (no gradient
        synchronization), and neither this module nor any of the Trainer's callbacks
        overriding `backward`, `on_before_backward` or `on_after_backward`."""
        trainer = self.trainer
        hooks = ("on_before_backward", "on_after_backward")
        return (
            type(trainer.precision_plugin) in (Precision, DoublePrecision)
            and type(trainer.strategy) is SingleDeviceStrategy
            and not any(is_overridden(h, self) for h in (*hooks, "backward"))
            and not any(is_overridden(h, cb) for cb in trainer.callbacks for h in hooks)
        )

    def judge(self, loss: float) -> str | None:
        """Why training stops after a step (or an epoch) whose loss was `loss`, or None."""
        if not math.isfinite(loss):
            return "non_finite"
        if (
            self.divergence_factor is not None
            and self.initial_loss is not None
            and loss > self.divergence_factor * self.initial_loss
        ):
            return "divergence"
        if self.stop_loss is not None and loss < self.stop_loss:
            return "threshold"
        return None

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        """`steps_per_batch` optimizer steps on the batch, each judged for stopping."""
        x, y = batch
        optimizer = self.optimizers()
        backward = Tensor.backward if self._direct_backward else self.manual_backward
        for _ in range(self.steps_per_batch):
            if self.steps_done >= self.max_steps or self.stop_reason:
                break
            optimizer.zero_grad()
            loss = loss_value(self.model(x), y, self.loss)
            backward(loss)
            optimizer.step()
            self.steps_done += 1
            value = float(loss.detach())  # measured before this step's update
            self.last_loss = value
            if self.full_batch:
                self.stop_reason = self.judge(value)
            else:
                self._epoch_sum += value * len(x)
                self._epoch_points += len(x)
        if self.stop_reason or self.steps_done >= self.max_steps:
            self.trainer.should_stop = True

    def log_curve_point(self) -> None:
        """One point of the curves at the current parameters (once per step count)."""
        if self.logger and self.logged_step != self.steps_done:
            self.logger.log_metrics(self.curve_point(), step=self.steps_done)
            self.logged_step = self.steps_done

    def on_train_start(self) -> None:
        """Choose the backward call and log the curves' first point, before any step."""
        self._direct_backward = self.direct_backward()
        self.log_curve_point()

    def on_train_epoch_end(self) -> None:
        """Judge the epoch's mean loss (minibatch training) and log the curves."""
        if not self.full_batch and self._epoch_points:
            self.last_loss = self._epoch_sum / self._epoch_points
            self.stop_reason = self.stop_reason or self.judge(self.last_loss)
            self._epoch_sum, self._epoch_points = 0.0, 0
            if self.stop_reason:
                self.trainer.should_stop = True
        due = self.full_batch or (self.current_epoch + 1) % self.log_every == 0
        if due and not self.trainer.should_stop:
            self.log_curve_point()

    def curve_point(self) -> dict[str, float]:
        """`epoch/<split>_<metric>` at the current parameters, for every evaluation split."""
        point: dict[str, float] = {}
        was_training = self.model.training
        self.model.eval()
        for split, (x, y) in self.evaluation.items():
            x, y = x.to(self.device, self.dtype), y.to(self.device, self.dtype)
            for name, value in evaluate(self.model, x, y, self.loss, self.classification).items():
                point[f"epoch/{split}_{name}"] = value
        self.model.train(was_training)
        return point

    def configure_optimizers(self):
        """Adam or SGD over the model's parameter groups: one per learning-rate scale (μP and
        mean-field MLPs), or one of every parameter at `lr`, a plain list (standard and NTK)."""
        if hasattr(self.model, "param_groups"):
            params = self.model.param_groups(self.lr, self.optimizer_name)
        else:
            params = self.model.parameters()
        if self.optimizer_name == "adam":
            return torch.optim.Adam(params, lr=self.lr)
        return torch.optim.SGD(params, lr=self.lr, momentum=self.momentum)


@dataclass
class TrainingResult:
    """How training ended: steps, epochs, threshold reached or not, first and last loss."""

    steps: int
    epochs: int
    stopped_at_threshold: bool
    initial_loss: float
    final_loss: float


def build_trainer(
    train_cfg: Mapping[str, Any],
    logger: Any = False,
    extra_callbacks: list | None = None,
    device: torch.device | None = None,
) -> pl.Trainer:
    """The Lightning Trainer of `train.trainer` (a `_target_` config), with the step budget,
    the precision of `train.dtype` and `logger` (False: none). `device` (the job's) replaces
    the config's accelerator, so a job trains where its tensors are. The stopping rules live
    in `MLPTask` (they are decided between the steps of a block)."""
    placement = {}
    if device is not None:
        cuda = device.type == "cuda"
        placement = {
            "accelerator": "gpu" if cuda else "cpu",
            "devices": [device.index or 0] if cuda else 1,
        }
    return instantiate(
        train_cfg["trainer"],
        max_steps=int(train_cfg["max_steps"]),
        max_epochs=-1,
        precision=PRECISION[train_cfg["dtype"]],
        logger=logger,
        callbacks=list(extra_callbacks or []),
        _convert_="all",
        **placement,
    )


def dead_hidden_layer(model: nn.Module, x: torch.Tensor) -> int | None:
    """The first hidden layer (1-based) of a ReLU MLP with no unit active on any point of
    `x`, else None (other activations never die)."""
    if getattr(model, "activation", None) != "relu" or not hasattr(model, "forward_with_cache"):
        return None
    with torch.no_grad():
        cache = model.forward_with_cache(x)
    for index, z in enumerate(cache.pre_activations, start=1):
        if not bool((z > 0).any()):
            return index
    return None


def initial_loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor, loss: str) -> float:
    """The training loss at the current parameters (no gradient, nothing drawn)."""
    with torch.no_grad():
        return float(loss_value(model(x), y, loss))


def fit(
    task: MLPTask, batches: TensorBatches, trainer: pl.Trainer, lr_key: str = "train.lr"
) -> TrainingResult:
    """Train; raise `TrainingDiverged` on a non-finite or exploding loss (during training or
    at the final parameters) or a dead network. The model stays on the device it was
    trained on. `lr_key` is the config key that set the learning rate (for the message)."""
    device = next(task.model.parameters()).device
    x, y = batches.x.to(device), batches.y.to(device)
    initial = initial_loss(task.model, x, y, task.loss)
    task.initial_loss = initial
    task.full_batch = batches.batch_size is None
    if trainer.max_steps > 0:
        task.max_steps = min(task.max_steps, trainer.max_steps)
    trainer.fit(task, train_dataloaders=batches)
    task.model.to(device)  # Lightning's teardown moves a GPU-trained module to the CPU
    task.model.eval()
    last = initial_loss(task.model, x, y, task.loss)  # after the last update
    where = f"after {task.steps_done} steps (lr={task.lr:g}; lower {lr_key})"
    if task.stop_reason == "non_finite" or not math.isfinite(last):
        shown = last if math.isfinite(task.last_loss or 0.0) else task.last_loss
        raise TrainingDiverged(f"training diverged: the train loss became {shown} {where}")
    factor = task.divergence_factor
    if task.stop_reason == "divergence" or (factor is not None and last > factor * initial):
        grown = max(last, task.last_loss or last)
        raise TrainingDiverged(
            f"training diverged: the train loss grew from {initial:.4g} at initialization to "
            f"{grown:.4g}, more than train.divergence_factor={factor:g} times its initial "
            f"value, {where}"
        )
    dead = dead_hidden_layer(task.model, x)
    if dead is not None:
        raise TrainingDiverged(
            f"dead network: every unit of hidden layer {dead} is inactive on the whole "
            f"training set {where}"
        )
    task.log_curve_point()  # the curves end at the final parameters
    return TrainingResult(
        steps=task.steps_done,
        epochs=trainer.current_epoch,
        stopped_at_threshold=task.stop_reason == "threshold",
        initial_loss=initial,
        final_loss=last,
    )


def train_network(
    cfg: Mapping[str, Any],
    model: nn.Module,
    x_train: torch.Tensor,
    y_train: torch.Tensor,
    evaluation: Mapping[str, tuple[torch.Tensor, torch.Tensor]],
    classification: bool,
    lr: float | None = None,
    lr_key: str = "train.lr",
) -> TrainingResult:
    """Train `model` in place as `cfg.train` says (lr: `train.lr` unless given, set by the
    config key `lr_key`), on the device of `x_train`, logging its curves into the job's
    MLflow run; the curves start at initialization and end at the final parameters."""
    t = cfg["train"]
    task = MLPTask(
        model,
        loss=t["loss"],
        optimizer=t["optimizer"],
        lr=t["lr"] if lr is None else lr,
        momentum=t["momentum"],
        classification=classification,
        evaluation=evaluation,
        log_every_n_epochs=t["log_every_n_epochs"],
        max_steps=t["max_steps"],
        stop_loss=t.get("stop_loss"),
        divergence_factor=t.get("divergence_factor"),
    )
    logger = job_logger(cfg["tracking"])
    trainer = build_trainer(t, logger=logger, device=x_train.device)
    batches = TensorBatches(x_train, y_train, t["batch_size"], seed=int(cfg["seed"]))
    # MLFlowLogger calls mlflow.set_tracking_uri, which also exports MLFLOW_TRACKING_URI to
    # the process environment; put it back, so nothing after this job inherits the setting.
    saved = os.environ.get("MLFLOW_TRACKING_URI")
    try:
        return fit(task, batches, trainer, lr_key=lr_key)
    finally:
        if logger:
            logger.flush()
        if saved is None:
            os.environ.pop("MLFLOW_TRACKING_URI", None)
        else:
            os.environ["MLFLOW_TRACKING_URI"] = saved


__all__ = [
    "DTYPES",
    "MLPTask",
    "TensorBatches",
    "TrainingDiverged",
    "build_trainer",
    "fit",
    "train_network",
]
