"""A network trained as its change since initialization (centering, Lee et al. 2020).

`CenteredNetwork(f)` computes

    f_c(x; θ) = f(x; θ) − f(x; θ₀),

θ the parameters of `f` (trained), θ₀ a frozen copy of them taken when it is built. f_c has
the same trainable parameters and the same Jacobian ∂f/∂θ as f, hence the same NTK and the
same gradient-descent step, but it starts from f_c(x; θ₀) = 0 instead of the random function
f(x; θ₀). Lee et al. (2020, "Finite versus infinite neural networks: an empirical study")
call this centering. Trained by full-batch gradient descent on the squared loss, an
NTK-parameterized f_c therefore tends, as the width grows, to the deterministic NTK predictor
Θ(x, X) g_T(Θ) y (`widthlab.gradient_descent.linearized_prediction` with the residual y),
with no term from a random f₀.
"""

from __future__ import annotations

import copy

import torch
from torch import nn


class CenteredNetwork(nn.Module):
    """f(x; θ) − f(x; θ₀) for a network f (module docstring); θ₀ is frozen at construction."""

    def __init__(self, network: nn.Module) -> None:
        super().__init__()
        self.network = network
        self.initial = copy.deepcopy(network).requires_grad_(False)

    @property
    def out_features(self) -> int:
        """The wrapped network's number of outputs."""
        return self.network.out_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """f(x; θ) − f(x; θ₀): the network's output minus its output at initialization."""
        with torch.no_grad():
            start = self.initial(x)
        return self.network(x) - start
