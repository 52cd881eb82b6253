"""Distances between an estimate and its reference (a finite network's kernel and the
infinite-width kernel, a trained network's parameters and their initial values).

Jobs measure with these; `widthlab.stats` judges the measurements, so editing a verdict's
statistics reruns no job.
"""

from __future__ import annotations

import numpy as np


def relative_distance(estimate, reference) -> float:
    """‖estimate − reference‖ / ‖reference‖ (Frobenius; numpy arrays or torch tensors)."""
    if hasattr(estimate, "detach"):
        import torch

        a, b = torch.as_tensor(estimate), torch.as_tensor(reference)
        return float(torch.linalg.norm(a - b) / torch.linalg.norm(b))
    a, b = np.asarray(estimate, dtype=np.float64), np.asarray(reference, dtype=np.float64)
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def relative_diagonal_error(estimate, reference) -> float:
    """‖diag(estimate) − diag(reference)‖₂ / ‖diag(reference)‖₂ of two square kernels."""
    import torch

    a, b = torch.as_tensor(estimate), torch.as_tensor(reference)
    return relative_distance(a.diagonal(), b.diagonal())
