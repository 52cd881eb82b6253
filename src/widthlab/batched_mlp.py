"""K networks of one architecture family trained as one computation: `MLP`s of the same depth,
input and output sizes, activation and parameterization, possibly of different widths, their
parameters stacked along a leading axis of size K.

Network k's layer l holds W_l^(k) [fan_out, fan_in] and b_l^(k) [fan_out]; the stack holds

    W_l [K, F_out, F_in],   b_l [K, F_out],

with F the largest width of the stack: network k's parameters fill the top-left block and
the rest is zero (padding). The forward pass is `MLP`'s equation (`widthlab.models.mlp`) for
every network at once, with batched matrix products,

    z_l = c_l^(k) · h_{l−1} W_lᵀ + β_l^(k) · b_l,   h_l = φ(z_l),   f = z_{L+1},

c and β each network's own multipliers (under the NTK parameterization c = w_std/√fan_in
depends on the network's width). A network's inputs are its own ([K, B, D]: its own
minibatch) or shared ([B, D]: the full batch).

Why padding is exact: a padded unit has zero incoming weights and bias, so its
pre-activation is exactly 0, and zero outgoing weights, so it adds exactly 0 to the next
layer whatever φ(0) is; the forward pass of the real units is the network's own. Gradients:
the loss of the stack is the sum of the networks' losses, and network k's parameters enter
only its own loss, so their gradient is its own loss's gradient; the padded entries'
gradients (0, or δ·φ(0) for a φ with φ(0) ≠ 0) are set to exactly 0 by `mask_gradients`
before each step, so an elementwise optimizer (SGD with momentum, Adam) leaves them at 0 and
steps the real entries exactly as it steps each network alone. Every number differs from a
network trained alone only in how a matrix product sums (a batched product, and padded
contractions that add exact zeros): rounding, checked to 1e-10 relative in float64 after
training in tests/test_batched_training.py.

`network(k)` writes network k's trained block back into its own `MLP` (the one the stack
was built from) and returns it, so everything measured after training is measured on a
plain network, as for a network trained alone.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import torch
from torch import nn

from widthlab.models.mlp import MLP, UNIT_LR


class BatchedMLP(nn.Module):
    """K `MLP`s as one stacked, zero-padded network (module docstring)."""

    def __init__(self, models: Sequence[MLP]) -> None:
        super().__init__()
        if not models:
            raise ValueError("a stack needs at least one network")
        first = models[0]
        for model in models[1:]:
            same = (model.in_features, model.out_features, model.depth, model.activation,
                    model.parameterization)  # fmt: skip
            if same != (first.in_features, first.out_features, first.depth, first.activation,
                        first.parameterization):  # fmt: skip
                raise ValueError("a stack holds networks of one depth, input and output size, "
                                 "activation and parameterization")  # fmt: skip
        for model in models:
            for layer in model.layers:
                if layer.lr_scales != UNIT_LR:
                    raise ValueError(
                        "a stack steps every parameter at one learning rate: networks with "
                        "per-parameter learning-rate scales (mean_field, mup) cannot share it"
                    )
        self.models = list(models)
        self.activation = first.activation
        self.phi = first.phi
        self.widths = [m.width for m in models]
        width = max(self.widths)
        fans = [first.in_features] + [width] * first.depth + [first.out_features]
        dtype, device = first.layers[0].weight.dtype, first.layers[0].weight.device
        k = len(models)
        self.weights, self.biases = nn.ParameterList(), nn.ParameterList()
        for index, (fan_in, fan_out) in enumerate(itertools.pairwise(fans)):
            weight = torch.zeros(k, fan_out, fan_in, dtype=dtype, device=device)
            bias = torch.zeros(k, fan_out, dtype=dtype, device=device)
            mask = torch.zeros(k, fan_out, fan_in, dtype=torch.bool, device=device)
            for j, model in enumerate(models):
                layer = model.layers[index]
                out, inp = layer.weight.shape
                weight[j, :out, :inp] = layer.weight.detach()
                bias[j, :out] = layer.bias.detach()
                mask[j, :out, :inp] = True
            self.weights.append(nn.Parameter(weight))
            self.biases.append(nn.Parameter(bias))
            self.register_buffer(f"weight_mask_{index}", mask)
            self.register_buffer(f"bias_mask_{index}", mask[:, :, 0].clone())
            c = [float(m.layers[index].weight_multiplier) for m in models]
            beta = [float(m.layers[index].bias_multiplier) for m in models]
            self.register_buffer(f"c_{index}", torch.tensor(c, dtype=dtype, device=device))
            self.register_buffer(f"beta_{index}", torch.tensor(beta, dtype=dtype, device=device))
        self.depth = first.depth
        self.padded = len(set(self.widths)) > 1  # padded entries to keep at 0 (module doc)
        self._scalars = [
            (self._same(getattr(self, f"c_{i}")), self._same(getattr(self, f"beta_{i}")))
            for i in range(self.depth + 1)
        ]

    @staticmethod
    def _same(values: torch.Tensor) -> float | None:
        """The common value of a per-network multiplier, or None when networks differ."""
        first = float(values[0])
        return first if bool((values == first).all()) else None

    def layer(self, index: int, h: torch.Tensor) -> torch.Tensor:
        """z_l of every network for inputs h [K, B, F_in] (module docstring)."""
        weight, bias = self.weights[index], self.biases[index]
        c, beta = self._scalars[index]
        if beta is None:
            bias = getattr(self, f"beta_{index}")[:, None] * bias
        elif beta != 1.0:  # a multiplier of 1 is skipped, as `DenseLayer` skips it
            bias = beta * bias
        if c is not None:
            return torch.baddbmm(bias.unsqueeze(1), h, weight.transpose(1, 2), alpha=c)
        z = torch.bmm(h, weight.transpose(1, 2)) * getattr(self, f"c_{index}")[:, None, None]
        return z + bias.unsqueeze(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """f of every network, [K, B, out]: x [K, B, D] (each its own) or [B, D] (shared)."""
        h = x if x.dim() == 3 else x.unsqueeze(0).expand(len(self.models), -1, -1)
        for index in range(self.depth):
            h = self.phi(self.layer(index, h))
        return self.layer(self.depth, h)

    def mask_gradients(self) -> None:
        """Set the padded entries' gradients to exactly 0 (module docstring)."""
        for index in range(self.depth + 1):
            for param, name in ((self.weights[index], "weight"), (self.biases[index], "bias")):
                if param.grad is not None:
                    param.grad.masked_fill_(~getattr(self, f"{name}_mask_{index}"), 0.0)

    @torch.no_grad()
    def freeze(self, frozen: torch.Tensor, values: Sequence[torch.Tensor]) -> None:
        """Put the networks where `frozen` ([K] bool) is true back at `values` (one tensor per
        parameter, as `parameters()` orders them): a stopped network does not move."""
        for param, value in zip(self.parameters(), values, strict=True):
            param.copy_(torch.where(frozen.view(-1, *[1] * (param.dim() - 1)), value, param))

    @torch.no_grad()
    def network(self, k: int) -> MLP:
        """Network k as a plain `MLP`: its trained block written into the network it came
        from (module docstring)."""
        model = self.models[k]
        for index, layer in enumerate(model.layers):
            out, inp = layer.weight.shape
            layer.weight.copy_(self.weights[index][k, :out, :inp])
            layer.bias.copy_(self.biases[index][k, :out])
        return model
