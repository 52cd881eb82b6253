"""Training K networks as one computation with PyTorch Lightning, each exactly as if alone.

`train_networks` is `runtime.training.train_network` for a stack of networks
(`widthlab.batched_mlp.BatchedMLP`): the same conventions (`runtime.training`'s docstring:
losses, optimizers, minibatch orders, stopping and failure), applied per network:

* one `BatchedTask` (a LightningModule, manual optimization, blocks of steps) trains the
  stack; a step is zero_grad, the stack's forward, every network's loss, the backward of
  their sum (each network's parameters get exactly its own loss's gradient), the padded
  entries' gradients zeroed, and one step of the optimizer (SGD with momentum or Adam,
  elementwise: each network stepped as alone);
* each network has its own minibatch order, drawn from its own seed as `TensorBatches`
  draws it (`StackBatches`), and its own stopping: after a full-batch step (from the loss
  measured before that step's update) or an epoch of minibatches, a network whose loss is
  below `stop_loss`, non-finite, or above `divergence_factor` times its initial loss stops,
  and from then on it does not move (its parameters are put back after every later step);
  the stack stops when every network has, or at `max_steps`;
* afterwards each network is checked as `fit` checks one (non-finite or exploding loss, a
  dead ReLU layer) on its own `MLP` (`BatchedMLP.network`), and gets a `TrainingResult` or
  the `TrainingDiverged` it would have raised;
* each network's curves (`epoch/<split>_<metric>` at its own step counts: initialization,
  every `log_every_n_epochs` steps, the end) go into its own MLflow run (`runs`), written in
  batches when training ends.

A centered stack (`centered=True`) trains f(x; θ) − f(x; θ₀) for every network, as
`widthlab.models.centered.CenteredNetwork` does for one.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import pytorch_lightning as pl
import torch
from torch import Tensor, nn

from widthlab.batched_mlp import BatchedMLP
from widthlab.runtime.training import (
    TrainingDiverged,
    TrainingResult,
    build_trainer,
    dead_hidden_layer,
)
from widthlab.seeding import rng_for


def stacked_losses(output: Tensor, target: Tensor, loss: str) -> Tensor:
    """Every network's mean loss over its points, [K] (`widthlab.losses.loss_value`, per
    network): output [K, B, C], target [K, B, C] or [B, C]."""
    if target.dim() == 2:
        target = target.unsqueeze(0).expand_as(output)
    if loss == "squared":
        return 0.5 * (output - target).pow(2).sum(dim=2).mean(dim=1)
    if loss == "cross_entropy":
        k, b, c = output.shape
        labels = target.argmax(dim=2).reshape(k * b)
        per_point = nn.functional.cross_entropy(output.reshape(k * b, c), labels, reduction="none")
        return per_point.reshape(k, b).mean(dim=1)
    raise ValueError(f"loss={loss!r}; allowed: squared, cross_entropy")


@torch.no_grad()
def stacked_evaluation(
    output: Tensor, target: Tensor, loss: str, classification: bool
) -> list[dict[str, float]]:
    """{loss, error} of every network (`widthlab.losses.evaluate`, per network)."""
    losses = stacked_losses(output, target, loss).tolist()
    out = [{"loss": value} for value in losses]
    if classification:
        wrong = (output.argmax(2) != target.argmax(-1)).double().mean(dim=1).tolist()
        for entry, error in zip(out, wrong, strict=True):
            entry["error"] = error
    return out


class StackBatches:
    """The full batch ([B, D], shared), or each epoch's minibatches of every network at once
    ([K, n, D] and [K, n, C]: each network's points in its own order, reshuffled every epoch
    from its own seed exactly as `TensorBatches` reshuffles one network's; `BatchedTask`
    steps through them `batch_size` points at a time). One Lightning batch per epoch: its
    per-batch machinery is paid once an epoch, not once a step."""

    def __init__(self, x: Tensor, y: Tensor, batch_size: int | None, seeds: Sequence[int]) -> None:
        self.x, self.y = x, y
        self.batch_size = None if batch_size is None or batch_size >= len(x) else batch_size
        self.generators = []
        for seed in seeds:
            draw = int(rng_for(int(seed), "minibatch order").integers(2**62))
            self.generators.append(torch.Generator().manual_seed(draw))

    def __len__(self) -> int:
        return 1

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        if self.batch_size is None:
            yield self.x, self.y
            return
        orders = torch.stack(
            [torch.randperm(len(self.x), generator=g) for g in self.generators]
        ).to(self.x.device)
        yield self.x[orders], self.y[orders]


class BatchedTask(pl.LightningModule):
    """The stack trained in blocks of steps, each network stopped on its own (module doc)."""

    def __init__(
        self,
        stack: BatchedMLP,
        loss: str,
        optimizer: str,
        lr: float,
        momentum: float = 0.0,
        classification: bool = False,
        evaluation: Mapping[str, tuple[Tensor, Tensor]] | None = None,
        log_every_n_epochs: int = 1,
        max_steps: int = 1000,
        stop_loss: float | None = None,
        divergence_factor: float | None = None,
        centered: bool = False,
    ) -> None:
        super().__init__()
        self.automatic_optimization = False
        self.model = stack
        self.initial = copy.deepcopy(stack).requires_grad_(False) if centered else None
        self.k = len(stack.models)
        self.loss, self.optimizer_name = loss, optimizer
        self.lr, self.momentum = float(lr), float(momentum)
        self.classification = classification
        self.evaluation = dict(evaluation or {})
        self.log_every, self.max_steps = int(log_every_n_epochs), int(max_steps)
        self.stop_loss, self.divergence_factor = stop_loss, divergence_factor
        self.full_batch = True
        self.batch_size: int | None = None
        self.initial_loss: list[float] = [math.nan] * self.k
        self.last_loss: list[float | None] = [None] * self.k
        self.steps_done = [0] * self.k
        self.steps = 0  # steps of the stack (of its longest-running networks)
        self.centered = centered
        self.stop_reason: list[str | None] = [None] * self.k
        self.frozen = torch.zeros(self.k, dtype=torch.bool)
        self.frozen_values: list[Tensor] | None = None
        self.curves: list[list[tuple[str, float, int]]] = [[] for _ in range(self.k)]
        self.logged_step = [-1] * self.k
        self._epoch_sum: Any = 0.0
        self._epoch_points = 0

    def outputs(self, x: Tensor) -> Tensor:
        """The stacked networks' outputs on `x`, minus their outputs at initialization when
        centered."""
        out = self.model(x)
        if self.initial is not None:
            with torch.no_grad():
                start = self.initial(x)
            out = out - start
        return out

    def judge(self, k: int, loss: float) -> str | None:
        """Why network k stops after a step (or an epoch) whose loss was `loss`, or None."""
        if not math.isfinite(loss):
            return "non_finite"
        if (
            self.divergence_factor is not None
            and loss > self.divergence_factor * self.initial_loss[k]
        ):
            return "divergence"
        if self.stop_loss is not None and loss < self.stop_loss:
            return "threshold"
        return None

    def stop(self, newly: list[int]) -> None:
        """Freeze the networks `newly` at their parameters now (after this step's update)."""
        if not newly:
            return
        if self.frozen_values is None:
            self.frozen_values = [p.detach().clone() for p in self.model.parameters()]
        index = torch.tensor(newly, device=self.frozen_values[0].device)
        for param, value in zip(self.model.parameters(), self.frozen_values, strict=True):
            value[index] = param.detach()[index]
        self.frozen[newly] = True

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        """A block of optimizer steps on the batch, each network judged for stopping after each
        step."""
        x, y = batch
        if self.full_batch:
            for _ in range(self.log_every):
                if not self._step(x, y, judge=True):
                    break
        else:  # one epoch: every network's own minibatches, `batch_size` points at a time
            for start in range(0, x.shape[1], self.batch_size):
                xb, yb = (
                    x[:, start : start + self.batch_size],
                    y[:, start : start + self.batch_size],
                )
                if not self._step(xb, yb, judge=False):
                    break
        if bool(self.frozen.all()) or self.steps >= self.max_steps:
            self.trainer.should_stop = True

    def _step(self, x: Tensor, y: Tensor, judge: bool) -> bool:
        """One optimizer step of the networks still training; False when none is left or
        the step budget is spent. Full batch (`judge`): each network judged on the loss
        measured before this step's update; minibatches: the losses summed for the epoch's
        mean, judged at its end (`on_train_epoch_end`), without a sync every step."""
        active = (~self.frozen).nonzero().flatten().tolist()
        if not active or self.steps >= self.max_steps:
            return False
        optimizer = self.optimizers()
        optimizer.zero_grad()
        losses = stacked_losses(self.outputs(x), y, self.loss)
        losses[active].sum().backward() if len(active) < self.k else losses.sum().backward()
        if self.model.padded:
            self.model.mask_gradients()
        optimizer.step()
        if self.frozen.any():
            self.model.freeze(self.frozen.to(losses.device), self.frozen_values)
        self.steps += 1
        if not judge:
            self._epoch_sum = self._epoch_sum + losses.detach() * x.shape[1]
            self._epoch_points += x.shape[1]
            for k in active:
                self.steps_done[k] += 1
            return True
        values = losses.detach().tolist()
        newly = []
        for k in active:
            self.steps_done[k] += 1
            self.last_loss[k] = values[k]
            self.stop_reason[k] = self.judge(k, values[k])
            if self.stop_reason[k]:
                newly.append(k)
        self.stop(newly)
        return True

    def on_train_start(self) -> None:
        """Log the curves' first point, before any step."""
        self.log_curve_points()

    def on_train_epoch_end(self) -> None:
        """Judge each running network on its epoch's mean loss (minibatch training) and log the
        curves."""
        if not self.full_batch and self._epoch_points:
            newly = []
            sums = torch.as_tensor(self._epoch_sum).tolist()
            for k in (~self.frozen).nonzero().flatten().tolist():
                self.last_loss[k] = sums[k] / self._epoch_points
                self.stop_reason[k] = self.judge(k, self.last_loss[k])
                if self.stop_reason[k]:
                    newly.append(k)
            self.stop(newly)
            self._epoch_sum, self._epoch_points = 0.0, 0
            if bool(self.frozen.all()):
                self.trainer.should_stop = True
        due = self.full_batch or (self.current_epoch + 1) % self.log_every == 0
        if due and not self.trainer.should_stop:
            self.log_curve_points()

    @torch.no_grad()
    def log_curve_points(self, only: Sequence[int] | None = None) -> None:
        """One point of every network's curves (of `only` those) at its current step count
        (once per count)."""
        points: list[dict[str, float]] = [{} for _ in range(self.k)]
        was_training = self.model.training
        self.model.eval()
        for split, (x, y) in self.evaluation.items():
            values = stacked_evaluation(self.outputs(x), y, self.loss, self.classification)
            for k, entry in enumerate(values):
                for name, value in entry.items():
                    points[k][f"epoch/{split}_{name}"] = value
        self.model.train(was_training)
        for k in range(self.k) if only is None else only:
            if self.logged_step[k] != self.steps_done[k]:
                step = self.steps_done[k]
                self.curves[k] += [(name, value, step) for name, value in points[k].items()]
                self.logged_step[k] = step

    def configure_optimizers(self):
        """Adam or SGD (with momentum) over every stacked network's parameters at `lr`."""
        params = self.model.parameters()
        if self.optimizer_name == "adam":
            return torch.optim.Adam(params, lr=self.lr)
        return torch.optim.SGD(params, lr=self.lr, momentum=self.momentum)


def train_networks(
    cfgs: Sequence[Mapping[str, Any]],
    models: Sequence[nn.Module],
    x_train: Tensor,
    y_train: Tensor,
    evaluation: Mapping[str, tuple[Tensor, Tensor]],
    classification: bool,
    lr: float | None = None,
    lr_key: str = "train.lr",
    centered: bool = False,
    runs: Sequence[Any] | None = None,
) -> list[TrainingResult | TrainingDiverged]:
    """Train `models` (`MLP`s; `cfgs` their jobs' configs, alike but for the width and the
    seed) in place as one stack (module docstring); each network's result, or the failure
    it would have raised alone. `runs`: each network's MLflow run (`tracking.JobRun`)."""
    t = cfgs[0]["train"]
    stack = BatchedMLP(list(models))
    task = BatchedTask(
        stack,
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
        centered=centered,
    )
    seeds = [int(cfg["seed"]) for cfg in cfgs]
    batches = StackBatches(x_train, y_train, t["batch_size"], seeds)
    trainer = build_trainer(t, logger=False, device=x_train.device)
    try:
        return fit_networks(task, batches, trainer, lr_key)
    finally:
        for run, points in zip(runs or [], task.curves, strict=False):
            if run is not None:
                run.log_points(points)


def fit_networks(
    task: BatchedTask, batches: StackBatches, trainer: pl.Trainer, lr_key: str
) -> list[TrainingResult | TrainingDiverged]:
    """Train the stack, then judge each network as `runtime.training.fit` judges one."""
    x, y = batches.x, batches.y
    with torch.no_grad():
        task.initial_loss = stacked_losses(task.outputs(x), y, task.loss).tolist()
    task.full_batch = batches.batch_size is None
    task.batch_size = batches.batch_size
    if trainer.max_steps > 0:
        task.max_steps = min(task.max_steps, trainer.max_steps)
    trainer.fit(task, train_dataloaders=batches)
    task.model.to(x.device)
    task.model.eval()
    for k in range(task.k):  # every network's trained block back into its own `MLP`
        task.model.network(k)
    if task.initial is not None:
        task.initial.to(x.device)
    with torch.no_grad():
        final = stacked_losses(task.outputs(x), y, task.loss).tolist()
    results = [
        _judge_network(task, k, final[k], x, trainer.current_epoch, lr_key) for k in range(task.k)
    ]
    # The curves end at the final parameters, for the networks that trained (as `fit` logs).
    task.log_curve_points([k for k, r in enumerate(results) if isinstance(r, TrainingResult)])
    return results


def _judge_network(
    task: BatchedTask, k: int, last: float, x: Tensor, epochs: int, lr_key: str
) -> TrainingResult | TrainingDiverged:
    initial, steps, reason = task.initial_loss[k], task.steps_done[k], task.stop_reason[k]
    where = f"after {steps} steps (lr={task.lr:g}; lower {lr_key})"
    if reason == "non_finite" or not math.isfinite(last):
        shown = last if math.isfinite(task.last_loss[k] or 0.0) else task.last_loss[k]
        return TrainingDiverged(f"training diverged: the train loss became {shown} {where}")
    factor = task.divergence_factor
    if reason == "divergence" or (factor is not None and last > factor * initial):
        grown = max(last, task.last_loss[k] or last)
        return TrainingDiverged(
            f"training diverged: the train loss grew from {initial:.4g} at initialization to "
            f"{grown:.4g}, more than train.divergence_factor={factor:g} times its initial "
            f"value, {where}"
        )
    # `fit` checks a plain network's layers; a centered one has no layers of its own to check.
    dead = None if task.centered else dead_hidden_layer(task.model.models[k], x)
    if dead is not None:
        return TrainingDiverged(
            f"dead network: every unit of hidden layer {dead} is inactive on the whole "
            f"training set {where}"
        )
    return TrainingResult(
        steps=steps,
        epochs=epochs,
        stopped_at_threshold=reason == "threshold",
        initial_loss=initial,
        final_loss=last,
    )
