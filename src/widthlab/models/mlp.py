"""Fully connected networks in the NTK and the standard parameterization.

An `MLP` with `depth` = L hidden layers of `width` n computes, for an input x ∈ R^D
(not normalized: the first layer's fan-in is D),

    h_0 = x,
    z_l = c_l · W_l h_{l−1} + β_l · b_l,   h_l = φ(z_l),   l = 1 … L,
    f(x) = z_{L+1} = c_{L+1} · W_{L+1} h_L + β_{L+1} · b_{L+1},

with W_l of shape [fan_out, fan_in] and (c_l, β_l) the layer's weight and bias multipliers:

* ``parameterization="ntk"``: every entry of every W_l and b_l is drawn i.i.d. N(0, 1) and
  c_l = w_std / √fan_in_l, β_l = b_std, for every layer including the readout (the same w_std
  and b_std everywhere).
* ``parameterization="standard"``: W_l ~ N(0, w_std² / fan_in_l), b_l ~ N(0, b_std²) entrywise
  and c_l = β_l = 1, i.e. z_l = W_l h_{l−1} + b_l.

Both draw the same standard normals ξ (per layer: the weight, then the bias) from the seed and
set the standard parameters to W = (w_std/√fan_in)·ξ_W, b = b_std·ξ_b, so the two
parameterizations with the same seed, dtype and widths compute the same function at
initialization; they differ in their gradients (hence their NTK and training dynamics).
With b_std = 0 the biases exist but enter multiplied by 0 (ntk) or are initialized at 0
(standard).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import torch
from torch import nn

from widthlab.activations import ACTIVATIONS, get_activation
from widthlab.checks import check_choice, check_int, check_nonnegative

PARAMETERIZATIONS = ("ntk", "standard")


@dataclass
class ForwardCache:
    """What a forward pass leaves behind, for layer-by-layer kernels.

    layer_inputs[l] = h_l for l = 0 … L (h_0 = x; layer l+1's input), each [n, fan_in];
    pre_activations[l] = z_{l+1} for the hidden layers only, each [n, width];
    output = f(x), [n, out_features].
    """

    layer_inputs: list[torch.Tensor]
    pre_activations: list[torch.Tensor]
    output: torch.Tensor


class DenseLayer(nn.Module):
    """z = weight_multiplier · h Wᵀ + bias_multiplier · b, with W [out, in] and b [out]."""

    def __init__(
        self,
        weight: torch.Tensor,
        bias: torch.Tensor,
        weight_multiplier: float,
        bias_multiplier: float,
    ) -> None:
        super().__init__()
        self.weight = nn.Parameter(weight)
        self.bias = nn.Parameter(bias)
        self.weight_multiplier = float(weight_multiplier)
        self.bias_multiplier = float(bias_multiplier)

    @property
    def in_features(self) -> int:
        return self.weight.shape[1]

    @property
    def out_features(self) -> int:
        return self.weight.shape[0]

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        # Multiplying the bias by 0 (not dropping it) keeps the parameter in the graph, so its
        # NTK contribution is an honest 0 rather than a missing term.
        return torch.addmm(
            self.bias_multiplier * self.bias,
            h,
            self.weight.T,
            alpha=self.weight_multiplier,
        )

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, "
            f"weight_multiplier={self.weight_multiplier:.6g}, "
            f"bias_multiplier={self.bias_multiplier:.6g}"
        )


class MLP(nn.Module):
    """Fully connected network: `depth` hidden layers of `width`, then a linear readout.

    See the module docstring for the exact equations of both parameterizations. `depth` is the
    number of hidden layers: depth 1 is Dense–φ–Dense. `seed` is an int (a fresh CPU
    `torch.Generator` seeded with it), a `torch.Generator` (consumed), or None (torch's global
    generator). Parameters are drawn on the CPU in `dtype` and then moved to `device`, so the
    same seed and dtype give identical parameters on every device. The draw order is
    W_1, b_1, W_2, b_2, …, W_{L+1}, b_{L+1}, each entry N(0, 1) before scaling.
    """

    def __init__(
        self,
        in_features: int,
        width: int,
        depth: int,
        out_features: int = 1,
        activation: str = "relu",
        parameterization: str = "ntk",
        w_std: float = 1.0,
        b_std: float = 0.0,
        seed: int | torch.Generator | None = None,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str | None = None,
    ) -> None:
        super().__init__()
        self.in_features = check_int("in_features", in_features)
        self.width = check_int("width", width)
        self.depth = check_int("depth", depth)
        self.out_features = check_int("out_features", out_features)
        check_choice("activation", activation, ACTIVATIONS)
        check_choice("parameterization", parameterization, PARAMETERIZATIONS)
        self.w_std = check_nonnegative("w_std", w_std)
        self.b_std = check_nonnegative("b_std", b_std)
        self.activation = activation
        self.phi = get_activation(activation)
        self.parameterization = parameterization

        if isinstance(seed, torch.Generator):
            generator: torch.Generator | None = seed
        elif seed is None:
            generator = None
        else:
            generator = torch.Generator().manual_seed(check_int("seed", seed, 0))

        fans = [self.in_features] + [self.width] * self.depth + [self.out_features]
        layers = []
        for fan_in, fan_out in itertools.pairwise(fans):
            xi_w = torch.randn(fan_out, fan_in, generator=generator, dtype=dtype)
            xi_b = torch.randn(fan_out, generator=generator, dtype=dtype)
            scale = self.w_std / math.sqrt(fan_in)
            if parameterization == "ntk":
                layer = DenseLayer(xi_w, xi_b, scale, self.b_std)
            else:
                layer = DenseLayer(xi_w * scale, xi_b * self.b_std, 1.0, 1.0)
            layers.append(layer)
        self.layers = nn.ModuleList(layers).to(device=device)

    def set_activation(self, activation: str) -> MLP:
        """Use `activation` from now on, keeping every parameter (they do not depend on it:
        the same seed draws the same ξ for every activation); returns the network."""
        check_choice("activation", activation, ACTIVATIONS)
        self.activation, self.phi = activation, get_activation(activation)
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """f(x), [n, out_features] for x of shape [n, in_features]."""
        h = x
        for layer in self.layers[:-1]:
            h = self.phi(layer(h))
        return self.layers[-1](h)

    def forward_with_cache(self, x: torch.Tensor) -> ForwardCache:
        """f(x) together with every layer input h_l and hidden pre-activation z_l."""
        layer_inputs = [x]
        pre_activations = []
        h = x
        for layer in self.layers[:-1]:
            z = layer(h)
            h = self.phi(z)
            pre_activations.append(z)
            layer_inputs.append(h)
        return ForwardCache(layer_inputs, pre_activations, self.layers[-1](h))

    def num_parameters(self) -> int:
        """P = Σ_l fan_out_l·(fan_in_l + 1): every weight and bias, including zero-multiplied."""
        return sum(p.numel() for p in self.parameters())

    def extra_repr(self) -> str:
        return (
            f"activation={self.activation!r}, parameterization={self.parameterization!r}, "
            f"w_std={self.w_std:.6g}, b_std={self.b_std:.6g}"
        )
