"""K copies of one MLP trained side by side: batched matrix products, a hand-written backward
pass, and per-network learning rates.

A learning-rate sweep trains the same network (one seed) at K learning rates; a coordinate
check trains K seeds at one. Training them as K separate `MLP`s costs K Python loops and, at
the small batches such sweeps use, K passes of memory traffic per parameter for autograd's
gradient tensors and the optimizer. `StackedMLP` holds the K networks' parameters as
[K, fan_out, fan_in] weights and [K, fan_out] biases, runs the forward pass with `bmm`, and
takes each gradient step without building a gradient tensor where SGD allows it:

    W_l ← W_l − η_k λ_{W_l} c_l · δ_lᵀ h_{l−1}     (one `baddbmm_` per layer),
    b_l ← b_l − η_k λ_{b_l} β_l · Σ_batch δ_l,

with the equations of `widthlab.models.mlp` (z_l = c_l W_l h_{l−1} + β_l b_l, h_l = φ(z_l)), η_k
network k's learning rate, λ the parameterization's learning-rate scales
(`MLP.lr_scales`), and δ_l = ∂L/∂z_l by backpropagation,

    δ_{L+1} = ∂L/∂f,   δ_l = (c_{l+1} δ_{l+1} W_{l+1}) ⊙ φ'(z_l),

all δ computed from the weights before the step. The losses are those of `widthlab.losses`:
squared, L = (1/2B) Σ_i ‖f(x_i) − y_i‖², ∂L/∂f = (f − y)/B; softmax cross-entropy,
∂L/∂f = (softmax(f) − y)/B with one-hot y. Adam is torch.optim.Adam's update written out
(β₁ = 0.9, β₂ = 0.999, ε = 1e-8, no weight decay, bias-corrected moments), per network:

    m ← β₁ m + (1 − β₁) g,  v ← β₂ v + (1 − β₂) g²,
    θ ← θ − (η_k λ / (1 − β₁^t)) · m / (√v / √(1 − β₂^t) + ε).

Every network of the stack sees the same minibatches, so one step of the stack is exactly
one step of each network trained alone (`tests/test_stacked_mlp.py` checks it against
torch.optim and `widthlab.runtime.training.train_network`). A network whose batch loss
becomes non-finite or exceeds `divergence_factor` times its first batch loss is marked
diverged; it keeps being stepped (its slice of every tensor is its own, so it cannot
contaminate the others) and its numbers are reported as missing by the caller.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import torch

from widthlab.activations import get_activation
from widthlab.checks import check_choice, check_int
from widthlab.empirical import activation_derivative_
from widthlab.losses import LOSSES
from widthlab.models.mlp import LR_RULES, MLP

ADAM_BETAS = (0.9, 0.999)
ADAM_EPS = 1e-8


@dataclass
class StackedCache:
    """One forward pass of the stack: the hidden pre-activations z_l and activations h_l
    (l = 1 … L, each [K, n, width]) and the outputs f, [K, n, out_features]."""

    pre_activations: list[torch.Tensor]
    hidden: list[torch.Tensor]
    output: torch.Tensor


class StackedMLP:
    """K networks of one architecture and parameterization, parameters stacked along a
    leading axis of size K (module docstring). Built from `MLP`s with `from_models` (one per
    network: e.g. K seeds) or `copies` (K copies of one network: e.g. K learning rates)."""

    def __init__(self, models: Sequence[MLP]) -> None:
        if not models:
            raise ValueError("a stack needs at least one network")
        template = models[0]
        for model in models[1:]:
            same = (
                model.parameterization == template.parameterization
                and model.activation == template.activation
                and [tuple(p.shape) for p in model.parameters()]
                == [tuple(p.shape) for p in template.parameters()]
                and all(
                    (a.weight_multiplier, a.bias_multiplier, a.lr_scales)
                    == (b.weight_multiplier, b.bias_multiplier, b.lr_scales)
                    for a, b in zip(model.layers, template.layers, strict=True)
                )
            )
            if not same:
                raise ValueError("the networks of a stack must share architecture and scales")
        self.template = template
        self.activation = template.activation
        self.phi = get_activation(template.activation)
        self.weights = [
            torch.stack([m.layers[i].weight.detach() for m in models]).clone()
            for i in range(len(template.layers))
        ]
        self.biases = [
            torch.stack([m.layers[i].bias.detach() for m in models]).clone()
            for i in range(len(template.layers))
        ]
        self.weight_multipliers = [layer.weight_multiplier for layer in template.layers]
        self.bias_multipliers = [layer.bias_multiplier for layer in template.layers]

    @classmethod
    def from_models(cls, models: Sequence[MLP]) -> StackedMLP:
        """The stack of `models`, their parameters copied."""
        return cls(models)

    @classmethod
    def copies(cls, model: MLP, k: int) -> StackedMLP:
        """A stack of `k` copies of `model`."""
        return cls([model] * check_int("k", k))

    @property
    def size(self) -> int:
        """K, the number of networks."""
        return self.weights[0].shape[0]

    def parameters(self) -> list[torch.Tensor]:
        """Every stacked parameter in `MLP.parameters()` order: W_1, b_1, W_2, b_2, …"""
        return [p for pair in zip(self.weights, self.biases, strict=True) for p in pair]

    def select(self, keep: torch.Tensor) -> None:
        """Keep only the networks where the boolean mask `keep` [K] is true, in order."""
        self.weights = [w[keep] for w in self.weights]
        self.biases = [b[keep] for b in self.biases]

    def network(self, k: int) -> MLP:
        """Network k as an `MLP` (a copy: training the stack further does not change it)."""
        model = copy.deepcopy(self.template)
        with torch.no_grad():
            for layer, w, b in zip(model.layers, self.weights, self.biases, strict=True):
                layer.weight.copy_(w[k])
                layer.bias.copy_(b[k])
        return model

    def forward_with_cache(self, x: torch.Tensor) -> StackedCache:
        """Every network on x, [n, D] (shared) or [K, n, D] (one set per network)."""
        h = x.expand(self.size, *x.shape) if x.ndim == 2 else x
        pre, hidden = [], []
        last = len(self.weights) - 1
        for index, (w, b) in enumerate(zip(self.weights, self.biases, strict=True)):
            z = torch.baddbmm(
                (self.bias_multipliers[index] * b).unsqueeze(1),
                h,
                w.transpose(1, 2),
                alpha=self.weight_multipliers[index],
            )
            if index == last:
                return StackedCache(pre, hidden, z)
            h = self.phi(z)
            pre.append(z)
            hidden.append(h)
        raise AssertionError("unreachable")

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_with_cache(x).output


def batch_losses(output: torch.Tensor, target: torch.Tensor, loss: str) -> torch.Tensor:
    """The loss of each network, [K], on its outputs [K, n, C] against targets [n, C] (the
    conventions of `widthlab.losses.loss_value`)."""
    if loss == "squared":
        return 0.5 * (output - target).square().sum(dim=2).mean(dim=1)
    if loss == "cross_entropy":
        labels = target.argmax(dim=1)
        log_p = torch.log_softmax(output, dim=2)
        return -log_p[:, torch.arange(len(labels), device=labels.device), labels].mean(dim=1)
    raise ValueError(f"loss={loss!r}; allowed: {list(LOSSES)}")


def output_gradient(output: torch.Tensor, target: torch.Tensor, loss: str) -> torch.Tensor:
    """∂L/∂f for each network, [K, n, C] (module docstring)."""
    n = output.shape[1]
    if loss == "squared":
        return (output - target) / n
    if loss == "cross_entropy":
        return (torch.softmax(output, dim=2) - target) / n
    raise ValueError(f"loss={loss!r}; allowed: {list(LOSSES)}")


class StackedOptimizer:
    """SGD (no momentum) or Adam on a `StackedMLP`, network k at learning rate
    lrs[k] · λ_θ for each parameter θ (module docstring)."""

    def __init__(
        self,
        stack: StackedMLP,
        optimizer: str,
        lrs: Sequence[float] | torch.Tensor,
        lr_scales: Sequence[float],
    ) -> None:
        self.stack = stack
        self.optimizer = check_choice("optimizer", optimizer, LR_RULES)
        reference = stack.weights[0]
        self.lrs = torch.as_tensor(lrs, dtype=reference.dtype, device=reference.device)
        if self.lrs.shape != (stack.size,):
            raise ValueError(f"lrs has shape {tuple(self.lrs.shape)}; expected ({stack.size},)")
        self.lr_scales = [float(s) for s in lr_scales]
        if len(self.lr_scales) != 2 * len(stack.weights):
            raise ValueError("lr_scales needs one entry per parameter tensor")
        self.steps = 0
        if self.optimizer == "adam":
            self.moments = [(torch.zeros_like(p), torch.zeros_like(p)) for p in stack.parameters()]

    def step(self, cache: StackedCache, x: torch.Tensor, output_grad: torch.Tensor) -> None:
        """One step from the forward pass `cache` on inputs x ([n, D] or [K, n, D]) and
        ∂L/∂f: every δ first (from the current weights), then every update."""
        s = self.stack
        inputs = [x.expand(s.size, *x.shape) if x.ndim == 2 else x, *cache.hidden]
        deltas = [output_grad]
        for index in range(len(s.weights) - 1, 0, -1):
            back = torch.bmm(deltas[0], s.weights[index]).mul_(s.weight_multipliers[index])
            derivative = activation_derivative_(
                cache.pre_activations[index - 1].clone(), s.activation
            )
            deltas.insert(0, back.mul_(derivative))
        self.steps += 1
        for index, (delta, h) in enumerate(zip(deltas, inputs, strict=True)):
            w_scale, b_scale = self.lr_scales[2 * index], self.lr_scales[2 * index + 1]
            weight, bias = s.weights[index], s.biases[index]
            c, beta = s.weight_multipliers[index], s.bias_multipliers[index]
            if self.optimizer == "sgd":
                rate = (self.lrs * (w_scale * c)).view(-1, 1, 1)
                weight.baddbmm_((delta * rate).transpose(1, 2), h, alpha=-1.0)
                if beta != 0.0:
                    rate_b = (self.lrs * (b_scale * beta)).view(-1, 1)
                    bias.sub_(delta.sum(dim=1) * rate_b)
                continue
            grad_w = torch.bmm(delta.transpose(1, 2), h).mul_(c)
            grad_b = delta.sum(dim=1).mul_(beta)
            self._adam(2 * index, weight, grad_w, w_scale)
            self._adam(2 * index + 1, bias, grad_b, b_scale)

    def select(self, keep: torch.Tensor) -> None:
        """Follow `StackedMLP.select`: keep the learning rates and moments of `keep`."""
        keep = keep.to(self.lrs.device)
        self.lrs = self.lrs[keep]
        if self.optimizer == "adam":
            self.moments = [(m[keep], v[keep]) for m, v in self.moments]

    def _adam(self, slot: int, param: torch.Tensor, grad: torch.Tensor, scale: float) -> None:
        beta1, beta2 = ADAM_BETAS
        exp_avg, exp_avg_sq = self.moments[slot]
        exp_avg.lerp_(grad, 1 - beta1)
        exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
        correction1 = 1 - beta1**self.steps
        correction2_sqrt = math.sqrt(1 - beta2**self.steps)
        denom = (exp_avg_sq.sqrt() / correction2_sqrt).add_(ADAM_EPS)
        step_size = (self.lrs * scale / correction1).view(-1, *([1] * (param.ndim - 1)))
        param.sub_(step_size * (exp_avg / denom))


@dataclass
class StackedTraining:
    """What `train_stacked` returns, per network of the stack it started with: the loss on
    each step's batch before the step ([steps, K]; NaN after a diverged network was
    dropped), whether it diverged, and which networks the stack still holds (`kept`, the
    original indices in order)."""

    batch_losses: torch.Tensor
    diverged: torch.Tensor
    kept: list[int]


def train_stacked(
    stack: StackedMLP,
    batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
    loss: str,
    optimizer: str,
    lrs: Sequence[float] | torch.Tensor,
    lr_scales: Sequence[float],
    steps: int,
    divergence_factor: float = math.inf,
    on_forward: Callable[[int, torch.Tensor, StackedCache], None] | None = None,
    drop_diverged: bool = False,
) -> StackedTraining:
    """`steps` optimizer steps of every network of `stack`, in place (module docstring).

    `batches` is iterated again from the start whenever it runs out (one pass = one epoch,
    as Lightning does with `widthlab.runtime.training.TensorBatches`); each (x, y) batch is
    shared by all networks. `on_forward(t, x, cache)` sees the forward pass of step t (at the
    parameters after t steps) before its update, t = 0 … steps − 1. With `drop_diverged` a
    network is removed from the stack after the step in which it diverged (a learning-rate
    sweep stops paying for the rates that blew up); `kept` says which remain.
    """
    check_int("steps", steps)
    check_choice("loss", loss, LOSSES)
    opt = StackedOptimizer(stack, optimizer, lrs, lr_scales)
    history = torch.full((steps, stack.size), math.nan, dtype=torch.float64)
    diverged = torch.zeros(stack.size, dtype=torch.bool)
    alive = torch.arange(stack.size)
    first: torch.Tensor | None = None
    t = 0
    with torch.no_grad():
        while t < steps and alive.numel():
            for x, y in batches:
                if t == steps or not alive.numel():
                    break
                cache = stack.forward_with_cache(x)
                if on_forward is not None:
                    on_forward(t, x, cache)
                values = batch_losses(cache.output, y, loss).double().cpu()
                history[t, alive] = values
                first = history[0] if first is None else first
                blown = ~torch.isfinite(values) | (values > divergence_factor * first[alive])
                diverged[alive] |= blown
                opt.step(cache, x, output_gradient(cache.output, y, loss))
                t += 1
                if drop_diverged and bool(blown.any()):
                    keep = ~blown
                    stack.select(keep.to(stack.weights[0].device))
                    opt.select(keep)
                    alive = alive[keep]
    return StackedTraining(history, diverged, alive.tolist())


def coordinate_check(
    stack: StackedMLP,
    x: torch.Tensor,
    y: torch.Tensor,
    loss: str,
    optimizer: str,
    lrs: Sequence[float] | torch.Tensor,
    lr_scales: Sequence[float],
    steps: int,
) -> dict[str, torch.Tensor]:
    """The coordinate check of Yang et al. 2022 (microsoft/mup's `get_coord_data`),
    on one fixed batch (x, y) trained on for `steps` steps.

    For t = 0 … steps (the parameters after t steps) and each network k, the mean absolute
    coordinate (1/(n·width)) Σ |·| of every hidden layer's activations h_l on x ("h<l>"), of
    the outputs f ("output", mean over the n·C entries) and of their change since
    initialization f_t − f_0 ("output_change"): tensors [steps + 1, K], float64. In a
    parameterization with a width limit each of these is Θ(1) in width; when one grows with
    width the network blows up as it gets wider.
    """
    sizes: dict[str, list[torch.Tensor]] = {}
    start: list[torch.Tensor] = []

    def record(t: int, _: torch.Tensor, cache: StackedCache) -> None:
        if not start:
            start.append(cache.output.clone())
        for index, h in enumerate(cache.hidden, start=1):
            sizes.setdefault(f"h{index}", []).append(h.abs().mean(dim=(1, 2)).double())
        sizes.setdefault("output", []).append(cache.output.abs().mean(dim=(1, 2)).double())
        change = (cache.output - start[0]).abs().mean(dim=(1, 2)).double()
        sizes.setdefault("output_change", []).append(change)

    train_stacked(stack, [(x, y)], loss, optimizer, lrs, lr_scales, steps, on_forward=record)
    with torch.no_grad():
        record(steps, x, stack.forward_with_cache(x))
    return {name: torch.stack(values).cpu() for name, values in sizes.items()}


__all__ = [
    "StackedCache",
    "StackedMLP",
    "StackedOptimizer",
    "StackedTraining",
    "batch_losses",
    "coordinate_check",
    "output_gradient",
    "train_stacked",
]
