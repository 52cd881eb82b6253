"""Dual activations: E[φ(u)φ(v)] and E[φ'(u)φ'(v)] for a centred Gaussian pair (u, v).

For (u, v) ~ N(0, [[k11, k12], [k12, k22]]), elementwise over tensors of k11, k22, k12:

* relu (arc-cosine kernel, Cho & Saul 2009), with c = k12/√(k11 k22) clamped to [−1, 1] and
  θ = arccos c:  E[φφ] = √(k11 k22)/(2π)·(sin θ + (π−θ) cos θ),  E[φ'φ'] = (π−θ)/(2π).
  Evaluated as θ = atan2(√(k11 k22 − k12²)₊, k12), the same clamped angle without the
  arccos, whose derivative is infinite at c = ±1. That does not remove the loss of digits
  near coincident or antipodal pairs: k11·k22 − k12² cancels there, so √(…) and hence θ
  carry an absolute error of about √ε ≈ 1e-8, and so does E[φ'φ'] = (π − θ)/(2π) (the NTK
  of such pairs is good to about 1e-8 relative, E[φφ], whose θ-dependence is quadratic near
  θ = 0, to about 1e-16). On the diagonal the exact E[φ(u)²] = k/2, E[φ'²] = 1/2 are used.
* erf (Williams 1997):  E[φφ] = (2/π)·arcsin(2k12/√((1+2k11)(1+2k22))),
  E[φ'φ'] = (4/π)/√((1+2k11)(1+2k22) − 4k12²).
* tanh, gelu (gelu(u) = u·Φ(u), gelu'(u) = Φ(u) + u·ϕ(u)): 2-D Gauss–Hermite product rule with
  ``quad_order`` nodes per axis after a Cholesky factorization of the 2×2 covariance. Measured
  accuracy at the default order 96 (error relative to √(E[φ(u)²]E[φ(v)²]), any correlation):
  ≤ 1e-8 for variances k ≤ 1 (tanh) and k ≤ 4 (gelu). The integrands sharpen as the variance
  grows (tanh(√k·z) tends to a step), so larger variances need a higher order: the error
  falls roughly like exp(−c·√(order/k)), so the accurate range grows in proportion to the
  order. A variance beyond that range (k > order/96 for tanh, k > 4·order/96 for gelu)
  raises a `KernelAccuracyWarning` naming the variance and the order that would cover it
  (numpy's Gauss–Hermite rule works up to about order 360). Cost O(quad_order²)
  evaluations per pair: lower the order for large n if 1e-6 is enough (order 48: tanh
  ≤ 4e-6 at k ≤ 1, gelu ≤ 2e-8 at k ≤ 2).

These are the building blocks of the NNGP/NTK recursion in `widthlab.kernels`.
"""

import math
from collections.abc import Callable
from functools import lru_cache

import numpy as np
import torch

from widthlab.activations import get_activation

Tensor = torch.Tensor

DEFAULT_QUAD_ORDER = 96
_TWO_PI = 2.0 * math.pi


def relu_dual(k11: Tensor, k22: Tensor, k12: Tensor) -> tuple[Tensor, Tensor]:
    """(E[relu(u)relu(v)], E[relu'(u)relu'(v)]) elementwise (arc-cosine kernel of degree 1)."""
    s_sin = (k11 * k22 - k12 * k12).clamp_min(0.0).sqrt()  # √(k11k22)·sin θ
    theta = torch.atan2(s_sin, k12)
    return (s_sin + (math.pi - theta) * k12) / _TWO_PI, (math.pi - theta) / _TWO_PI


def erf_dual(k11: Tensor, k22: Tensor, k12: Tensor) -> tuple[Tensor, Tensor]:
    """(E[erf(u)erf(v)], E[erf'(u)erf'(v)]) elementwise (Williams 1997)."""
    q = (1.0 + 2.0 * k11) * (1.0 + 2.0 * k22) - 4.0 * k12 * k12  # > 0 for any PSD covariance
    # arcsin(2k12/√P) = arctan(2k12/√Q) with P = (1+2k11)(1+2k22): no clamp needed.
    return (2.0 / math.pi) * torch.atan(2.0 * k12 * q.rsqrt()), (4.0 / math.pi) * q.rsqrt()


def _tanh_and_derivative(x: Tensor) -> tuple[Tensor, Tensor]:
    t = torch.tanh(x)
    return t, 1.0 - t * t


def _gelu_and_derivative(x: Tensor) -> tuple[Tensor, Tensor]:
    cdf = 0.5 * torch.erfc(x * (-1.0 / math.sqrt(2.0)))
    pdf = torch.exp(-0.5 * x * x) / math.sqrt(2.0 * math.pi)
    return x * cdf, cdf + x * pdf


_QUADRATURE_ACTIVATIONS: dict[str, Callable[[Tensor], tuple[Tensor, Tensor]]] = {
    "tanh": _tanh_and_derivative,
    "gelu": _gelu_and_derivative,
}
# The largest input variance at which the default order keeps the documented 1e-8.
_ACCURATE_VARIANCE_AT_DEFAULT = {"tanh": 1.0, "gelu": 4.0}


class KernelAccuracyWarning(UserWarning):
    """A quadrature kernel evaluated beyond the variance its order is accurate for."""


MAX_QUAD_ORDER = 360  # numpy's Gauss–Hermite nodes overflow beyond about this order


def _warn_if_inaccurate(activation: str, variance: Tensor, order: int) -> None:
    limit = _ACCURATE_VARIANCE_AT_DEFAULT[activation] * order / DEFAULT_QUAD_ORDER
    largest = float(variance.max()) if variance.numel() else 0.0
    if largest > limit:
        import warnings

        needed = math.ceil(order * largest / limit)
        advice = (
            f"pass quad_order={needed}"
            if needed <= MAX_QUAD_ORDER
            else f"it would take order {needed}, beyond the {MAX_QUAD_ORDER} the rule allows"
        )
        warnings.warn(
            f"{activation} kernel: an input variance of {largest:.3g} exceeds {limit:.3g}, the "
            f"range where Gauss–Hermite order {order} is accurate to about 1e-8; expect larger "
            f"errors, or {advice}",
            KernelAccuracyWarning,
            stacklevel=3,
        )


@lru_cache(maxsize=16)
def _hermite_rule(order: int) -> tuple[np.ndarray, np.ndarray]:
    """Nodes and weights of E[g(z)], z ~ N(0,1) (probabilists' Gauss–Hermite, weights sum 1)."""
    nodes, weights = np.polynomial.hermite_e.hermegauss(order)
    return nodes, weights / weights.sum()


def gauss_hermite_dual(
    activation: str, k11: Tensor, k22: Tensor, k12: Tensor, *, order: int = DEFAULT_QUAD_ORDER
) -> tuple[Tensor, Tensor]:
    """(E[φ(u)φ(v)], E[φ'(u)φ'(v)]) elementwise for φ = tanh or gelu by a 2-D product rule.

    With z1, z2 iid N(0,1): u = s1·z1, v = s2·(c·z1 + √(1−c²)·z2), s = √k, c the clamped
    correlation; order² evaluations of φ per pair, in chunks to bound memory.
    """
    pair = _QUADRATURE_ACTIVATIONS[activation]
    k11, k22, k12 = torch.broadcast_tensors(k11, k22, k12)
    _warn_if_inaccurate(activation, torch.maximum(k11, k22), order)
    shape = k12.shape
    s1, s2, k12 = k11.reshape(-1).sqrt(), k22.reshape(-1).sqrt(), k12.reshape(-1)
    scale = s1 * s2
    corr = torch.where(scale > 0, k12 / scale.clamp_min(1e-300), 0.0).clamp(-1.0, 1.0)
    along, across = corr * s2, (1.0 - corr * corr).sqrt() * s2
    nodes_np, weights_np = _hermite_rule(order)
    z = torch.as_tensor(nodes_np, dtype=k12.dtype, device=k12.device)
    w = torch.as_tensor(weights_np, dtype=k12.dtype, device=k12.device)
    e_phi, e_dphi = torch.empty_like(k12), torch.empty_like(k12)
    chunk = max(1, (1 << 20) // (order * order))
    for start in range(0, k12.numel(), chunk):
        sl = slice(start, start + chunk)
        f_u, df_u = pair(s1[sl, None] * z)  # [P, m], node i of z1
        v = along[sl, None, None] * z[:, None] + across[sl, None, None] * z  # [P, m, m]
        f_v, df_v = pair(v)
        e_phi[sl] = ((f_u * w) * (f_v @ w)).sum(-1)
        e_dphi[sl] = ((df_u * w) * (df_v @ w)).sum(-1)
    return e_phi.reshape(shape), e_dphi.reshape(shape)


def dual_activation(
    activation: str, k11: Tensor, k22: Tensor, k12: Tensor, *, quad_order: int = DEFAULT_QUAD_ORDER
) -> tuple[Tensor, Tensor]:
    """(E[φ(u)φ(v)], E[φ'(u)φ'(v)]), (u,v) ~ N(0, [[k11,k12],[k12,k22]]), elementwise."""
    get_activation(activation)
    if activation == "relu":
        return relu_dual(k11, k22, k12)
    if activation == "erf":
        return erf_dual(k11, k22, k12)
    return gauss_hermite_dual(activation, k11, k22, k12, order=quad_order)


def _dual_diagonal(activation: str, k: Tensor, quad_order: int) -> tuple[Tensor, Tensor]:
    """Exact (E[φ(u)²], E[φ'(u)²]) for u ~ N(0, k): the diagonal of the dual activation."""
    if activation == "relu":
        return 0.5 * k, torch.full_like(k, 0.5)
    if activation == "erf":
        return (2.0 / math.pi) * torch.asin(2.0 * k / (1.0 + 2.0 * k)), (4.0 / math.pi) * (
            1.0 + 4.0 * k
        ).rsqrt()
    _warn_if_inaccurate(activation, k, quad_order)
    nodes_np, weights_np = _hermite_rule(quad_order)
    z = torch.as_tensor(nodes_np, dtype=k.dtype, device=k.device)
    w = torch.as_tensor(weights_np, dtype=k.dtype, device=k.device)
    f, df = _QUADRATURE_ACTIVATIONS[activation](k.sqrt()[:, None] * z)
    return (f * f) @ w, (df * df) @ w
