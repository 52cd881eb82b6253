"""Pointwise activations by name, shared by the networks and their kernels.

Every activation is the plain function, with no rescaling:
relu(u) = max(u, 0), erf(u) = erf(u), tanh(u) = tanh(u), gelu(u) = u·Φ(u) (the exact GELU,
Φ the standard normal CDF).
"""

from collections.abc import Callable

import torch
import torch.nn.functional as F

ACTIVATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "relu": torch.relu,
    "erf": torch.erf,
    "tanh": torch.tanh,
    "gelu": F.gelu,
}


def get_activation(name: str) -> Callable[[torch.Tensor], torch.Tensor]:
    """The activation called `name`; a ValueError naming the allowed values otherwise."""
    try:
        return ACTIVATIONS[name]
    except KeyError:
        raise ValueError(
            f"activation={name!r} is not supported; allowed: {sorted(ACTIVATIONS)}"
        ) from None
