"""Training an MLP with PyTorch Lightning: losses, optimizers, in-memory batches, stopping.

Conventions (every number the training studies report follows them): the losses and the
error of `widthlab.losses`, and

* Optimizers: `sgd` (torch.optim.SGD, optional momentum) and `adam` (torch.optim.Adam).
  `batch_size: null` means the whole training set every step: `sgd` with it is plain
  full-batch gradient descent. One epoch = one pass over the training set, so full-batch
  training takes one step per epoch.
* Minibatch order is reshuffled every epoch from the job's seed (`widthlab.seeding`); the
  network's initialization comes from the same seed through `widthlab.models.mlp.MLP`.

`TensorBatches` hands Lightning in-memory tensors without a DataLoader: a full batch is the
tensors themselves and a minibatch one `index_select`, so a 1000-step full-batch run does not
pay 1000 per-epoch collations. The training loss is accumulated on the device and read once
per epoch (for stopping); the curves (train/test loss and error) go to MLflow every
`log_every_n_epochs` epochs, through Lightning's `MLFlowLogger`, as `epoch/<metric>` at step
= optimizer steps taken.

Stopping: `max_steps` optimizer steps, or earlier when the epoch's training loss falls below
`stop_loss` (interpolation), both through Lightning's own `EarlyStopping`
(`stopping_threshold`), which also stops at once on a non-finite loss (`check_finite`).
`fit` then raises `TrainingDiverged`, so the job is recorded as failed.
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
from pytorch_lightning.callbacks import EarlyStopping
from pytorch_lightning.loggers import MLFlowLogger
from torch import nn

from widthlab.losses import DTYPES, LOSSES, OPTIMIZERS, evaluate, loss_value
from widthlab.seeding import rng_for
from widthlab.validation import check_choice, check_positive, check_positive_int

PRECISION = {"float32": "32-true", "float64": "64-true"}

# Lightning's own use of a deprecated torch pytree API, once per process: not ours to fix.
warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)")
# Lightning announces its accelerator choice on every Trainer; one line per job is noise.
for _name in ("pytorch_lightning.utilities.rank_zero", "pytorch_lightning.accelerators.cuda"):
    logging.getLogger(_name).setLevel(logging.WARNING)


class TrainingDiverged(FloatingPointError):
    """The training loss became NaN or infinite."""


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
    """A network trained on one loss with one optimizer; logs its curves every few epochs.

    `evaluation` maps a split name ("train", "test") to its (x, y) tensors: every
    `log_every_n_epochs` epochs (and at the first) the module logs `epoch/<split>_loss` and,
    for classification, `epoch/<split>_error` at the current parameters.
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
    ) -> None:
        super().__init__()
        self.model = model
        self.loss = check_choice("train.loss", loss, LOSSES)
        self.optimizer_name = check_choice("train.optimizer", optimizer, OPTIMIZERS)
        self.lr = check_positive("train.lr", lr)
        self.momentum = float(momentum)
        self.classification = classification
        self.evaluation = dict(evaluation or {})
        self.log_every = check_positive_int("train.log_every_n_epochs", log_every_n_epochs)
        self._loss_sum: torch.Tensor | None = None
        self._points = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int):
        x, y = batch
        loss = loss_value(self.model(x), y, self.loss)
        weighted = loss.detach() * len(x)
        self._loss_sum = weighted if self._loss_sum is None else self._loss_sum + weighted
        self._points += len(x)
        return loss

    def on_train_epoch_end(self) -> None:
        # The epoch's mean training loss (measured before each step's update), read by
        # EarlyStopping; not sent to the logger.
        self.log("train_loss", self._loss_sum / self._points, logger=False)
        self._loss_sum, self._points = None, 0
        if self.current_epoch % self.log_every == 0 and self.logger is not None:
            self.logger.log_metrics(self.curve_point(), step=self.global_step)

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
        params = self.model.parameters()
        if self.optimizer_name == "adam":
            return torch.optim.Adam(params, lr=self.lr)
        return torch.optim.SGD(params, lr=self.lr, momentum=self.momentum)


@dataclass
class TrainingResult:
    steps: int
    epochs: int
    stopped_at_threshold: bool


def build_trainer(
    train_cfg: Mapping[str, Any],
    logger: Any = False,
    extra_callbacks: list | None = None,
    device: torch.device | None = None,
) -> pl.Trainer:
    """The Lightning Trainer of `train.trainer` (a `_target_` config), with the step budget,
    the precision of `train.dtype`, the stopping rule and `logger` (False: none). `device`
    (the job's, from `device: auto|cpu|cuda[:i]`) replaces the config's accelerator, so a
    job trains where its tensors are."""
    max_steps = check_positive_int("train.max_steps", train_cfg["max_steps"])
    stop_loss = train_cfg.get("stop_loss")
    stopping = EarlyStopping(
        monitor="train_loss",
        mode="min",
        stopping_threshold=None if stop_loss is None else float(stop_loss),
        patience=max_steps + 1,  # never stop for lack of progress: only threshold or NaN
        check_finite=True,
        check_on_train_epoch_end=True,
        verbose=False,
    )
    placement = {}
    if device is not None:
        cuda = device.type == "cuda"
        placement = {"accelerator": "gpu" if cuda else "cpu",
                     "devices": [device.index or 0] if cuda else 1}  # fmt: skip
    return instantiate(
        train_cfg["trainer"],
        max_steps=max_steps,
        max_epochs=-1,
        precision=PRECISION[check_choice("train.dtype", train_cfg["dtype"], tuple(DTYPES))],
        logger=logger,
        callbacks=[stopping, *(extra_callbacks or [])],
        _convert_="all",
        **placement,
    )


def fit(task: MLPTask, batches: TensorBatches, trainer: pl.Trainer) -> TrainingResult:
    """Train; raise `TrainingDiverged` if the loss became NaN or infinite (during training or
    at the final parameters). The model stays on the device it was trained on."""
    device = next(task.model.parameters()).device
    trainer.fit(task, train_dataloaders=batches)
    task.model.to(device)  # Lightning's teardown moves a GPU-trained module to the CPU
    final = trainer.callback_metrics.get("train_loss")
    x, y = batches.x.to(device), batches.y.to(device)
    task.model.eval()
    with torch.no_grad():
        last = float(loss_value(task.model(x), y, task.loss))  # after the last update
    if (final is not None and not torch.isfinite(final)) or not math.isfinite(last):
        shown = last if final is None or torch.isfinite(final) else float(final)
        raise TrainingDiverged(
            f"training diverged: train loss = {shown} after {trainer.global_step} steps "
            f"(lr={task.lr:g}; lower train.lr)"
        )
    stop = trainer.early_stopping_callback
    threshold = stop.stopping_threshold if stop is not None else None
    return TrainingResult(
        steps=trainer.global_step,
        epochs=trainer.current_epoch,
        stopped_at_threshold=bool(
            threshold is not None and final is not None and float(final) < threshold
        ),
    )


class JobMLFlowLogger(MLFlowLogger):
    """Lightning's MLFlowLogger for a run it does not own: `finalize` leaves the run open, so
    the job (`widthlab.tracking.job_run`) logs its final metrics and record first and ends the
    run itself, FINISHED or FAILED."""

    def finalize(self, status: str = "success") -> None:
        pass


def job_logger(cfg: Mapping[str, Any]) -> Any:
    """A logger writing into the running job's MLflow child run (`widthlab.jobs.active_run`),
    or False when tracking is off or no job is running."""
    from widthlab.jobs import active_run

    run = active_run()
    if run is None or not run.active:
        return False
    return JobMLFlowLogger(tracking_uri=str(cfg["tracking"]["uri"]), run_id=run.run_id)


def train_network(
    cfg: Mapping[str, Any],
    model: nn.Module,
    x_train: torch.Tensor,
    y_train: torch.Tensor,
    evaluation: Mapping[str, tuple[torch.Tensor, torch.Tensor]],
    classification: bool,
    lr: float | None = None,
) -> TrainingResult:
    """Train `model` in place as `cfg.train` says (lr: `train.lr` unless given), on the device
    of `x_train`, logging its curves into the job's MLflow run; the curves end with a point
    at the final parameters."""
    t = cfg["train"]
    batch_size = t["batch_size"]
    if batch_size is not None:
        batch_size = check_positive_int("train.batch_size", batch_size)
    task = MLPTask(
        model,
        loss=t["loss"],
        optimizer=t["optimizer"],
        lr=t["lr"] if lr is None else lr,
        momentum=t["momentum"],
        classification=classification,
        evaluation=evaluation,
        log_every_n_epochs=t["log_every_n_epochs"],
    )
    logger = job_logger(cfg)
    trainer = build_trainer(t, logger=logger, device=x_train.device)
    batches = TensorBatches(x_train, y_train, batch_size, seed=int(cfg["seed"]))
    # MLFlowLogger calls mlflow.set_tracking_uri, which also exports MLFLOW_TRACKING_URI to
    # the process environment; put it back, so nothing after this job inherits the setting.
    saved = os.environ.get("MLFLOW_TRACKING_URI")
    try:
        result = fit(task, batches, trainer)
        if logger and (result.epochs - 1) % task.log_every != 0:
            logger.log_metrics(task.curve_point(), step=result.steps)
    finally:
        if saved is None:
            os.environ.pop("MLFLOW_TRACKING_URI", None)
        else:
            os.environ["MLFLOW_TRACKING_URI"] = saved
    return result
