"""Fully connected networks in four abc-parameterizations: standard, NTK, mean-field and μP.

An `MLP` with `depth` = L hidden layers of `width` n computes, for an input x ∈ R^D
(not normalized: the first layer's fan-in is D),

    h_0 = x,
    z_l = c_l · W_l h_{l−1} + β_l · b_l,   h_l = φ(z_l),   l = 1 … L,
    f(x) = z_{L+1} = c_{L+1} · W_{L+1} h_L + β_{L+1} · b_{L+1},

with W_l of shape [fan_out, fan_in] and (c_l, β_l) the layer's weight and bias multipliers.
Every stored entry is s·ξ with ξ ~ N(0, 1) drawn from the seed (per layer: the weight, then
the bias) and s the entry's init scale. Training updates a stored parameter θ with learning
rate η·λ_θ, η the optimizer's (`train.lr`) and λ_θ the parameter's learning-rate scale
(`MLP.lr_scales`, `MLP.param_groups`).

* ``parameterization="ntk"``: s = 1 for every W_l and b_l, c_l = w_std / √fan_in_l,
  β_l = b_std, for every layer including the readout (the same w_std and b_std everywhere);
  λ = 1.
* ``parameterization="standard"``: W_l ~ N(0, w_std² / fan_in_l), b_l ~ N(0, b_std²) entrywise
  and c_l = β_l = 1, i.e. z_l = W_l h_{l−1} + b_l; λ = 1.

Both draw the same standard normals ξ from the seed and set the standard parameters to
W = (w_std/√fan_in)·ξ_W, b = b_std·ξ_b, so the two parameterizations with the same seed, dtype
and widths compute the same function at initialization; they differ in their gradients (hence
their NTK and training dynamics). With b_std = 0 the biases exist but enter multiplied by 0
(ntk) or are initialized at 0 (standard).

The other two scale with the width relative to a base width n₀ (`base_width`), m = n / n₀;
``mup`` equals ``standard`` and ``mean_field`` equals ``ntk`` at n = n₀ (same draws, forward
and learning rates), and away from n₀ they follow the maximal-update (μP) rules. Per layer
(input: D → n; hidden: n → n; readout: n → C; "biases" are the hidden layers', the readout's
bias keeps s = b_std or 1, β = 1 or b_std and λ = 1 in both):

    ``mup`` (Yang et al. 2022, Tensor Programs V, Table 8, as microsoft/mup implements it with
    base shapes: MuReadout, MuSGD, MuAdam):

                     init scale s      multiplier c    SGD λ    Adam λ
        input W      w_std / √D        1               m        1
        hidden W     w_std / √n        1               1        1/m
        readout W    w_std / √n₀       1/m             m        1
        biases       b_std             1               m        1

    ``mean_field`` (μP written with N(0, 1) parameters like the NTK parameterization, the
    form of Bordelon & Pehlevan 2022; at depth 1 the mean-field network
    f = (1/n) Σ_i a_i φ(w_iᵀx/√D) with learning rate ∝ n of Mei, Montanari & Nguyen 2018):

                     init scale s      multiplier c    SGD λ    Adam λ
        input W      1                 w_std / √D      m        1
        hidden W     1                 w_std / √n      m        1/√m
        readout W    1                 w_std √n₀ / n   m        1
        biases       1                 β = b_std       m        1

What the parameterizations do to the effective weights W̃ = c·W (initial variance, and the
effective learning rates c²·λ under SGD and c·λ under Adam), as powers of the width n with
the fan-in D of the input layer held fixed (Yang et al. 2022, Table 3; Yang & Hu 2021, Tensor
Programs IV, abc-parameterizations W̃ = n^−a w, w ~ N(0, n^−2b), η ∝ n^−c):

                     input W           hidden W           readout W
        standard     1, 1, 1           n⁻¹, 1, 1          n⁻¹, 1, 1
        ntk          1, 1, 1           n⁻¹, n⁻¹, n^−½     n⁻¹, n⁻¹, n^−½
        mean_field,  1, n, 1           n⁻¹, 1, n⁻¹        n⁻², n⁻¹, n⁻¹
        mup

``mean_field`` and ``mup`` are thus the same parameterization up to constant factors (the
two forms of Table 3's μP related by W → W·√k, c → c/√k, λ_SGD → λ_SGD·k, λ_Adam → λ_Adam·√k);
Yang & Hu (2021) show μP is how the mean-field limit of one hidden layer extends to deeper
networks. ``standard`` with a width-independent learning rate has no infinite-width
limit (its updates grow with n), ``ntk`` has the kernel limit (Jacot et al. 2018), and the
other two keep learning features as n → ∞.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import torch
from torch import nn

from widthlab.activations import ACTIVATIONS, get_activation
from widthlab.checks import check_choice, check_int, check_nonnegative

PARAMETERIZATIONS = ("ntk", "standard", "mean_field", "mup")
# The parameterizations defined relative to a base width (module docstring).
SCALED_PARAMETERIZATIONS = ("mean_field", "mup")
# Optimizers whose learning-rate scales the parameterizations define: SGD-like (the update
# is proportional to the gradient) and Adam-like (entrywise normalized).
LR_RULES = ("sgd", "adam")
UNIT_LR = {"sgd": (1.0, 1.0), "adam": (1.0, 1.0)}


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
    """z = weight_multiplier · h Wᵀ + bias_multiplier · b, with W [out, in] and b [out].

    `lr_scales[optimizer]` = (λ_W, λ_b): the learning-rate scales of the weight and the bias
    under `optimizer` ("sgd" or "adam"; 1 and 1 unless given)."""

    def __init__(
        self,
        weight: torch.Tensor,
        bias: torch.Tensor,
        weight_multiplier: float,
        bias_multiplier: float,
        lr_scales: dict[str, tuple[float, float]] | None = None,
    ) -> None:
        super().__init__()
        self.weight = nn.Parameter(weight)
        self.bias = nn.Parameter(bias)
        self.weight_multiplier = float(weight_multiplier)
        self.bias_multiplier = float(bias_multiplier)
        scales = UNIT_LR if lr_scales is None else lr_scales
        self.lr_scales = {k: (float(w), float(b)) for k, (w, b) in scales.items()}

    @property
    def in_features(self) -> int:
        """The number of inputs."""
        return self.weight.shape[1]

    @property
    def out_features(self) -> int:
        """The number of outputs."""
        return self.weight.shape[0]

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        """The layer's affine map of `h` (the equation is in the class docstring)."""
        # Multiplying the bias by 0 (not dropping it) keeps the parameter in the graph, so its
        # NTK contribution is an honest 0 rather than a missing term. A multiplier of 1 is
        # skipped: 1·b is b bit for bit, and so is its gradient, without the two operations.
        bias = self.bias if self.bias_multiplier == 1.0 else self.bias_multiplier * self.bias
        return torch.addmm(bias, h, self.weight.T, alpha=self.weight_multiplier)

    def extra_repr(self) -> str:
        """Sizes and multipliers, for the module's repr."""
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, "
            f"weight_multiplier={self.weight_multiplier:.6g}, "
            f"bias_multiplier={self.bias_multiplier:.6g}"
            + (f", lr_scales={self.lr_scales}" if self.lr_scales != UNIT_LR else "")
        )


def scaled_layer(
    parameterization: str,
    role: str,
    xi_w: torch.Tensor,
    xi_b: torch.Tensor,
    width: int,
    base_width: int,
    w_std: float,
    b_std: float,
) -> DenseLayer:
    """A `mean_field` or `mup` layer from its draws ξ (the tables of the module docstring).

    `role`: "input" (fan-in D), "hidden" or "readout"."""
    m = width / base_width
    fan_in = xi_w.shape[1]
    hidden_bias = role != "readout"
    sgd_b = m if hidden_bias else 1.0
    if parameterization == "mup":
        if role == "readout":
            w_scale, c, sgd_w, adam_w = w_std / math.sqrt(base_width), 1.0 / m, m, 1.0
        elif role == "hidden":
            w_scale, c, sgd_w, adam_w = w_std / math.sqrt(fan_in), 1.0, 1.0, 1.0 / m
        else:
            w_scale, c, sgd_w, adam_w = w_std / math.sqrt(fan_in), 1.0, m, 1.0
        return DenseLayer(
            xi_w * w_scale, xi_b * b_std, c, 1.0, {"sgd": (sgd_w, sgd_b), "adam": (adam_w, 1.0)}
        )
    if role == "readout":
        c, adam_w = w_std * math.sqrt(base_width) / width, 1.0
    elif role == "hidden":
        c, adam_w = w_std / math.sqrt(fan_in), 1.0 / math.sqrt(m)
    else:
        c, adam_w = w_std / math.sqrt(fan_in), 1.0
    return DenseLayer(xi_w, xi_b, c, b_std, {"sgd": (m, sgd_b), "adam": (adam_w, 1.0)})


class MLP(nn.Module):
    """Fully connected network: `depth` hidden layers of `width`, then a linear readout.

    See the module docstring for the exact equations of the parameterizations. `depth` is the
    number of hidden layers: depth 1 is Dense–φ–Dense. `seed` is an int (a fresh CPU
    `torch.Generator` seeded with it), a `torch.Generator` (consumed), or None (torch's global
    generator). Parameters are drawn on the CPU in `dtype` and then moved to `device`, so the
    same seed and dtype give identical parameters on every device. The draw order is
    W_1, b_1, W_2, b_2, …, W_{L+1}, b_{L+1}, each entry N(0, 1) before scaling.
    `base_width` n₀ is required by ``mean_field`` and ``mup`` and ignored by the others.
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
        base_width: int | None = None,
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
        scaled = parameterization in SCALED_PARAMETERIZATIONS
        self.base_width = check_int("base_width", base_width) if scaled else None

        if isinstance(seed, torch.Generator):
            generator: torch.Generator | None = seed
        elif seed is None:
            generator = None
        else:
            generator = torch.Generator().manual_seed(check_int("seed", seed, 0))

        fans = [self.in_features] + [self.width] * self.depth + [self.out_features]
        layers = []
        for index, (fan_in, fan_out) in enumerate(itertools.pairwise(fans)):
            xi_w = torch.randn(fan_out, fan_in, generator=generator, dtype=dtype)
            xi_b = torch.randn(fan_out, generator=generator, dtype=dtype)
            scale = self.w_std / math.sqrt(fan_in)
            if parameterization == "ntk":
                layer = DenseLayer(xi_w, xi_b, scale, self.b_std)
            elif parameterization == "standard":
                layer = DenseLayer(xi_w * scale, xi_b * self.b_std, 1.0, 1.0)
            else:
                role = "input" if index == 0 else "readout" if index == self.depth else "hidden"
                layer = scaled_layer(
                    parameterization,
                    role,
                    xi_w,
                    xi_b,
                    self.width,
                    self.base_width,
                    self.w_std,
                    self.b_std,
                )
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

    def lr_scales(self, optimizer: str) -> list[float]:
        """λ_θ of every parameter, in `parameters()` order, under `optimizer` ("sgd" or
        "adam"; the tables of the module docstring): the optimizer's step on θ uses η·λ_θ."""
        check_choice("optimizer", optimizer, LR_RULES)
        return [s for layer in self.layers for s in layer.lr_scales[optimizer]]

    def param_groups(self, lr: float, optimizer: str) -> list[dict]:
        """torch.optim parameter groups with learning rates lr·λ_θ: one group per distinct
        λ, in order of first appearance (a single group of every parameter, with `lr`
        itself, for ``standard`` and ``ntk``)."""
        groups: dict[float, list[nn.Parameter]] = {}
        for p, scale in zip(self.parameters(), self.lr_scales(optimizer), strict=True):
            groups.setdefault(scale, []).append(p)
        return [
            {"params": params, "lr": lr if scale == 1.0 else lr * scale}
            for scale, params in groups.items()
        ]

    def num_parameters(self) -> int:
        """P = Σ_l fan_out_l·(fan_in_l + 1): every weight and bias, including zero-multiplied."""
        return sum(p.numel() for p in self.parameters())

    def extra_repr(self) -> str:
        """Activation, parameterization and init scales, for the module's repr."""
        return (
            f"activation={self.activation!r}, parameterization={self.parameterization!r}, "
            f"w_std={self.w_std:.6g}, b_std={self.b_std:.6g}"
            + (f", base_width={self.base_width}" if self.base_width is not None else "")
        )
