"""Training losses and metrics of the MLP studies (pure torch; no Lightning, no tracking).

* Squared loss, per point ½‖y − f(x)‖² summed over the outputs and averaged over the points:
  L(θ) = (1/2n) Σ_i ‖y_i − f(x_i)‖². Classification uses one-hot targets y_i ∈ {0,1}^C
  (as in Belkin et al. 2019). Full-batch gradient descent with learning rate η then moves
  the training outputs by −(η/n) Θ (f − y) per step, Θ the empirical NTK: it is stable for
  η < 2n/λ_max(Θ).
* Softmax cross-entropy: L(θ) = (1/n) Σ_i −log softmax(f(x_i))_{c_i}, c_i = argmax y_i.
* Error (classification only): the fraction of points whose argmax f(x) differs from
  argmax y.
"""

from __future__ import annotations

import torch
from torch import nn

LOSSES = ("squared", "cross_entropy")
# The optimizers and dtypes `widthlab.runtime.training` accepts (names of config values).
OPTIMIZERS = ("sgd", "adam")
DTYPES = {"float32": torch.float32, "float64": torch.float64}


def loss_value(output: torch.Tensor, target: torch.Tensor, loss: str) -> torch.Tensor:
    """The mean loss over the points (conventions in the module docstring)."""
    if loss == "squared":
        return 0.5 * (output - target).pow(2).sum(dim=1).mean()
    if loss == "cross_entropy":
        return nn.functional.cross_entropy(output, target.argmax(dim=1))
    raise ValueError(f"loss={loss!r}; allowed: {list(LOSSES)}")


@torch.no_grad()
def evaluate(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, loss: str, classification: bool
) -> dict[str, float]:
    """{loss, error (classification only)} of `model` on (x, y), as Python floats."""
    out = model(x)
    metrics = {"loss": float(loss_value(out, y, loss))}
    if classification:
        metrics["error"] = float((out.argmax(1) != y.argmax(1)).double().mean())
    return metrics
